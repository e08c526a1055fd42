"""Fingerprints of contributing images and the binary sidecar that stores them.

Two per image: ``pixel_hash``, xxh3-128 of the decoded pixels in the dataset's mode (so a PNG and
a BMP of the same pixels match, whatever their names), and ``dhash``, a 64-bit difference hash of
a 9×8 grayscale thumbnail for near-duplicate search.

The sidecar is an uncompressed ``.npz`` (a zip of ``.npy`` arrays, loaded with
``allow_pickle=False``): one array per field, one row per image. Readers ignore arrays they do not
know and treat missing optional ones as absent, so richer fingerprints can be added as new arrays
without breaking old manifests. Entries carry a fixed timestamp, so equal data give equal bytes.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import dataclass

import numpy as np
import xxhash
from PIL import Image

__all__ = [
    "SIDECAR_FORMAT",
    "Fingerprints",
    "dhash",
    "pixel_hash",
    "read_sidecar",
    "sha256_file",
    "write_sidecar",
]

SIDECAR_FORMAT = "normstat/fingerprints@1"
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
REQUIRED = ("root", "path_offsets", "path_bytes", "pixel_hash", "dhash", "height", "width")


def pixel_hash(pixels: np.ndarray, mode: str) -> bytes:
    """xxh3-128 over mode, shape and the raw pixel bytes: equal iff the decoded images are equal."""
    h = xxhash.xxh3_128()
    h.update(f"{mode}|{pixels.shape}|{pixels.dtype.str}|".encode())
    h.update(np.ascontiguousarray(pixels).data)
    return h.digest()


def dhash(pixels: np.ndarray, max_value: float, image: Image.Image | None = None) -> int:
    """64-bit difference hash: a 9×8 grayscale thumbnail, bit set where brightness rises.
    ``image``: a Pillow image of the same 8-bit pixels, when the decoder kept one."""
    colour = pixels.shape[2] >= 3
    if pixels.dtype == np.uint8:  # Pillow's C luma conversion; alpha is ignored
        if image is None:
            image = Image.fromarray(
                np.ascontiguousarray(pixels[..., :3] if colour else pixels[..., 0])
            )
        thumb = image.convert("L") if image.mode != "L" else image
    else:
        gray = pixels[..., :3] @ _LUMA if colour else pixels[..., 0].astype(np.float32)
        thumb = Image.fromarray(
            np.ascontiguousarray(gray, dtype=np.float32) / np.float32(max_value)
        )
    small = np.asarray(thumb.resize((9, 8), Image.Resampling.BOX), dtype=np.float32)
    bits = (small[:, 1:] > small[:, :-1]).ravel()
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


@dataclass
class Fingerprints:
    """Column-wise fingerprint records of the contributing images, in manifest order."""

    roots: list[str]
    root: np.ndarray  # uint32 index into ``roots``
    paths: list[str]  # POSIX paths relative to their root
    pixel_hash: np.ndarray  # (N, 16) uint8
    dhash: np.ndarray  # (N,) uint64
    height: np.ndarray  # (N,) uint32
    width: np.ndarray  # (N,) uint32

    def __len__(self) -> int:
        return len(self.paths)


def write_sidecar(fp: Fingerprints, path: str, histogram: np.ndarray | None = None) -> str:
    """Write the sidecar deterministically to ``path`` (a temp name the caller renames);
    returns its sha256. ``histogram`` (channels × bins) is the dataset's, kept for merging."""
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
    if histogram is not None:
        arrays["histogram"] = histogram.astype(np.int64)
    with open(path, "wb") as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED) as zf:
        for name, arr in arrays.items():  # streamed into the zip: no second copy in memory
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.file_size = arr.nbytes + 128  # a bound for the header: no ZIP64 guess needed
            with zf.open(info, "w") as member:
                np.lib.format.write_array(member, arr, allow_pickle=False)
    return sha256_file(path)


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ValueError(f"fingerprint sidecar is unreadable: {exc}") from None
    offsets, blob = arrays["path_offsets"], arrays["path_bytes"].tobytes()
    paths = [
        blob[offsets[i] : offsets[i + 1]].decode("utf-8", "surrogateescape")
        for i in range(len(offsets) - 1)
    ]
    n = len(paths)
    if any(len(arrays[k]) != n for k in ("root", "pixel_hash", "dhash", "height", "width")):
        raise ValueError("fingerprint sidecar arrays have different lengths")
    fp = Fingerprints(
        roots,
        arrays["root"],
        paths,
        arrays["pixel_hash"],
        arrays["dhash"],
        arrays["height"],
        arrays["width"],
    )
    return fp, hist
