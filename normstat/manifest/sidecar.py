"""The binary sidecar beside a manifest: the per-contributor fingerprint table (and the dataset
histogram) as an uncompressed ``.npz``, a zip of ``.npy`` arrays loaded with
``allow_pickle=False``: one array per field, one row per image. Readers ignore arrays they do not
know and treat missing optional ones as absent, so richer fingerprints can be added as new arrays
without breaking old manifests. Entries carry a fixed timestamp, so equal data give equal bytes.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterable
from typing import Any, BinaryIO

import numpy as np

from normstat.fileops import stays_inside
from normstat.fingerprints import THUMB, Fingerprints
from normstat.fingerprints.table import PathList
from normstat.modes import Mode

from .npz import NpzError, StoredNpz

__all__ = ["SIDECAR_FORMAT", "NpzError", "read_histogram", "read_sidecar", "write_sidecar"]

SIDECAR_FORMAT = "normstat/fingerprints@1"
REQUIRED = ("root", "path_offsets", "path_bytes", "pixel_hash", "dhash", "height", "width")
REFERENCES = ("thumb", "thumb_range", "colour")  # optional: older sidecars lack them
MAP_ROWS = 1 << 16  # contributors from which the thumbnails are mapped rather than read


def write_sidecar(fp: Fingerprints, fh: BinaryIO, histogram: np.ndarray | None = None) -> None:
    """Write the sidecar deterministically to ``fh`` (a temp file the caller renames).
    ``histogram`` (channels × bins) is the dataset's, kept for merging. Each array is copied
    in blocks of about ``BLOCK_BYTES`` (a spilled table's straight from its files), so memory
    does not grow with the number of rows."""
    paths = fp.paths if isinstance(fp.paths, PathList) else PathList.from_strings(fp.paths)
    n = len(paths)
    arrays: list[tuple[str, Any, tuple[int, ...], Iterable[Any]]] = [
        ("root", np.uint32, (len(fp.root),), fp.blocks("root")),
        ("path_offsets", np.int64, (n + 1,), paths.offset_blocks()),
        ("path_bytes", np.uint8, (paths.nbytes,), paths.byte_blocks()),
        ("pixel_hash", np.uint8, (fp.pixel_hash.size // 16, 16), fp.blocks("pixel_hash")),
        ("dhash", np.uint64, (len(fp.dhash),), fp.blocks("dhash")),
        ("height", np.uint32, (len(fp.height),), fp.blocks("height")),
        ("width", np.uint32, (len(fp.width),), fp.blocks("width")),
    ]
    if fp.phash is not None:
        arrays.append(("phash", np.uint64, (len(fp.phash),), fp.blocks("phash")))
    if fp.thumb is not None and fp.thumb_range is not None and fp.colour is not None:
        rows = len(fp.thumb)
        arrays += [
            ("thumb", np.uint8, (rows, THUMB, THUMB), fp.blocks("thumb")),
            ("thumb_range", np.float32, (len(fp.thumb_range), 2), fp.blocks("thumb_range")),
            ("colour", np.float32, (len(fp.colour), 3), fp.blocks("colour")),
        ]
    if histogram is not None:
        arrays.append(("histogram", np.int64, tuple(map(int, histogram.shape)), [histogram]))
    with zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED) as zf:
        for name, dtype, shape, blocks in arrays:  # streamed into the zip, block by block
            _write_member(zf, name, np.dtype(dtype), shape, blocks)


def _write_member(
    zf: zipfile.ZipFile, name: str, dtype: np.dtype, shape: tuple[int, ...], blocks: Iterable[Any]
) -> None:
    """One ``.npy`` member: the header ``np.save`` writes, then the C-order bytes of
    ``blocks``, which must add up to ``shape``."""
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
    info.file_size = nbytes + 128  # a bound for the header: no ZIP64 guess needed
    header: dict[str, Any] = {"descr": np.lib.format.dtype_to_descr(dtype), "shape": shape}
    header["fortran_order"] = False
    written = 0
    with zf.open(info, "w") as member:
        np.lib.format.write_array_header_1_0(member, header)
        for block in blocks:
            data = np.ascontiguousarray(block, dtype=dtype).data.cast("B")
            member.write(data)
            written += len(data)
    if written != nbytes:
        raise ValueError(f"sidecar array {name}: {written} bytes for shape {shape}")


def read_sidecar(
    fh: BinaryIO,
    size: int,
    roots: list[str],
    rows: int,
    mode: Mode,
    float_bins: int | None = None,
    path: str | None = None,
) -> tuple[Fingerprints, np.ndarray | None]:
    """The fingerprints of ``rows`` contributors (and the histogram) from the open sidecar
    ``fh`` of ``size`` bytes; NpzError naming what is wrong. Every array's dtype and shape is
    checked from its header before it is read, and every stored path must stay inside its root
    (check joins them with ``roots`` and opens them). ``float_bins``: the histogram's width
    for float data (``--range``: B + 2), which have none otherwise. The thumbnails are mapped
    from ``fh`` (see ``_references``), their ``filename`` the sidecar's ``path``."""
    npz = StoredNpz(fh, size, path)
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
            *_references(npz, rows),
        )
        hist = _histogram(npz, mode, float_bins)
    finally:
        npz.close()
    return fp, hist


