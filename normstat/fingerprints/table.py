"""The per-contributor table: one row of fingerprints per contributing image, in manifest order,
column-wise (what the sidecar stores and check searches).

Rows beyond ``SPILL_ROWS`` stream to anonymous temporary files (one per column, unlinked as they
are made: nothing can be left behind, even by a killed process), so the driver of a run over 10
million images holds one buffer of rows, not 10 million. The table over spilled rows maps those
files (arrays over ``mmap``: pages are read as they are touched) and reads them in bounded
blocks (``Fingerprints.blocks``) through the file, never through the mapping, so sequential
passes (the sidecar) add no resident memory. Paths are kept as the sidecar stores them: UTF-8
bytes (surrogateescape: any POSIX name) and int64 offsets, seen as a ``Sequence[str]``
(``PathList``).
"""

from __future__ import annotations

import itertools
import operator
import os
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

import numpy as np

from .reference import REF_BYTES, Reference
from .spill import SpillColumn, encode_paths

__all__ = ["BLOCK_BYTES", "SPILL_ROWS", "FingerprintRows", "Fingerprints", "PathList"]

SPILL_ROWS = 100_000  # rows buffered in memory before they go to the spill files (~10 MB)
SPILL_REF_BYTES = 32 << 20  # or buffered references' thumbnails (~32,000 rows), if sooner
BLOCK_BYTES = 4 << 20  # a sequential pass holds about this much of a column at a time
_PATH_BLOCK = 8192  # paths decoded at a time when iterating (at most 32 MB of 4 KiB names)


