"""The binary sidecar beside a manifest: the per-contributor fingerprint table (and the dataset
histogram) as an uncompressed ``.npz``, a zip of ``.npy`` arrays loaded with
``allow_pickle=False``: one array per field, one row per image. Readers ignore arrays they do not
know and treat missing optional ones as absent, so richer fingerprints can be added as new arrays
without breaking old manifests. Entries carry a fixed timestamp, so equal data give equal bytes.
"""

from __future__ import annotations

import itertools
import zipfile
from collections.abc import Callable
from typing import BinaryIO

import numpy as np

from normstat.fileops import stays_inside
from normstat.fingerprints import Fingerprints
from normstat.modes import Mode

from .npz import NpzError, StoredNpz

__all__ = ["SIDECAR_FORMAT", "NpzError", "read_sidecar", "write_sidecar"]

SIDECAR_FORMAT = "normstat/fingerprints@1"
REQUIRED = ("root", "path_offsets", "path_bytes", "pixel_hash", "dhash", "height", "width")


def write_sidecar(fp: Fingerprints, fh: BinaryIO, histogram: np.ndarray | None = None) -> None:
    """Write the sidecar deterministically to ``fh`` (a temp file the caller renames).
    ``histogram`` (channels × bins) is the dataset's, kept for merging."""
    blob = "".join(fp.paths).encode("utf-8", "surrogateescape")  # any POSIX name
    if len(blob) == sum(map(len, fp.paths)):  # ASCII: byte lengths are string lengths
        lengths = np.fromiter(map(len, fp.paths), dtype=np.int64, count=len(fp.paths))
    else:
        sizes = (len(p.encode("utf-8", "surrogateescape")) for p in fp.paths)
        lengths = np.fromiter(sizes, dtype=np.int64, count=len(fp.paths))
    offsets = np.zeros(len(fp.paths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    arrays: dict[str, np.ndarray] = {
        "root": fp.root.astype(np.uint32),
        "path_offsets": offsets,
        "path_bytes": np.frombuffer(blob, dtype=np.uint8),
        "pixel_hash": fp.pixel_hash.astype(np.uint8).reshape(-1, 16),
        "dhash": fp.dhash.astype(np.uint64),
        "height": fp.height.astype(np.uint32),
        "width": fp.width.astype(np.uint32),
    }
    if fp.phash is not None:
        arrays["phash"] = fp.phash.astype(np.uint64)
    if histogram is not None:
        arrays["histogram"] = histogram.astype(np.int64)
    with zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED) as zf:
        for name, arr in arrays.items():  # streamed into the zip: no second copy in memory
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.file_size = arr.nbytes + 128  # a bound for the header: no ZIP64 guess needed
            with zf.open(info, "w") as member:
                np.lib.format.write_array(member, arr, allow_pickle=False)


def read_sidecar(
    fh: BinaryIO, size: int, roots: list[str], rows: int, mode: Mode
) -> tuple[Fingerprints, np.ndarray | None]:
    """The fingerprints of ``rows`` contributors (and the histogram) from the open sidecar
    ``fh`` of ``size`` bytes; NpzError naming what is wrong. Every array's dtype and shape is
    checked from its header before it is read, and every stored path must stay inside its root
    (check joins them with ``roots`` and opens them)."""
    npz = StoredNpz(fh, size)
    try:
        missing = [k for k in REQUIRED if k not in npz]
        if missing:
            raise NpzError(f"lacks {', '.join(missing)}")
        rows_of = _rows(rows)
        offsets = npz.array("path_offsets", "int64", _rows(rows + 1))
        if offsets[0] != 0 or bool(np.any(np.diff(offsets) <= 0)):
            raise NpzError("path_offsets must rise from 0 (one non-empty path per row)")
        blob = npz.array("path_bytes", "uint8", _rows(int(offsets[-1]))).tobytes()
        root = npz.array("root", "uint32", rows_of)
        if rows and int(root.max()) >= len(roots):
            raise NpzError(f"root index {int(root.max())} is past the {len(roots)} sources")
        fp = Fingerprints(
            roots,
            root,
            _paths(blob, offsets),
            npz.array("pixel_hash", "uint8", _exact((rows, 16))),
            npz.array("dhash", "uint64", rows_of),
            npz.array("height", "uint32", rows_of),
            npz.array("width", "uint32", rows_of),
            npz.array("phash", "uint64", rows_of) if "phash" in npz else None,
        )
        hist = None
        if "histogram" in npz:
            shape = (len(mode.channels), mode.bins)
            if not mode.integer:
                raise NpzError(f"holds a histogram, but mode {mode.name} has none")
            hist = npz.array("histogram", "int64", _exact(shape))
            if bool(np.any(hist < 0)):
                raise NpzError("histogram holds a negative count")
    finally:
        npz.close()
    return fp, hist


def _exact(shape: tuple[int, ...]) -> Callable[[tuple[int, ...]], str | None]:
    return lambda found: None if found == shape else f"has shape {found}, not {shape}"


def _rows(n: int) -> Callable[[tuple[int, ...]], str | None]:
    return lambda found: None if found == (n,) else f"has shape {found}, not ({n},)"


def _paths(blob: bytes, offsets: np.ndarray) -> list[str]:
    """The stored relative paths; each must be relative and free of '..' and NUL."""
    if b"\0" in blob:
        raise NpzError("a stored path holds a NUL byte")
    bounds = offsets.tolist()
    paths = []
    for start, end in itertools.pairwise(bounds):
        path = blob[start:end].decode("utf-8", "surrogateescape")
        if not stays_inside(path):
            raise NpzError(f"stored path {path[:60]!r} leads outside its source")
        paths.append(path)
    return paths