def read_histogram(
    fh: BinaryIO, size: int, mode: Mode, float_bins: int | None = None
) -> np.ndarray | None:
    """Only the dataset histogram (None when the sidecar has none) from the open sidecar: a
    plot needs no fingerprint table, which is 60 MB at a million images."""
    npz = StoredNpz(fh, size)
    try:
        return _histogram(npz, mode, float_bins)
    finally:
        npz.close()


def _histogram(npz: StoredNpz, mode: Mode, float_bins: int | None = None) -> np.ndarray | None:
    """Integer modes: C × their bins; float modes: C × ``float_bins`` over a --range, or none."""
    if "histogram" not in npz:
        return None
    if not mode.integer and float_bins is None:
        raise NpzError(f"holds a histogram, but mode {mode.name} has none")
    bins = mode.bins if mode.integer else int(float_bins or 0)
    hist = npz.array("histogram", "int64", _exact((len(mode.channels), bins)))
    if bool(np.any(hist < 0)):
        raise NpzError("histogram holds a negative count")
    return hist


def _references(
    npz: StoredNpz, rows: int
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """The stored references (``thumb``, ``thumb_range``, ``colour``), all three or none (a
    sidecar written before them). The thumbnails, 1 KiB a row, are mapped from the file, not
    read, past ``MAP_ROWS`` rows (64 MiB); fewer are read: a mapping faults (SIGBUS) if the file
    is cut short under it, which nothing that small is worth. The ranges must be finite with
    lo <= hi, the colours finite."""
    present = [k for k in REFERENCES if k in npz]
    if not present:
        return None, None, None
    if len(present) < len(REFERENCES):
        missing = [k for k in REFERENCES if k not in npz]
        raise NpzError(f"holds {', '.join(present)} but lacks {', '.join(missing)}")
    load = npz.mapped if rows >= MAP_ROWS else npz.array
    thumb = load("thumb", "uint8", _exact((rows, THUMB, THUMB)))
    lohi = npz.array("thumb_range", "float32", _exact((rows, 2)))
    colour = npz.array("colour", "float32", _exact((rows, 3)))
    if not bool(np.isfinite(lohi).all()) or bool(np.any(lohi[:, 0] > lohi[:, 1])):
        raise NpzError("thumb_range holds a value that is not finite, or a low above its high")
    if not bool(np.isfinite(colour).all()):
        raise NpzError("colour holds a value that is not finite")
    return thumb, lohi, colour


def _exact(shape: tuple[int, ...]) -> Callable[[tuple[int, ...]], str | None]:
    return lambda found: None if found == shape else f"has shape {found}, not {shape}"


def _rows(n: int) -> Callable[[tuple[int, ...]], str | None]:
    return lambda found: None if found == (n,) else f"has shape {found}, not ({n},)"


def _paths(blob: bytes, offsets: np.ndarray) -> PathList:
    """The stored relative paths, each relative and free of '..' and NUL; kept as stored (one
    ``str`` per path would take 5 times the memory)."""
    if b"\0" in blob:
        raise NpzError("a stored path holds a NUL byte")
    paths = PathList(offsets, blob)
    for path in paths:
        if not stays_inside(path):
            raise NpzError(f"stored path {path[:60]!r} leads outside its source")
    return paths
