"""Which reader reads a file: a table from the first bytes to a reader module, imported only when
a file needs it. A reader whose optional dependencies are missing becomes a reader that skips
each of its files with the ``pip install`` that would read them (as fsspec's
``known_implementations`` names the package a protocol needs)."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from normstat.modes import Mode
from normstat.options import ReadOptions

from .base import Decoded, Probe, Reader, Skipped

__all__ = ["ENTRIES", "HEAD", "Entry", "MissingExtra", "install_hint", "reader_for"]

HEAD = 16  # bytes read to choose a reader


@dataclass(frozen=True)
class Entry:
    """A reader module (exposing ``READER``), the file starts it claims (none: every other
    file), the extra of normstat that installs what it imports, and a module whose
    ``without_extra(reason)`` reads what it can of those files while the extra is missing."""

    name: str
    module: str
    magics: tuple[bytes, ...] = ()
    extra: str | None = None
    fallback: str | None = None


# First match wins; the entry without magics takes the rest (Pillow sniffs dozens of formats).
ENTRIES: list[Entry] = [
    Entry("npy", "normstat.readers.npy", (b"\x93NUMPY",)),
    Entry(
        "tiff",
        "normstat.readers.tiff",
        (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"),
        "formats",
        "normstat.readers.tiffpillow",
    ),
    Entry("pillow", "normstat.readers.pillow"),
]

_loaded: dict[str, Any] = {}  # entry name → its reader, once a file needed it


def install_hint(extra: str) -> str:
    return f"pip install 'normstat[{extra}]'"


class MissingExtra:
    """Stands in for a reader whose dependencies are not installed: every file is skipped with
    the install command that would read it."""

    batched = False

    def __init__(self, entry: Entry, error: ImportError) -> None:
        self.name = entry.name
        hint = f"; {install_hint(entry.extra)}" if entry.extra else ""
        self.reason = f"{entry.name} files need {error.name or 'a missing package'}{hint}"

    def probe(self, f: BinaryIO, name: str, opts: ReadOptions) -> Skipped:
        return Skipped(name, self.reason)

    def load(
        self, f: BinaryIO, name: str, target: Mode | None, opts: ReadOptions
    ) -> tuple[Probe | Skipped | None, Decoded | Skipped | None]:
        return self.probe(f, name, opts), self.probe(f, name, opts)

    def read(
        self,
        f: BinaryIO,
        name: str,
        target: Mode,
        opts: ReadOptions,
        start: int = 0,
        stop: int | None = None,
    ) -> Iterator[Decoded | Skipped]:
        yield self.probe(f, name, opts)


def _load(entry: Entry) -> Reader:
    reader = _loaded.get(entry.name)
    if reader is None:
        try:
            reader = importlib.import_module(entry.module).READER
        except ImportError as exc:
            if entry.extra is None:
                raise  # a core dependency is missing: the installation is broken
            missing = MissingExtra(entry, exc)
            reader = missing
            if entry.fallback is not None:
                reader = importlib.import_module(entry.fallback).without_extra(missing.reason)
        _loaded[entry.name] = reader
    return reader


def reader_for(head: bytes) -> Reader:
    """The reader for a file starting with ``head`` (at least HEAD bytes when the file has)."""
    for entry in ENTRIES:  # runs once per file: kept to a few plain operations
        if not entry.magics or head.startswith(entry.magics):
            return _load(entry)
    raise LookupError("no reader takes the remaining files")  # pragma: no cover - table has one
