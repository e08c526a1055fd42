"""The spill files of the per-contributor table (``table.py``): a column of fixed-size rows in an
anonymous temporary file, appended to, read back in blocks through the file, or mapped whole;
and the sidecar's encoding of paths."""

from __future__ import annotations

import mmap
import os
import tempfile
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

__all__ = ["SpillColumn", "encode_paths"]


def encode_paths(paths: Sequence[str]) -> tuple[bytes, np.ndarray]:
    """The sidecar's encoding of ``paths``: their UTF-8 bytes joined, and each one's length."""
    blob = "".join(paths).encode("utf-8", "surrogateescape")  # any POSIX name
    if len(blob) == sum(map(len, paths)):  # ASCII: byte lengths are string lengths
        lengths = np.fromiter(map(len, paths), dtype=np.int64, count=len(paths))
    else:
        sizes = (len(p.encode("utf-8", "surrogateescape")) for p in paths)
        lengths = np.fromiter(sizes, dtype=np.int64, count=len(paths))
    return blob, lengths


class SpillColumn:
    """One column's rows in an anonymous temporary file (``buffering=0``: what is written is at
    once visible to ``pread`` and to a mapping). The file goes when this object (and every
    mapping of it) does."""

    def __init__(self, dtype: Any, row: tuple[int, ...] = (), folder: str | None = None) -> None:
        self.dtype = np.dtype(dtype)
        self.row = row
        self.row_bytes = self.dtype.itemsize * int(np.prod(row, dtype=np.int64))
        self.rows = 0
        # Lives as long as the column (and its mapping): no context to close it in.
        self._file = tempfile.TemporaryFile(  # noqa: SIM115
            dir=folder, prefix="normstat-rows-", buffering=0
        )
        self._lock = threading.Lock()  # seek + read where there is no pread (Windows)
        self._mapped: np.ndarray | None = None

    def append(self, data: Any) -> None:
        view = memoryview(data).cast("B")
        rows, rest = divmod(len(view), self.row_bytes)
        if rest:
            raise ValueError("a partial row")
        with self._lock:
            self._file.seek(0, os.SEEK_END)
            while view:  # a raw file may write less than asked
                view = view[self._file.write(view) or 0 :]
        self.rows += rows

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` copied from the file (not from the mapping)."""
        want, at = (stop - start) * self.row_bytes, start * self.row_bytes
        chunks, got = [], 0
        while got < want:
            if hasattr(os, "pread"):
                chunk = os.pread(self._file.fileno(), want - got, at + got)
            else:
                with self._lock:
                    self._file.seek(at + got)
                    chunk = self._file.read(want - got)
            if not chunk:
                raise OSError(f"spill file ends at byte {at + got}, not {at + want}")
            chunks.append(chunk)
            got += len(chunk)
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        return np.frombuffer(data, dtype=self.dtype).reshape(-1, *self.row)

    def blocks(self, block_bytes: int) -> Iterator[np.ndarray]:
        """Every row, in consecutive blocks of about ``block_bytes``."""
        step = max(1, block_bytes // max(1, self.row_bytes))
        for start in range(0, self.rows, step):
            yield self.read(start, min(start + step, self.rows))

    def mapped(self) -> np.ndarray:
        """Every row, mapped copy-on-write (writes stay private, as with an in-memory array)."""
        if self._mapped is None or len(self._mapped) != self.rows:
            if self.rows == 0:
                self._mapped = np.zeros((0, *self.row), dtype=self.dtype)
            else:  # a plain array over the map: np.memmap costs µs per row to iterate
                size = self.rows * self.row_bytes
                mapping = mmap.mmap(self._file.fileno(), size, access=mmap.ACCESS_COPY)
                flat = np.frombuffer(mapping, dtype=self.dtype, count=size // self.dtype.itemsize)
                self._mapped = flat.reshape(self.rows, *self.row)
        return self._mapped

    def owns(self, arr: Any) -> bool:
        """Whether ``arr`` is this column's mapping, whole (not a slice, not a replacement)."""
        return self._mapped is not None and arr is self._mapped and len(arr) == self.rows
