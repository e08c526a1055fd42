"""The JPEG fast path: libjpeg-turbo through simplejpeg, decoding straight into a NumPy array
without Pillow's Python-level parsing and its extra copy (about 1.7× faster per photo).

It must give Pillow's pixels exactly, or compute and apply would disagree with the Pillow path,
so it takes only what it is sure of: YCbCr and grayscale JPEGs decoded to RGB or L, EXIF
orientation read with Pillow's own EXIF parser. Everything else (CMYK, Adobe RGB-transformed,
XMP-only orientation, bombs, corrupt files, other target modes) returns ``None`` and goes through
Pillow, so skip reasons stay Pillow's. At first use each process decodes a set of JPEGs of every
layout it accepts with both libraries; any difference turns the fast path off in that process.
"""

from __future__ import annotations

import functools
import io
from typing import Any

import numpy as np
from PIL import Image

__all__ = ["MAGIC", "available", "read"]

MAGIC = b"\xff\xd8\xff"

_NATIVE = {"Gray": "L", "YCbCr": "RGB"}
_EXIF = b"Exif\x00\x00"


def _simplejpeg() -> Any:
    try:
        import simplejpeg
    except ImportError:  # pragma: no cover - simplejpeg is a core dependency
        return None
    return simplejpeg


def _samples() -> list[tuple[bytes, str]]:
    """JPEGs of each accepted layout (odd sizes, every subsampling, progressive, gray), with
    the target mode to decode them to."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:37, 0:53]
    base = np.stack([x * 4, y * 6, (x + y) * 3], axis=2) + rng.normal(0, 20, (37, 53, 3))
    rgb = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")
    out = []
    for image, kwargs in (
        (rgb, {"subsampling": 2}),
        (rgb, {"subsampling": 1}),
        (rgb, {"subsampling": 0, "quality": 95}),
        (rgb, {"subsampling": 2, "progressive": True}),
        (rgb.convert("L"), {"quality": 90}),
    ):
        buf = io.BytesIO()
        image.save(buf, "JPEG", **kwargs)
        for mode in ("RGB", "L"):
            out.append((buf.getvalue(), mode))
    return out


@functools.cache
def available() -> bool:
    """True when simplejpeg imports and decodes the samples exactly as Pillow does."""
    sj = _simplejpeg()
    if sj is None:
        return False
    try:
        for data, mode in _samples():
            with Image.open(io.BytesIO(data)) as im:
                want = np.asarray(im.convert(mode))
            got, _ = _decode(sj, data, mode, sj.decode_jpeg_header(data)[2])
            if not np.array_equal(np.squeeze(got), want):
                return False
    except Exception:
        return False
    return True


def _orientation(data: bytes) -> int | None:
    """EXIF orientation from the APP1 segments before the scan, or None when only Pillow can
    tell (malformed markers, XMP or other APP1 payloads Pillow may read orientation from)."""
    i, n, orientation = 2, len(data), 1
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0xDA:  # start of scan: no more headers
            return orientation
        if 0xD0 <= marker <= 0xD9 or marker == 0x01:  # markers without a length
            i += 2
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if marker == 0xE1:
            payload = data[i + 4 : i + 2 + length]
            if not payload.startswith(_EXIF):
                return None
            if orientation == 1:  # Pillow uses the first EXIF block
                try:
                    exif = Image.Exif()
                    exif.load(payload)
                    orientation = int(exif.get(0x0112, 1))
                except Exception:  # broken EXIF does not make the pixels wrong (as in decode)
                    orientation = 1
        i += 2 + length
    return None


def _decode(sj: Any, data: bytes, target: str, colorspace: str) -> tuple[np.ndarray, Image.Image]:
    """Pixels (H×W×C) in ``target`` and a Pillow image of the same pixels (for histograms)."""
    if target == "L" and colorspace != "Gray":  # Pillow's RGB→L weights, not libjpeg's Y
        image = Image.fromarray(sj.decode_jpeg(data, colorspace="RGB")).convert("L")
        return np.asarray(image)[..., None], image
    arr = sj.decode_jpeg(data, colorspace="Gray" if target == "L" else "RGB")
    return arr, Image.fromarray(arr[..., 0] if target == "L" else arr)


def read(
    data: bytes, target: str | None, max_pixels: int | None
) -> tuple[str, np.ndarray | None, Image.Image | None, int, tuple[int, int]] | None:
    """(native mode, pixels or None when ``target`` is None, Pillow image, EXIF orientation,
    (height, width) as stored) of a file starting with ``MAGIC``, or None when the fast path is
    not sure of this file."""
    if target not in (None, "RGB", "L") or not available():
        return None
    sj = _simplejpeg()
    try:
        height, width, colorspace, _ = sj.decode_jpeg_header(data)
    except Exception:
        return None
    native = _NATIVE.get(colorspace)
    if native is None or (max_pixels is not None and height * width > max_pixels):
        return None
    orientation = _orientation(data)
    if orientation is None:
        return None
    if target is None:
        return native, None, None, orientation, (height, width)
    try:
        arr, image = _decode(sj, data, target, colorspace)
    except Exception:  # corrupt or truncated: Pillow's reading gives the reason
        return None
    return native, arr, image, orientation, (height, width)
