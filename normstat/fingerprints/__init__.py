"""Fingerprints: what identifies a decoded image (exact pixel hash, perceptual hashes), and the
per-contributor table the manifest's sidecar stores."""

from __future__ import annotations

from .hashes import THUMB, gray_image, hashes_of, perceptual, phash_of, pixel_hash, thumbnail
from .reference import Reference, References, reference_of
from .table import FingerprintRows, Fingerprints

__all__ = [
    "THUMB",
    "FingerprintRows",
    "Fingerprints",
    "Reference",
    "References",
    "gray_image",
    "hashes_of",
    "perceptual",
    "phash_of",
    "pixel_hash",
    "reference_of",
    "thumbnail",
]
