"""A test image's fingerprints for leak search: its pixel hash, its reference (the thumbnail
compute would have stored for it, see fingerprints.reference) and the perceptual hashes that
look for it among the contributors.

Hashes: the whole image, its mirror image, and 48 crop boxes; an image smaller than ``SMALL``
a side also at twice and half its size (the thumbnail of a 14×14 copy of a 28×28 digit is
blurrier than the digit's own, and its hash farther than a re-encoding's). A contributor may be
a crop of the test image by up to 10 % per side, so the test image is also hashed cropped to
95 % and 90 % of each side at the start, centre and end (7 choices per axis, 49 boxes with the
whole): one of them lies within 2.5 % of any such crop, near enough for the hash to agree. Box
hashes come from two small matrix products on a work copy of the image (at most ``WORK`` pixels
a side), not from one resize each: they only seek candidates; what verifies a candidate
is computed the way compute made its thumbnail.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from PIL import Image

from normstat.fingerprints import THUMB, gray_image, phash_of, pixel_hash, thumbnail
from normstat.fingerprints.hashes import PHASH_DCT, phash_of_coefficients
from normstat.fingerprints.reference import FLAT_RANGE, channel_sums, mean_colour
from normstat.modes import Mode

__all__ = [
    "BOXES",
    "WORK",
    "Batch",
    "Prepared",
    "box_hashes",
    "box_thumb",
    "prepare",
    "prints",
    "stretch_all",
    "window_weights",
    "work_gray",
]

WORK = 128  # the work copy's largest side


def _axis_choices() -> list[tuple[float, float]]:
    out = [(0.0, 1.0)]
    for keep in (0.95, 0.90):
        out.extend((m, m + keep) for m in (0.0, (1 - keep) / 2, 1 - keep))
    return out


# (x0, y0, x1, y1) in fractions of the width and height; the whole image is not among them.
BOXES: list[tuple[float, float, float, float]] = [
    (x0, y0, x1, y1)
    for x0, x1 in _axis_choices()
    for y0, y1 in _axis_choices()
    if (x0, y0, x1, y1) != (0.0, 0.0, 1.0, 1.0)
]


HYPOTHESES = 512  # largest side of the luma copy verification cuts and resizes
SMALL = 64  # images smaller than this a side are also hashed at 2× and 0.5×


@dataclass(frozen=True)
class Prepared:
    """What a test image leaves once its pixels are dropped: its pixel hash, size, the hash
    thumbnail (in [0, 1]) and mean colour, a luma copy of at most HYPOTHESES a side (``factor``
    times smaller than the image) and a work copy for the box hashes."""

    pixel_hash: bytes
    size: tuple[int, int]
    thumb01: np.ndarray
    colour: tuple[float, float, float]
    gray: Image.Image
    factor: int
    work: np.ndarray


@dataclass
class Batch:
    """A chunk of test images' fingerprints, column-wise, in chunk order. ``thumb``: stretched
    uint8 (n, 32, 32) as compute stores contributors' (``lo_hi`` their ranges); ``phash``: of
    the whole image and of its mirror image; ``box_hashes`` follow BOXES. ``prepared`` stays in
    the worker, for verification."""

    pixel_hash: list[bytes]
    size: np.ndarray  # (n, 2) height, width
    thumb: np.ndarray
    lo_hi: np.ndarray  # (n, 2) float32
    colour: np.ndarray  # (n, 3) float32
    phash: np.ndarray  # (n, 4) uint64: the image, its mirror image, at 2× and at 0.5×
    box_hashes: np.ndarray  # (n, 48) uint64
    prepared: list[Prepared]
    boxed: np.ndarray  # (n,) bool: whether the box hashes were made (else zeros)

    def __len__(self) -> int:
        return len(self.pixel_hash)


def work_gray(gray: Image.Image) -> np.ndarray:
    """Luma in [0, 1] (float32), reduced by an integer factor to at most about WORK a side."""
    factor = max(1, max(gray.size) // WORK)
    small = gray.reduce(factor) if factor > 1 else gray
    arr = np.asarray(small, dtype=np.float32)
    return arr / np.float32(255) if small.mode == "L" else arr


def window_weights(n: int, fractions: tuple[tuple[float, float], ...]) -> np.ndarray:
    """``_weights`` of intervals that are not cached (one search's windows)."""
    return _weights.__wrapped__(n, fractions)


@functools.lru_cache(maxsize=64)
def _weights(n: int, fractions: tuple[tuple[float, float], ...]) -> np.ndarray:
    """(len(fractions), THUMB, n): each interval of an axis of n pixels split into THUMB cells,
    each cell the area average of the pixels it covers (partly covered pixels in proportion)."""
    out = np.zeros((len(fractions), THUMB, n), dtype=np.float32)
    x = np.arange(n, dtype=np.float64)[None, :]
    for i, (a, b) in enumerate(fractions):
        edges = np.linspace(a * n, b * n, THUMB + 1)
        lo, hi = edges[:-1, None], edges[1:, None]
        overlap = np.clip(np.minimum(hi, x + 1) - np.maximum(lo, x), 0, None)
        out[i] = overlap / np.maximum(overlap.sum(axis=1, keepdims=True), 1e-12)
    return out


_X_CHOICES = tuple(sorted({(b[0], b[2]) for b in BOXES}))
_Y_CHOICES = tuple(sorted({(b[1], b[3]) for b in BOXES}))
_PICK = [(_X_CHOICES.index((b[0], b[2])), _Y_CHOICES.index((b[1], b[3]))) for b in BOXES]


_XI = np.array([p[0] for p in _PICK])
_YI = np.array([p[1] for p in _PICK])


@functools.lru_cache(maxsize=64)
def _dct_weights(n: int, choices: tuple[tuple[float, float], ...]) -> np.ndarray:
    """The pHash's DCT rows applied to each interval's area weights: (len * 12, n)."""
    return np.matmul(PHASH_DCT, _weights(n, choices)).reshape(-1, n).astype(np.float32)


def box_hashes(works: np.ndarray) -> np.ndarray:
    """The pHash of every box of BOXES in work images of one shape (n, h, w): (n, 48) uint64,
    equal to ``phash_of`` of the boxes' thumbnails. The DCT the hash takes of a thumbnail is
    linear, so it is folded into the area weights: the 12×12 coefficients of all 48 boxes of
    all n images come from two matrix products, never from the thumbnails themselves."""
    n, h, w = works.shape
    k = len(PHASH_DCT)
    ax, ay = _dct_weights(w, _X_CHOICES), _dct_weights(h, _Y_CHOICES)
    cols = (works.reshape(n * h, w) @ ax.T).reshape(n, h, len(_X_CHOICES), k)
    both = ay @ cols.transpose(1, 0, 2, 3).reshape(h, -1)  # (ny * k, n * nx * k)
    coeffs = both.reshape(len(_Y_CHOICES), k, n, len(_X_CHOICES), k)
    picked = coeffs[_YI, :, :, _XI, :]  # (48, k, n, k): box, v, image, u
    return phash_of_coefficients(picked.transpose(2, 0, 1, 3))


def box_thumb(work: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """One box's THUMB×THUMB area average (box in fractions), float32."""
    h, w = work.shape
    wx = _weights(w, ((box[0], box[2]),))[0]
    wy = _weights(h, ((box[1], box[3]),))[0]
    return wy @ work @ wx.T


def stretch_all(thumbs01: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``fingerprints.reference.stretched`` of each thumbnail of (n, 32, 32), at once."""
    t = np.nan_to_num(np.asarray(thumbs01, dtype=np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    lo = t.min(axis=(1, 2))
    hi = t.max(axis=(1, 2))
    span = hi - lo
    ok = span > FLAT_RANGE
    scale = np.divide(np.float32(255), span, out=np.zeros_like(span), where=ok)
    q = np.rint((t - lo[:, None, None]) * scale[:, None, None])
    q = np.clip(q, 0, 255).astype(np.uint8)
    q[~ok] = 0
    return q, np.stack([lo, hi], axis=1)


@functools.lru_cache(maxsize=64)
def _rescale_weights(n: int, scale: float) -> np.ndarray:
    """(THUMB, n): an axis of n pixels resized by ``scale`` (bilinear), then made a thumbnail
    (box), as one linear map: Pillow's own resampling applied to each unit impulse."""
    out = np.zeros((THUMB, n), dtype=np.float32)
    size = max(1, round(n * scale))
    for k in range(n):
        impulse = np.zeros((1, n), dtype=np.float32)
        impulse[0, k] = 1
        line = Image.fromarray(impulse).resize((size, 1), Image.Resampling.BILINEAR)
        out[:, k] = _thumb_axis(line)
    return out


def _thumb_axis(line: Image.Image) -> np.ndarray:
    """The thumbnail's resampling of one row (a BOX resize to THUMB, as ``thumbnail``)."""
    small = line.resize((THUMB, 1), Image.Resampling.BOX, reducing_gap=2.0)
    return np.asarray(small, dtype=np.float32)[0]


def _rescaled(works: np.ndarray) -> np.ndarray:
    """Thumbnails of small images (n, h, w) in [0, 1] resized 2× and 0.5×: (n, 2, 32, 32). A
    14×14 copy of a 28×28 digit has a blurrier thumbnail than the digit's own, and a hash
    farther than a re-encoding's: these are what such copies hash like."""
    n, h, w = works.shape
    out = np.empty((n, 2, THUMB, THUMB), dtype=np.float32)
    for k, scale in enumerate((2.0, 0.5)):
        ay, ax = _rescale_weights(h, scale), _rescale_weights(w, scale)
        out[:, k] = np.matmul(np.matmul(ay[None], works), ax.T[None])
    return out


def _colour(pixels: np.ndarray, max_value: float) -> tuple[float, float, float]:
    """``fingerprints.reference.mean_colour``, from integer sums where the pixels are 8- or
    16-bit (the same numbers, several times faster on small images)."""
    if pixels.dtype in (np.uint8, np.uint16) and pixels.size:
        r, g, b, count = channel_sums(pixels)
        scale = count * max_value
        return (
            float(np.float32(r / scale)),
            float(np.float32(g / scale)),
            float(np.float32(b / scale)),
        )
    return mean_colour(pixels, max_value)


def prepare(pixels: np.ndarray, mode: Mode, image: Image.Image | None = None) -> Prepared:
    """An H×W×C image in the manifest's ``mode`` (with the decoder's Pillow image, when it kept
    one), reduced to what check keeps of it. The hash thumbnail is made exactly as compute made
    its contributors'."""
    gray = gray_image(pixels, mode.max_value, image)
    thumb = thumbnail(gray)
    if gray.mode == "L":
        thumb = thumb / np.float32(255)
    factor = max(1, -(-max(gray.size) // HYPOTHESES))
    return Prepared(
        pixel_hash(pixels, mode.name),
        (int(pixels.shape[0]), int(pixels.shape[1])),
        thumb,
        _colour(pixels, mode.max_value),
        gray.reduce(factor) if factor > 1 else gray,
        factor,
        work_gray(gray),
    )


def prints(prepared: list[Prepared], boxed: np.ndarray | None = None) -> Batch:
    """The fingerprints of a chunk of prepared test images; box hashes of work copies of one
    shape are computed together, for the images ``boxed`` says (all by default: None)."""
    n = len(prepared)
    boxed = np.ones(n, dtype=bool) if boxed is None else boxed
    thumbs = np.stack([p.thumb01 for p in prepared])
    q, lo_hi = stretch_all(thumbs)
    boxes = np.zeros((n, len(BOXES)), dtype=np.uint64)
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, p in enumerate(prepared):
        groups.setdefault(p.work.shape, []).append(i)
    scaled = np.stack([thumbs, thumbs], axis=1)  # (n, 2, 32, 32): at 2× and at 0.5×
    for members in groups.values():
        works = np.stack([prepared[i].work for i in members])
        hashed = [k for k, i in enumerate(members) if boxed[i]]
        if hashed:
            boxes[[members[k] for k in hashed]] = box_hashes(works[hashed])
        if max(works.shape[1:]) < SMALL and all(prepared[i].factor == 1 for i in members):
            scaled[members] = _rescaled(works)
    phashes = np.stack(
        [phash_of(thumbs), phash_of(thumbs, mirrored=True), *phash_of(scaled).T], axis=1
    )
    return Batch(
        [p.pixel_hash for p in prepared],
        np.array([p.size for p in prepared], dtype=np.int64).reshape(-1, 2),
        q,
        lo_hi,
        np.array([p.colour for p in prepared], dtype=np.float32).reshape(-1, 3),
        phashes.astype(np.uint64),
        boxes,
        prepared,
        boxed,
    )
