"""Fingerprints of decoded images: the exact pixel hash and the perceptual hashes.

Per image: ``pixel_hash``, xxh3-128 of the decoded pixels in the dataset's mode (so a PNG and a
BMP of the same pixels match, whatever their names), and two 64-bit perceptual hashes derived from
one 32×32 grayscale thumbnail: ``dhash`` (difference hash) and ``phash`` (signs of the 64
lowest-frequency DCT coefficients against their median), which near-duplicate search uses. pHash
rather than dHash: low frequencies carry most of a photograph's energy, so their signs survive
re-encoding, resizing and brightness/contrast shifts (the median threshold is invariant to those),
and a horizontal mirror only flips the signs of odd horizontal frequencies. The median split makes
every hash hold exactly 32 ones, which spreads hashes evenly over an index's buckets.
"""

from __future__ import annotations

import numpy as np
import xxhash
from PIL import Image

from normstat.modes import LUMA

__all__ = [
    "PHASH_DCT",
    "THUMB",
    "gray_image",
    "hashes_of",
    "perceptual",
    "phash_of",
    "phash_of_coefficients",
    "pixel_hash",
    "thumbnail",
]

_LUMA = np.array(LUMA, dtype=np.float32)


def pixel_hash(pixels: np.ndarray, mode: str) -> bytes:
    """xxh3-128 over mode, shape and the raw pixel bytes: equal iff the decoded images are equal."""
    h = xxhash.xxh3_128()
    h.update(f"{mode}|{pixels.shape}|{pixels.dtype.str}|".encode())
    h.update(np.ascontiguousarray(pixels).data)
    return h.digest()


def gray_image(
    pixels: np.ndarray, max_value: float, image: Image.Image | None = None
) -> Image.Image:
    """Luma as a Pillow image: mode L for 8-bit pixels (Pillow's C conversion), else mode F in
    [0, 1]. Alpha is ignored. ``image``: a Pillow image of the same 8-bit pixels, when the
    decoder kept one."""
    colour = pixels.shape[2] >= 3
    if pixels.dtype == np.uint8:
        if image is None:
            image = Image.fromarray(
                np.ascontiguousarray(pixels[..., :3] if colour else pixels[..., 0])
            )
        return image.convert("L") if image.mode != "L" else image
    gray = pixels[..., :3] @ _LUMA if colour else pixels[..., 0].astype(np.float32)
    return Image.fromarray(np.ascontiguousarray(gray, dtype=np.float32) / np.float32(max_value))


THUMB = 32  # the thumbnail both hashes come from


def thumbnail(
    gray: Image.Image, box: tuple[float, float, float, float] | None = None
) -> np.ndarray:
    """THUMB×THUMB area average of ``gray`` (or of its region ``box``), float32. Pillow first
    reduces by an integer factor (``reducing_gap``): twice as fast as a plain BOX resize."""
    small = gray.resize((THUMB, THUMB), Image.Resampling.BOX, box=box, reducing_gap=2.0)
    return np.asarray(small, np.float32)


def _area_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) matrix averaging each output cell's share of the input: a BOX resize."""
    edges = np.linspace(0, n_in, n_out + 1)
    lo, hi = edges[:-1, None], edges[1:, None]
    x = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(hi, x + 1) - np.maximum(lo, x), 0, None)
    return (overlap / overlap.sum(axis=1, keepdims=True)).astype(np.float32)


_DHASH_ROWS = _area_weights(THUMB, 8)
_DHASH_COLS = _area_weights(THUMB, 9).T


def _dct_matrix(n: int) -> np.ndarray:
    k, x = np.arange(n)[:, None], np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * x + 1) * k / (2 * n)) * np.sqrt(2 / n)
    m[0] /= np.sqrt(2)
    return m.astype(np.float32)


_DCT = _dct_matrix(THUMB)[:12]  # only the rows of the frequencies used
# The 64 lowest AC frequencies (u + v ascending), skipping the DC term, which carries brightness.
_LOW = sorted(((u, v) for u in range(12) for v in range(12) if u + v), key=lambda t: (sum(t), t))
_U = np.array([u for u, _ in _LOW[:64]])
_V = np.array([v for _, v in _LOW[:64]])
ODD_COLUMNS = _V % 2 == 1  # coefficients whose sign a horizontal mirror flips


PHASH_DCT = _DCT  # the DCT rows the pHash reads (12 × 32)


def phash_of(thumbs: np.ndarray, mirrored: bool = False) -> np.ndarray:
    """pHash of one (32, 32) thumbnail or a stack (n, 32, 32), as uint64; ``mirrored`` gives the
    hash of the left-right mirror image without making it."""
    return phash_of_coefficients(_DCT @ thumbs @ _DCT.T, mirrored)


def phash_of_coefficients(dct: np.ndarray, mirrored: bool = False) -> np.ndarray:
    """pHash from the 12×12 lowest DCT coefficients ``PHASH_DCT @ thumb @ PHASH_DCT.T`` (any
    leading shape, the last two axes are vertical, horizontal frequency)."""
    coeffs = dct[..., _U, _V]
    if mirrored:
        coeffs = np.where(ODD_COLUMNS, -coeffs, coeffs)
    ordered = np.sort(coeffs, axis=-1)
    median = (ordered[..., 31:32] + ordered[..., 32:33]) / 2
    packed = np.packbits(coeffs > median, axis=-1)
    return np.ascontiguousarray(packed).view(">u8")[..., 0].astype(np.uint64)


def hashes_of(thumbs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(dhash, phash) as uint64 arrays of a stack of thumbnails (n, 32, 32): a chunk's images
    hashed in a few array operations, with the per-slice arithmetic of a single image's."""
    small = _DHASH_ROWS @ thumbs @ _DHASH_COLS
    bits = (small[..., 1:] > small[..., :-1]).reshape(len(thumbs), 64)
    dhashes = np.ascontiguousarray(np.packbits(bits, axis=-1)).view(">u8")[:, 0]
    return dhashes.astype(np.uint64), phash_of(thumbs)


def perceptual(
    pixels: np.ndarray, max_value: float, image: Image.Image | None = None
) -> tuple[int, int]:
    """(dhash, phash) of an H×W×C image, both from one grayscale thumbnail; ``image`` as for
    gray_image."""
    dhashes, phashes = hashes_of(thumbnail(gray_image(pixels, max_value, image))[None])
    return int(dhashes[0]), int(phashes[0])
