"""16-bit colour and grey+alpha PNGs, exactly (Pillow keeps only the high byte of them).

pypng (a core dependency) decodes them in Python: ~70 ms for a 500×375 RGB image. With the
``formats`` extra, libpng through ``imagecodecs.png_decode`` takes a few ms. The outcome must not
depend on which is installed, so libpng only gets files pypng would read too: pypng's own chunk
reader walks the file to IEND first (same CRC, length and metadata checks), zlib must give
exactly the image's bytes, and libpng is handed a rebuilt IHDR + IDAT + IEND file (no ancillary
chunk to warn about on stderr; the inflated bytes re-wrapped in stored deflate blocks, so they
are inflated once). Anything else (interlaced files, for which libpng prints a
warning; a stream with extra or missing data; any libpng error) is pypng's, whose error is then
the skip reason, as before.

Values are the stored samples: gamma and sBIT are ignored (pypng's ``asDirect`` would shift
samples right by 16 - sBIT, silently shrinking the range the statistics are scaled by), and a
tRNS colour becomes an alpha plane (0 where the pixel equals it, else 65535), as pypng does.
"""

from __future__ import annotations

import functools
import io
import struct
import zlib
from typing import Any

import numpy as np

__all__ = ["decode", "fast_available", "pypng_decode"]

_PLANES = {0: 1, 2: 3, 4: 2, 6: 4}  # colour type → samples per pixel
_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _imagecodecs() -> Any:
    try:
        import imagecodecs
    except ImportError:
        return None
    return imagecodecs if getattr(imagecodecs.PNG, "available", False) else None


def _pypng_write(arr: np.ndarray) -> bytes:
    import png  # pypng

    h, w, c = arr.shape
    buf = io.BytesIO()
    writer = png.Writer(w, h, greyscale=c < 3, alpha=c in (2, 4), bitdepth=16)
    writer.write(buf, arr.reshape(h, -1).tolist())
    return buf.getvalue()


@functools.cache
def fast_available() -> bool:
    """True when imagecodecs imports and decodes sample 16-bit PNGs to the written samples."""
    codecs = _imagecodecs()
    if codecs is None:
        return False
    rng = np.random.default_rng(0)
    try:
        for shape in ((5, 7, 3), (3, 2, 4), (4, 5, 2)):
            arr = rng.integers(0, 65536, shape, dtype=np.uint16)
            out = _fast(codecs, _pypng_write(arr))
            if out is None or out.dtype != np.uint16 or not np.array_equal(out, arr):
                return False
    except Exception:
        return False
    return True


def _with_trns(arr: np.ndarray, transparent: tuple[int, ...] | None) -> np.ndarray:
    """pypng's tRNS rule: an alpha plane, 0 where every sample equals the tRNS colour."""
    if transparent is None:
        return arr
    opaque = (arr != np.asarray(transparent, dtype=np.uint16)).any(axis=2, keepdims=True)
    return np.concatenate([arr, opaque.astype(np.uint16) * np.uint16(65535)], axis=2)


def pypng_decode(data: bytes) -> np.ndarray:
    """The samples (H×W×planes, uint16) via pypng; its errors propagate (they are the reason)."""
    import png  # pypng

    reader = png.Reader(bytes=data)
    width, height, rows, info = reader.read()
    if info["bitdepth"] != 16 or reader.colormap:
        raise ValueError(f"not a 16-bit direct-colour PNG ({info['bitdepth']}-bit)")
    arr = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows])
    arr = arr.reshape(height, width, info["planes"])
    return _with_trns(arr, info.get("transparent"))


def _chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(payload, zlib.crc32(kind))
    return struct.pack("!I", len(payload)) + kind + payload + struct.pack("!I", crc)


def _clean(data: bytes) -> tuple[bytes, int, int, int, tuple[int, ...] | None] | None:
    """(IHDR + one IDAT + IEND file, height, width, planes, tRNS colour) of a file pypng reads
    and libpng can take silently; None when pypng must decide."""
    import png  # pypng

    try:
        reader = png.Reader(bytes=data)
        reader.preamble()
        idat = []
        while True:
            kind, payload = reader.chunk()
            if kind == b"IEND":
                break
            if kind == b"IDAT":
                idat.append(payload)
    except Exception:
        return None
    if reader.bitdepth != 16 or reader.interlace or reader.color_type not in _PLANES:
        return None
    height, width, planes = reader.height, reader.width, _PLANES[reader.color_type]
    expected = height * (1 + width * planes * 2)
    compressed = b"".join(idat)
    try:  # exactly the image's bytes, and the stream ends with the data (pypng tolerates less)
        stream = zlib.decompressobj()
        raw = stream.decompress(compressed, expected + 1)
    except zlib.error:
        return None
    if len(raw) != expected or not stream.eof or stream.unused_data or stream.unconsumed_tail:
        return None
    header = struct.pack("!2I5B", width, height, 16, reader.color_type, 0, 0, 0)
    stored = zlib.compress(raw, 0)  # inflated once here; libpng only copies stored blocks
    rebuilt = _SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", stored)
    transparent = getattr(reader, "transparent", None) if reader.trns else None
    return rebuilt + _chunk(b"IEND", b""), height, width, planes, transparent


def _fast(codecs: Any, data: bytes) -> np.ndarray | None:
    clean = _clean(data)
    if clean is None:
        return None
    rebuilt, height, width, planes, transparent = clean
    try:
        arr = codecs.png_decode(rebuilt)
    except Exception:  # pypng's reading gives the reason
        return None
    arr = arr.reshape(*arr.shape[:2], -1) if arr.ndim == 2 else arr
    if arr.shape != (height, width, planes) or arr.dtype != np.uint16:
        return None
    return _with_trns(np.ascontiguousarray(arr), transparent)


def decode(data: bytes) -> np.ndarray:
    """The stored samples of a 16-bit PNG (H×W×planes, uint16; a tRNS colour adds alpha)."""
    if fast_available():
        arr = _fast(_imagecodecs(), data)
        if arr is not None:
            return arr
    return pypng_decode(data)
