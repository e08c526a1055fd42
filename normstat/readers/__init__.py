"""Readers: what a file's bytes mean. A file object in, pixels in the dataset mode (or a
``Skipped`` reason) out; the contract is in ``base.py``, the choice of reader in ``registry.py``."""

from __future__ import annotations

from .base import (
    NON_FINITE,
    BatchReader,
    Decoded,
    Probe,
    Reader,
    SingleImageReader,
    Skipped,
    image_name,
    parse_image_name,
    unreadable,
)
from .registry import HEAD, install_hint, reader_for

__all__ = [
    "HEAD",
    "NON_FINITE",
    "BatchReader",
    "Decoded",
    "Probe",
    "Reader",
    "SingleImageReader",
    "Skipped",
    "image_name",
    "install_hint",
    "parse_image_name",
    "reader_for",
    "unreadable",
]