class PathList(Sequence[str]):
    """Relative paths as the sidecar stores them (``offsets``: N+1 rising int64; ``blob``: the
    UTF-8 bytes), seen as a read-only list of ``str``; decoded on access."""

    __slots__ = ("_blob", "_files", "offsets")
    __hash__ = None  # type: ignore[assignment]  # compares equal to lists, as lists do

    def __init__(
        self,
        offsets: np.ndarray,
        blob: Any,
        files: tuple[SpillColumn, SpillColumn] | None = None,
    ) -> None:
        self.offsets = offsets
        self._blob = memoryview(blob).cast("B")
        self._files = files  # the spilled offsets and bytes: blocks read through the file

    def __reduce__(self) -> tuple[Any, ...]:  # pickled (or copied) as the bytes themselves
        return PathList, (np.array(self.offsets), self._blob.tobytes())

    @classmethod
    def from_strings(cls, paths: Sequence[str]) -> PathList:
        blob, lengths = encode_paths(paths)
        offsets = np.zeros(len(paths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return cls(offsets, blob)

    @property
    def nbytes(self) -> int:
        return len(self._blob)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> list[str]: ...
    def __getitem__(self, i: int | slice) -> str | list[str]:
        n = len(self)
        if isinstance(i, slice):
            start, stop, step = i.indices(n)
            if step == 1:
                return list(self._decoded(start, max(start, stop)))
            return [self[j] for j in range(start, stop, step)]
        i = operator.index(i)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("path index out of range")
        start, end = int(self.offsets[i]), int(self.offsets[i + 1])
        return bytes(self._blob[start:end]).decode("utf-8", "surrogateescape")

    def __iter__(self) -> Iterator[str]:
        return self._decoded(0, len(self))

    def _decoded(self, start: int, stop: int) -> Iterator[str]:
        for a in range(start, stop, _PATH_BLOCK):
            b = min(a + _PATH_BLOCK, stop)
            offs = self._offsets(a, b + 1).tolist()
            data = self._bytes(offs[0], offs[-1])
            base = offs[0]
            if data.isascii():  # one decode for the block, then string slices
                text = data.decode("ascii")
                yield from [text[s - base : e - base] for s, e in itertools.pairwise(offs)]
            else:
                part = [data[s - base : e - base] for s, e in itertools.pairwise(offs)]
                yield from [p.decode("utf-8", "surrogateescape") for p in part]

    def _offsets(self, start: int, stop: int) -> np.ndarray:
        if self._files is not None and self._files[0].owns(self.offsets):
            return self._files[0].read(start, stop)
        return self.offsets[start:stop]

    def _bytes(self, start: int, stop: int) -> bytes:
        if self._files is not None and self._files[0].owns(self.offsets):
            return self._files[1].read(start, stop).tobytes()
        return bytes(self._blob[start:stop])

    def offset_blocks(self) -> Iterator[np.ndarray]:
        step = BLOCK_BYTES // 8
        for a in range(0, len(self.offsets), step):
            yield self._offsets(a, min(a + step, len(self.offsets)))

    def byte_blocks(self) -> Iterator[np.ndarray]:
        for a in range(0, self.nbytes, BLOCK_BYTES):
            yield np.frombuffer(self._bytes(a, min(a + BLOCK_BYTES, self.nbytes)), np.uint8)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PathList | list | tuple):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    def __repr__(self) -> str:
        if len(self) <= 20:
            return repr(list(self))
        return f"PathList([{self[0]!r}, ... {len(self) - 2} more ..., {self[-1]!r}])"


@dataclass
class Fingerprints:
    """Column-wise fingerprint records of the contributing images, in manifest order."""

    roots: list[str]
    root: np.ndarray  # uint32 index into ``roots``
    paths: Sequence[str]  # POSIX paths relative to their root (a list, or a PathList)
    pixel_hash: np.ndarray  # (N, 16) uint8
    dhash: np.ndarray  # (N,) uint64
    height: np.ndarray  # (N,) uint32
    width: np.ndarray  # (N,) uint32
    phash: np.ndarray | None = None  # (N,) uint64; absent in sidecars written before 0.2
    # What check verifies a near-duplicate against (fingerprints.reference); absent in older
    # sidecars: (N, 32, 32) uint8 stretched thumbnails, (N, 2) float32 their (lo, hi) range,
    # (N, 3) float32 mean colours.
    thumb: np.ndarray | None = None
    thumb_range: np.ndarray | None = None
    colour: np.ndarray | None = None
    spilled: dict[str, SpillColumn] = field(default_factory=dict, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.paths)

    def __getstate__(self) -> dict[str, Any]:  # the arrays pickle as copies; files do not
        return {**self.__dict__, "spilled": {}}

    def path(self, i: int) -> str:
        """Contributor ``i`` as reports name it: its root joined with its relative path."""
        return os.path.join(self.roots[int(self.root[i])], *self.paths[i].split("/"))

    def blocks(self, name: str) -> Iterator[np.ndarray]:
        """Column ``name`` (``root``, ``pixel_hash``...) in consecutive blocks of rows of about
        ``BLOCK_BYTES``: read from its spill file when it is one, else slices of the array."""
        arr = getattr(self, name)
        column = self.spilled.get(name)
        if column is not None and column.owns(arr):
            yield from column.blocks(BLOCK_BYTES)
            return
        row = max(1, arr[:1].nbytes or arr.itemsize)
        step = max(1, BLOCK_BYTES // row)
        for start in range(0, len(arr), step):
            yield arr[start : start + step]


_COLUMNS: dict[str, tuple[Any, tuple[int, ...]]] = {
    "root": (np.uint32, ()),
    "path_offsets": (np.int64, ()),
    "path_bytes": (np.uint8, ()),
    "pixel_hash": (np.uint8, (16,)),
    "dhash": (np.uint64, ()),
    "phash": (np.uint64, ()),
    "height": (np.uint32, ()),
    "width": (np.uint32, ()),
}
_REFERENCE_COLUMNS: dict[str, tuple[Any, tuple[int, ...]]] = {
    "thumb": (np.uint8, (32, 32)),
    "thumb_range": (np.float32, (2,)),
    "colour": (np.float32, (3,)),
}


class FingerprintRows:
    """Rows appended image by image, kept compact (machine words, not Python objects); past
    ``spill_rows`` rows they go in batches to spill files in ``spill_dir`` (the system's
    temporary folder by default), so memory stays flat however many images there are.
    ``manifest_root`` gives a root as the manifest records it (the source's own rule). With
    ``references``, every row carries its ``Reference`` (the table's ``thumb``,
    ``thumb_range`` and ``colour``); rows then also spill when their thumbnails reach
    ``SPILL_REF_BYTES``."""

    def __init__(
        self,
        manifest_root: Callable[[str], str],
        *,
        references: bool = False,
        spill_rows: int | None = None,
        spill_dir: str | None = None,
    ) -> None:
        spill_rows = SPILL_ROWS if spill_rows is None else spill_rows  # read now: settable
        if spill_rows < 1:
            raise ValueError("spill_rows must be at least 1")
        self._manifest_root = manifest_root
        self.references = references
        self._kinds = {**_COLUMNS, **(_REFERENCE_COLUMNS if references else {})}
        self._spill_rows = spill_rows
        self._spill_dir = spill_dir
        self._root_ids: dict[str, int] = {}  # root as given → provisional id
        self._roots: list[str] = []
        self._columns: dict[str, SpillColumn] | None = None  # made at the first spill
        self._spilled_bytes = 0  # path bytes already spilled
        self._new_buffers()

    def _new_buffers(self) -> None:
        self.root_id = array("I")
        self.rels: list[str] = []  # the items' own strings, not copies
        self.hashes = bytearray()  # 16 bytes per image
        self.dhashes = array("Q")
        self.phashes = array("Q")
        self.heights = array("I")
        self.widths = array("I")
        self.thumbs = bytearray()  # REF_BYTES per image, with references
        self.ranges = array("f")  # lo, hi: float32, as the references hold them
        self.colours = array("f")

    def __len__(self) -> int:
        spilled = self._columns["root"].rows if self._columns else 0
        return spilled + len(self.rels)

    @property
    def spilled(self) -> int:
        """Rows written to the spill files so far."""
        return self._columns["root"].rows if self._columns else 0

    def add(
        self,
        root: str,
        rel: str,
        pixel_hash: bytes,
        dhash: int,
        phash: int,
        height: int,
        width: int,
        ref: Reference | None = None,
    ) -> None:
        """One contributor's row; ``ref`` given exactly when the table has ``references``."""
        if (ref is not None) != self.references:
            raise ValueError("a reference for each row, exactly when the table has references")
        rid = self._root_ids.get(root)
        if rid is None:
            rid = self._root_ids[root] = len(self._roots)
            self._roots.append(self._manifest_root(root))
        self.root_id.append(rid)
        self.rels.append(rel)
        self.hashes += pixel_hash
        self.dhashes.append(dhash)
        self.phashes.append(phash)
        self.heights.append(height)
        self.widths.append(width)
        if ref is not None:
            if len(ref.thumb) != REF_BYTES:
                raise ValueError(f"a reference thumbnail of {len(ref.thumb)} bytes")
            self.thumbs += ref.thumb
            self.ranges.extend((ref.lo, ref.hi))
            self.colours.extend(ref.colour)
        if len(self.rels) >= self._spill_rows or len(self.thumbs) >= SPILL_REF_BYTES:
            self._spill()

    def _spill(self) -> None:
        """The buffered rows appended to the spill files, then dropped."""
        if self._columns is None:
            kinds = self._kinds.items()
            columns = {k: SpillColumn(t, r, self._spill_dir) for k, (t, r) in kinds}
            columns["path_offsets"].append(np.zeros(1, dtype=np.int64))
            self._columns = columns
        columns = self._columns
        blob, lengths = encode_paths(self.rels)
        offsets = np.cumsum(lengths)
        offsets += self._spilled_bytes
        columns["root"].append(self.root_id)
        columns["path_offsets"].append(offsets)
        columns["path_bytes"].append(blob)
        columns["pixel_hash"].append(self.hashes)
        columns["dhash"].append(self.dhashes)
        columns["phash"].append(self.phashes)
        columns["height"].append(self.heights)
        columns["width"].append(self.widths)
        if self.references:
            columns["thumb"].append(self.thumbs)
            columns["thumb_range"].append(self.ranges)
            columns["colour"].append(self.colours)
        self._spilled_bytes += len(blob)
        self._new_buffers()

    def table(self) -> Fingerprints:
        roots = sorted(set(self._roots))
        index = np.array([roots.index(r) for r in self._roots], dtype=np.uint32)
        if self._columns is None:
            return self._memory_table(roots, index)
        if self.rels:
            self._spill()
        cols = dict(self._columns)
        if not np.array_equal(index, np.arange(len(index))):  # sorted ids: a remapped copy
            remapped = SpillColumn(np.uint32, (), self._spill_dir)
            for block in cols["root"].blocks(BLOCK_BYTES):
                remapped.append(index[block])
            cols["root"] = remapped
        offsets, blob = cols.pop("path_offsets"), cols.pop("path_bytes")
        return Fingerprints(
            roots=roots,
            root=cols["root"].mapped(),
            paths=PathList(offsets.mapped(), blob.mapped(), (offsets, blob)),
            pixel_hash=cols["pixel_hash"].mapped(),
            dhash=cols["dhash"].mapped(),
            height=cols["height"].mapped(),
            width=cols["width"].mapped(),
            phash=cols["phash"].mapped(),
            thumb=cols["thumb"].mapped() if self.references else None,
            thumb_range=cols["thumb_range"].mapped() if self.references else None,
            colour=cols["colour"].mapped() if self.references else None,
            spilled=cols,
        )

    def _memory_table(self, roots: list[str], index: np.ndarray) -> Fingerprints:
        n = len(self.rels)
        return Fingerprints(
            roots=roots,
            root=index[np.frombuffer(self.root_id, dtype=np.uint32)] if n else index[:0],
            paths=self.rels,
            pixel_hash=np.frombuffer(bytes(self.hashes), dtype=np.uint8).reshape(n, 16),
            dhash=np.frombuffer(self.dhashes, dtype=np.uint64).copy(),
            height=np.frombuffer(self.heights, dtype=np.uint32).copy(),
            width=np.frombuffer(self.widths, dtype=np.uint32).copy(),
            phash=np.frombuffer(self.phashes, dtype=np.uint64).copy(),
            thumb=_copied(self.thumbs, np.uint8, (n, 32, 32)) if self.references else None,
            thumb_range=_copied(self.ranges, np.float32, (n, 2)) if self.references else None,
            colour=_copied(self.colours, np.float32, (n, 3)) if self.references else None,
        )


def _copied(buffer: Any, dtype: Any, shape: tuple[int, ...]) -> np.ndarray:
    return np.frombuffer(buffer, dtype=dtype).reshape(shape).copy()
