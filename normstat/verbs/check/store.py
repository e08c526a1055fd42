"""The contributors as check's workers see them: the hash index and the columns verification
reads, saved once by the driver into a private temporary folder and mapped by every worker
(read-only, shared pages: a 1.28-million-row table is not copied per process or pickled per
task). The thumbnails, 1 KiB a row, are mapped straight from the manifest's sidecar when the
table came from one (the file the driver verified: same device, inode, size and mtime), else
written to the folder like the rest.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from normstat.fingerprints import Fingerprints
from normstat.fingerprints.table import PathList

from .hamming import HammingIndex

__all__ = ["SAMPLE", "Columns", "StoreSpec", "build_store"]

SAMPLE = 128  # contributors every test image is also compared with (the neighbourhood's floor)
_SMALL = ("pixel_hash", "height", "width", "thumb_range", "colour")


@dataclass(frozen=True)
class MappedArray:
    """An array inside a file, by path, offset, dtype and shape; ``stamp`` is the file's
    (device, inode, size, mtime_ns) when it was verified: a worker refuses a changed file."""

    path: str
    offset: int
    dtype: str
    shape: tuple[int, ...]
    stamp: tuple[int, int, int, int]

    def open(self) -> np.ndarray:
        st = os.stat(self.path)
        if (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) != self.stamp:
            raise OSError(f"{self.path} changed while check ran")
        if int(np.prod(self.shape)) == 0:
            return np.zeros(self.shape, dtype=self.dtype)
        return np.memmap(self.path, self.dtype, mode="r", offset=self.offset, shape=self.shape)


def _stamp(path: str) -> tuple[int, int, int, int]:
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


@dataclass(frozen=True)
class StoreSpec:
    """Where the workers find the contributors (picklable: paths, not arrays). ``thumb`` is
    None for manifests that predate stored thumbnails: contributors are then read from their
    files (``legacy``)."""

    folder: str
    rows: int
    arrays: dict[str, MappedArray]
    sample: tuple[int, ...]
    roots: tuple[str, ...] = ()  # legacy: where the contributors' files are
    modal: tuple[int, int] | None = None  # (h, w) most contributors have, when most do

    @property
    def legacy(self) -> bool:
        return "thumb" not in self.arrays


class Columns:
    """The contributors' columns in a worker, mapped on first use and kept for the process."""

    _cache: ClassVar[dict[str, Columns]] = {}

    def __init__(self, spec: StoreSpec) -> None:
        self.spec = spec
        self.arrays = {name: m.open() for name, m in spec.arrays.items()}
        self.index = HammingIndex.from_arrays(
            {k[6:]: v for k, v in self.arrays.items() if k.startswith("index.")}
        )
        self.crop: tuple[HammingIndex, np.ndarray, tuple[int, int]] | None = None
        if spec.modal is not None:
            crop = {k[5:]: v for k, v in self.arrays.items() if k.startswith("crop.")}
            self.crop = (HammingIndex.from_arrays(crop), self.arrays["crop_rows"], spec.modal)
        self.sample_features: np.ndarray | None = None
        self.paths: PathList | None = None
        if spec.legacy:
            self.paths = PathList(self.arrays["path_offsets"], self.arrays["path_bytes"])

    @classmethod
    def of(cls, spec: StoreSpec) -> Columns:
        found = cls._cache.get(spec.folder)
        if found is None or found.spec != spec:
            cls._cache.clear()  # one check at a time per process
            found = cls._cache[spec.folder] = cls(spec)
        return found

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["arrays"][name]
        except KeyError:
            raise AttributeError(name) from None


def _save(folder: str, name: str, arr: np.ndarray) -> MappedArray:
    path = os.path.join(folder, f"{name}.npy")
    np.save(path, np.ascontiguousarray(arr), allow_pickle=False)
    with open(path, "rb") as f:
        np.lib.format.read_magic(f)
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        offset = f.tell()
    return MappedArray(path, offset, dtype.str, tuple(shape), _stamp(path))


def _modal_size(
    heights: np.ndarray, widths: np.ndarray
) -> tuple[tuple[int, int] | None, np.ndarray]:
    """The size most contributors have, when at least half do, and the rows of other sizes.
    A dataset of one image size (MNIST, a resized ImageNet) then searches crops, which have
    another size, among those few rows instead of the crowd of its look-alikes."""
    if not len(heights):
        return None, np.zeros(0, dtype=np.int64)
    keys = heights.astype(np.int64) << 32 | widths.astype(np.int64)
    values, counts = np.unique(keys, return_counts=True)
    top = int(np.argmax(counts))
    if counts[top] * 2 < len(keys):
        return None, np.zeros(0, dtype=np.int64)
    key = int(values[top])
    return (key >> 32, key & 0xFFFFFFFF), np.flatnonzero(keys != key).astype(np.int64)


def _mapped(arr: np.ndarray) -> MappedArray | None:
    """The file a memory-mapped array comes from, when it is one whole mapping."""
    if not isinstance(arr, np.memmap) or arr.filename is None or not arr.flags.c_contiguous:
        return None
    if arr.base is None or getattr(arr, "offset", None) is None:
        return None
    return MappedArray(
        arr.filename, int(arr.offset), arr.dtype.str, arr.shape, _stamp(arr.filename)
    )


def build_store(fp: Fingerprints) -> StoreSpec:
    """Save the index and columns of ``fp`` into a new temporary folder (the caller removes
    it: ``shutil.rmtree(spec.folder)``)."""
    folder = tempfile.mkdtemp(prefix="normstat-check-")
    try:
        assert fp.phash is not None
        arrays: dict[str, MappedArray] = {}
        phash = np.asarray(fp.phash)
        for name, arr in HammingIndex(phash).arrays().items():
            arrays[f"index.{name}"] = _save(folder, f"index.{name}", arr)
        modal, others = _modal_size(np.asarray(fp.height), np.asarray(fp.width))
        if modal is not None:  # crops of an image of the modal size: among the others only
            arrays["crop_rows"] = _save(folder, "crop_rows", others)
            for name, arr in HammingIndex(phash[others]).arrays().items():
                arrays[f"crop.{name}"] = _save(folder, f"crop.{name}", arr)
        for name in _SMALL:
            column = getattr(fp, name, None)
            if column is not None:
                arrays[name] = _save(folder, name, np.asarray(column))
        thumb = fp.thumb
        if thumb is not None:
            arrays["thumb"] = _mapped(thumb) or _save(folder, "thumb", np.asarray(thumb))
        roots: tuple[str, ...] = ()
        if thumb is None:  # legacy: the workers read candidates from their files
            paths = fp.paths if isinstance(fp.paths, PathList) else PathList.from_strings(fp.paths)
            arrays["root"] = _save(folder, "root", np.asarray(fp.root))
            arrays["path_offsets"] = _save(folder, "path_offsets", np.asarray(paths.offsets))
            blob = np.frombuffer(b"".join(b.tobytes() for b in paths.byte_blocks()), np.uint8)
            arrays["path_bytes"] = _save(folder, "path_bytes", blob)
            roots = tuple(fp.roots)
        n = len(fp)
        count = min(SAMPLE, n)
        sample = tuple(sorted({(i * n) // count for i in range(count)})) if n else ()
        return StoreSpec(folder, n, arrays, sample, roots, modal)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
