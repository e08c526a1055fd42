"""The binary sidecar beside a manifest: the per-contributor fingerprint table (and the dataset
histogram) as an uncompressed ``.npz``, a zip of ``.npy`` arrays loaded with
``allow_pickle=False``: one array per field, one row per image. Readers ignore arrays they do not
know and treat missing optional ones as absent, so richer fingerprints can be added as new arrays
without breaking old manifests. Entries carry a fixed timestamp, so equal data give equal bytes.
"""

from __future__ import annotations

import os
import zipfile
from typing import BinaryIO

import numpy as np

from normstat.fingerprints import Fingerprints

__all__ = ["SIDECAR_FORMAT", "read_sidecar", "write_sidecar"]

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


def read_sidecar(path: str, roots: list[str]) -> tuple[Fingerprints, np.ndarray | None]:
    """Load a sidecar and its optional histogram; raises ValueError naming what is wrong."""
    if not os.path.isfile(path):
        raise ValueError("fingerprint sidecar is missing")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in REQUIRED if k not in npz.files]
            if missing:
                raise ValueError(f"fingerprint sidecar lacks {', '.join(missing)}")
            arrays = {k: npz[k] for k in REQUIRED}
            hist = npz["histogram"] if "histogram" in npz.files else None
            phash = npz["phash"] if "phash" in npz.files else None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ValueError(f"fingerprint sidecar is unreadable: {exc}") from None
    offsets, blob = arrays["path_offsets"], arrays["path_bytes"].tobytes()
    paths = [
        blob[offsets[i] : offsets[i + 1]].decode("utf-8", "surrogateescape")
        for i in range(len(offsets) - 1)
    ]
    n = len(paths)
    if any(len(arrays[k]) != n for k in ("root", "pixel_hash", "dhash", "height", "width")) or (
        phash is not None and len(phash) != n
    ):
        raise ValueError("fingerprint sidecar arrays have different lengths")
    fp = Fingerprints(
        roots,
        arrays["root"],
        paths,
        arrays["pixel_hash"],
        arrays["dhash"],
        arrays["height"],
        arrays["width"],
        phash,
    )
    return fp, hist
