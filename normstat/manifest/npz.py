"""Reading an ``.npz`` that may be hostile, with memory bounded by its size on disk: every member
must be stored (a deflated member could inflate 9 MB into 2 GiB), lie inside the file, and have
an ``.npy`` header whose dtype and shape the caller accepts before a byte of data is read."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable
from typing import BinaryIO, Literal

import numpy as np

__all__ = ["NpzError", "StoredNpz"]

# zipfile and NumPy's header parser (ast.literal_eval) raise a dozen kinds of error on hostile
# bytes (BadZipFile, struct.error, tokenize.TokenError, RecursionError...): at this boundary any
# Exception is a defect of the file, reported in words; nothing of ours runs inside it.
NPZ_ERRORS = (Exception,)


class NpzError(ValueError):
    """What is wrong with the archive, in words (the caller names the file)."""


Shape = tuple[int, ...]
_LOCAL_HEADER = 30  # a zip local file header's fixed part, before its name and extra field


class StoredNpz:
    """The members of an uncompressed zip of ``.npy`` arrays, opened from ``fh`` of ``size``
    bytes (at ``path``, which names the file of ``mapped`` arrays); ``array`` reads one after
    ``accept(shape)`` has approved its header."""

    def __init__(self, fh: BinaryIO, size: int, path: str | None = None) -> None:
        self._fh, self._size, self._path = fh, size, path
        try:
            self._zip = zipfile.ZipFile(fh)
            infos = self._zip.infolist()
        except NPZ_ERRORS as exc:
            raise NpzError(f"is not a readable zip ({_why(exc)})") from None
        self._members: dict[str, zipfile.ZipInfo] = {}
        total = 0
        for info in infos:
            name = info.filename
            if name in self._members:
                raise NpzError(f"holds {name[:60]!r} twice")
            if info.compress_type != zipfile.ZIP_STORED:
                raise NpzError(f"member {name[:60]!r} is compressed (only stored arrays are read)")
            if info.flag_bits & 0x1:
                raise NpzError(f"member {name[:60]!r} is encrypted")
            total += info.file_size
            if (
                info.compress_size != info.file_size
                or info.header_offset + info.file_size > size
                or total > size
            ):
                raise NpzError(f"member {name[:60]!r} claims more bytes than the file holds")
            self._members[name] = info

    def __contains__(self, name: str) -> bool:
        return f"{name}.npy" in self._members

    def close(self) -> None:
        self._zip.close()

    def array(self, name: str, dtype: str, accept: Callable[[Shape], str | None]) -> np.ndarray:
        """Array ``name``: its header must say ``dtype`` (any byte order) and a shape that
        ``accept`` returns None for (else the reason); only then is its data read."""
        return self._load(name, dtype, accept, mapped=False)

    def mapped(self, name: str, dtype: str, accept: Callable[[Shape], str | None]) -> np.ndarray:
        """``array``, checked alike, but mapped read-only from the file rather than read into
        memory (pages are read as they are touched), when the file is a real one and the array
        is stored in its native byte order; else read as ``array`` reads it. The mapping
        outlives the file object (it holds its own descriptor)."""
        return self._load(name, dtype, accept, mapped=True)

    def _load(
        self, name: str, dtype: str, accept: Callable[[Shape], str | None], mapped: bool
    ) -> np.ndarray:
        info = self._members[f"{name}.npy"]
        try:
            with self._zip.open(info) as member:
                version = np.lib.format.read_magic(member)
                if version == (1, 0):
                    shape, fortran, found = np.lib.format.read_array_header_1_0(member)
                elif version == (2, 0):
                    shape, fortran, found = np.lib.format.read_array_header_2_0(member)
                else:
                    raise NpzError(f"{name}.npy has unsupported .npy version {version}")
                want = np.dtype(dtype)
                if (
                    found.fields is not None
                    or found.subdtype is not None
                    or found.kind != want.kind
                    or found.itemsize != want.itemsize
                ):
                    raise NpzError(f"{name} has dtype {found.str}, not {want.name}")
                reason = accept(tuple(shape))
                if reason:
                    raise NpzError(f"{name} {reason}")
                nbytes = int(np.prod(shape, dtype=np.int64)) * want.itemsize
                header = member.tell()
                if info.file_size - header != nbytes:
                    raise NpzError(f"{name}.npy holds {info.file_size} bytes, not its shape's")
                order: Literal["C", "F"] = "F" if fortran else "C"
                if mapped and nbytes and found == want:
                    start = self._data_start(info)
                    if start is not None:
                        return self._map(start + header, found, tuple(shape), order, name)
                buf = bytearray(member.read(nbytes))  # writeable, as np.load's arrays are
                if len(buf) != nbytes:
                    raise NpzError(f"{name}.npy is truncated")
        except NpzError:
            raise
        except NPZ_ERRORS as exc:
            raise NpzError(f"{name}.npy is unreadable ({_why(exc)})") from None
        arr = np.frombuffer(buf, dtype=found).reshape(shape, order=order)
        return arr if found == want else arr.astype(want)

    def _data_start(self, info: zipfile.ZipInfo) -> int | None:
        """Where the stored member's bytes begin in the file, from its local header (whose
        name and extra field lengths may differ from the central directory's); None when the
        file has no descriptor to map."""
        try:
            self._fh.fileno()
        except (OSError, AttributeError, ValueError):
            return None
        self._fh.seek(info.header_offset)
        local = self._fh.read(_LOCAL_HEADER)
        if len(local) != _LOCAL_HEADER or local[:4] != b"PK\x03\x04":
            raise NpzError(f"member {info.filename[:60]!r} has no local header")
        name_len = int.from_bytes(local[26:28], "little")
        extra_len = int.from_bytes(local[28:30], "little")
        return info.header_offset + _LOCAL_HEADER + name_len + extra_len

    def _map(
        self, offset: int, dtype: np.dtype, shape: Shape, order: Literal["C", "F"], name: str
    ) -> np.ndarray:
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if offset + nbytes > self._size:
            raise NpzError(f"{name}.npy runs past the end of the file")
        arr = np.memmap(self._fh, dtype, mode="r", offset=offset, shape=shape, order=order)
        if self._path is not None:  # the descriptor's own name is a number
            arr.filename = os.path.abspath(self._path)
        return arr


def _why(exc: BaseException) -> str:
    text = str(exc).replace("\n", " ").strip() or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."
