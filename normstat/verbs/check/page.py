"""The leak page (``check --report leaks.html``): each reported pair side by side."""

from __future__ import annotations

from normstat.manifest import Stats
from normstat.sources import Source

from .leakage import LeakReport

__all__ = ["MARK", "is_page", "write_page"]

MARK = b"<!-- normstat leak page -->"


def is_page(head: bytes) -> bool:
    """Whether ``head`` (a file's first bytes) starts a page this module wrote."""
    return MARK in head[:512]


def write_page(report: LeakReport, path: str, source: Source, stats: Stats) -> None:
    raise NotImplementedError
