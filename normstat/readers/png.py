"""The PNG fast path: libspng through pyspng, for the plain PNGs that make up most datasets
(MNIST/CIFAR-style exports). Pillow's Python-level chunk parsing costs more than decoding a
28×28 image; libspng reads one in a third of the time.

PNG is lossless, so a correct decoder gives the stored samples; what can differ is
interpretation. The fast path therefore takes only 8-bit gray, 8-bit RGB and 16-bit gray PNGs
with no transparency chunk and no text/EXIF chunks (Pillow may read orientation from those),
and hands everything else, and any file libspng refuses, to Pillow. As for JPEG, a self-check at
first use compares both decoders and turns the fast path off on any difference.
"""

from __future__ import annotations

import functools
import io
from typing import Any

import numpy as np
from PIL import Image

__all__ = ["MAGIC", "available", "read"]

MAGIC = b"\x89PNG\r\n\x1a\n"
_NATIVE = {(8, 0): "L", (8, 2): "RGB", (16, 0): "I;16"}  # (bit depth, colour type) → mode
_PILLOW_READS = frozenset((b"tRNS", b"eXIf", b"tEXt", b"zTXt", b"iTXt"))


def _pyspng() -> Any:
    try:
        import pyspng
    except ImportError:  # pragma: no cover - pyspng is a core dependency
        return None
    return pyspng


@functools.cache
def available() -> bool:
    """True when pyspng imports and decodes sample PNGs exactly as Pillow does."""
    spng = _pyspng()
    if spng is None:
        return False
    rng = np.random.default_rng(0)
    try:
        for arr in (
            rng.integers(0, 256, (13, 7, 3), dtype=np.uint8),
            rng.integers(0, 256, (5, 11), dtype=np.uint8),
            rng.integers(0, 65536, (6, 9), dtype=np.uint16),
        ):
            image = Image.fromarray(arr)
            buf = io.BytesIO()
            image.save(buf, "PNG")
            with Image.open(io.BytesIO(buf.getvalue())) as im:
                want = np.asarray(im)
                mode = im.mode
            head = _header(buf.getvalue())
            if head is None or head[2] != mode:
                return False
            arr, _ = _decode(spng, buf.getvalue(), mode, mode)
            if not np.array_equal(arr.reshape(want.shape), want):
                return False
    except Exception:
        return False
    return True


def _header(data: bytes) -> tuple[int, int, str] | None:
    """(height, width, native mode) from IHDR, which the PNG standard puts first."""
    if len(data) < 33 or data[12:16] != b"IHDR":
        return None
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    native = _NATIVE.get((data[24], data[25]))
    return None if native is None else (height, width, native)


def _chunk_types(data: bytes) -> set[bytes]:
    """The chunk types present (a walk over the chunk headers; a truncated tail ends it)."""
    types, i, n = set(), 8, len(data)
    while i + 8 <= n:
        kind = data[i + 4 : i + 8]
        types.add(kind)
        if kind == b"IEND":
            break
        i += 12 + int.from_bytes(data[i : i + 4], "big")
    return types


def _decode(
    spng: Any, data: bytes, native: str, target: str
) -> tuple[np.ndarray, Image.Image | None]:
    """Pixels (H×W×C) in ``target`` from a PNG whose IHDR says ``native``, and a Pillow image
    of them when the conversion made one."""
    arr = spng.load(data)
    if arr.ndim == 2:
        arr = arr[..., None]
    if native == "I;16":  # libspng returns 16-bit gray with an opaque alpha plane
        return np.ascontiguousarray(arr[..., :1], dtype=np.uint16), None
    if target == "RGB" and native == "L":  # Pillow's L→RGB replicates the gray value
        arr = np.repeat(arr, 3, axis=2)
    elif target == "L" and native == "RGB":  # Pillow's own luma weights
        image = Image.fromarray(arr).convert("L")
        return np.asarray(image)[..., None], image
    return arr, None


def read(
    data: bytes, target: str | None, max_pixels: int | None
) -> tuple[str, np.ndarray | None, Image.Image | None, int, tuple[int, int]] | None:
    """(native mode, pixels or None when ``target`` is None, Pillow image, orientation 1,
    (height, width)) of a file starting with ``MAGIC``, or None when the fast path is not sure
    of this file."""
    head = _header(data)
    if head is None or not available():
        return None
    height, width, native = head
    if max_pixels is not None and height * width > max_pixels:
        return None
    allowed = ("I;16",) if native == "I;16" else ("L", "RGB")
    if target is not None and target not in allowed:
        return None
    if not _PILLOW_READS.isdisjoint(_chunk_types(data)):
        return None
    if target is None:
        return native, None, None, 1, (height, width)
    try:
        arr, image = _decode(_pyspng(), data, native, target)
    except Exception:  # corrupt or truncated: Pillow's reading gives the reason
        return None
    if arr.shape[:2] != (height, width):
        return None
    return native, arr, image, 1, (height, width)
