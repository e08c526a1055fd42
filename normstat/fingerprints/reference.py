"""What ``check`` verifies a near-duplicate against, stored per contributor at compute time so
that no train file is needed later: about 1 KiB per image, made from what compute already has.

- ``thumb``: the 32×32 luma thumbnail the perceptual hashes come from (no extra resize),
  stretched to its own range and rounded to uint8 (1,024 bytes). Verification correlates
  thumbnails, which ignores brightness and contrast, so the stretch loses nothing it uses and
  spends all 256 levels on the image's own contrast, however dark or flat the picture.
- ``lo``, ``hi``: that thumbnail's range in [0, 1] units (what the stretch removed): a flat
  image has ``hi - lo`` near 0.
- ``colour``: the mean of the first three channels in [0, 1] units (grey images: their one
  channel thrice), over a strided sample of at most ~4,096 pixels: luma alone cannot tell a
  red square from a green one of the same brightness.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .hashes import THUMB

__all__ = [
    "FLAT_RANGE",
    "REF_BYTES",
    "Reference",
    "References",
    "channel_sums",
    "reference_of",
    "references_of",
    "stretched",
]

REF_BYTES = THUMB * THUMB  # the thumbnail's bytes; lo, hi and colour add 20 more
FLAT_RANGE = 1e-6  # a thumbnail whose range is below this (in [0, 1] units) is stored as zeros
_SAMPLE = 4096  # pixels the mean colour is taken over, at most (about)


@dataclass(frozen=True)
class Reference:
    """One contributor's verification data (see the module docstring)."""

    thumb: bytes  # THUMB × THUMB uint8, row-major
    lo: float
    hi: float
    colour: tuple[float, float, float]


def stretched(thumb01: np.ndarray) -> tuple[np.ndarray, float, float]:
    """A [0, 1] thumbnail as uint8 over its own range, with that range (float32 values)."""
    t = np.nan_to_num(np.asarray(thumb01, dtype=np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    lo, hi = float(t.min()), float(t.max())
    if not hi - lo > FLAT_RANGE:
        return np.zeros(t.shape, dtype=np.uint8), lo, hi
    q = np.rint((t - np.float32(lo)) * np.float32(255 / (hi - lo)))
    return np.clip(q, 0, 255).astype(np.uint8), lo, hi


def mean_colour(pixels: np.ndarray, max_value: float) -> tuple[float, float, float]:
    """Mean of channels 0-2 (or channel 0 thrice) over a strided sample, in [0, 1] units."""
    h, w = pixels.shape[:2]
    step = max(1, math.ceil(math.sqrt(h * w / _SAMPLE)))
    sample = pixels[::step, ::step]
    chans = sample[..., :3] if sample.shape[2] >= 3 else sample[..., :1]
    flat = chans.reshape(-1, chans.shape[-1]).astype(np.float64)
    finite = np.isfinite(flat).all(axis=1)  # a masked float image may hold NaN
    means = (flat[finite].mean(axis=0) if finite.any() else np.zeros(flat.shape[1])) / max_value
    if len(means) == 1:
        means = np.repeat(means, 3)
    r, g, b = (float(np.float32(v)) for v in means)
    return r, g, b


def reference_of(thumb: np.ndarray, pixels: np.ndarray, max_value: float) -> Reference:
    """The reference of an H×W×C image whose hash thumbnail is ``thumb`` (as
    ``hashes.thumbnail`` returns it: 0-255 for 8-bit pixels, [0, 1] otherwise)."""
    scale = np.float32(255) if pixels.dtype == np.uint8 else np.float32(1)
    q, lo, hi = stretched(np.asarray(thumb, dtype=np.float32) / scale)
    return Reference(q.tobytes(), lo, hi, mean_colour(pixels, max_value))


_F32_MAX = float(np.finfo(np.float32).max)
_PEAK = {np.dtype(np.uint8): 255, np.dtype(np.uint16): 65535}  # integer pixels' largest value
_SMALL_BYTES = 4 << 20  # small integer images held for one summing per shape, at most


class References:
    """The references of a chunk's images, made as it is read: ``add`` keeps each image's
    thumbnail and a few sums (the pixels only of small integer images, up to 4 MB, to sum them a
    stack of one shape at a time), ``finish`` stretches every thumbnail in a few array
    operations. Each equals ``reference_of``'s, field for field, except that a mean colour
    past float32's range (float64 data beyond 3.4e38), infinite in ``reference_of``, is kept at
    float32's largest value, so that a stored reference is always finite."""

    def __init__(self, max_value: float) -> None:
        self.max_value = max_value
        self._thumbs: list[np.ndarray] = []
        self._eight: list[bool] = []
        self._colours: list[tuple[float, ...]] = []  # a colour, or integer sums and a count
        self._small: dict[tuple[Any, ...], list[tuple[int, np.ndarray]]] = {}
        self._small_bytes = 0

    def __len__(self) -> int:
        return len(self._thumbs)

    def add(self, thumb: np.ndarray, pixels: np.ndarray) -> None:
        """Image ``pixels`` (H×W×C), whose hash thumbnail is ``thumb``."""
        at = len(self._thumbs)
        self._thumbs.append(thumb)
        self._eight.append(pixels.dtype == np.uint8)
        if pixels.dtype not in _PEAK or not pixels.size:
            with np.errstate(over="ignore"):  # float64 past float32: kept finite below
                self._colours.append(tuple(map(_finite, mean_colour(pixels, self.max_value))))
        elif (
            pixels.shape[0] * pixels.shape[1] <= _SAMPLE  # sampled whole
            and self._small_bytes + pixels.nbytes <= _SMALL_BYTES
        ):
            self._small.setdefault((pixels.shape, pixels.dtype), []).append((at, pixels))
            self._small_bytes += pixels.nbytes
            self._colours.append(())  # summed with its shape's stack
        else:
            self._colours.append(channel_sums(pixels))

    def _sum_small(self) -> None:
        """The colour sums of the small images held, one stack of each shape at a time."""
        for (shape, dtype), group in self._small.items():
            h, w, c = shape
            acc = np.uint32 if h * w * _PEAK[dtype] < 1 << 32 else np.uint64
            stack = np.stack([px for _, px in group]).reshape(len(group), h * w, c)
            totals = stack[..., : 3 if c >= 3 else 1].sum(axis=1, dtype=acc).tolist()
            for (at, _), sums in zip(group, totals, strict=True):
                r, g, b = sums if c >= 3 else sums * 3
                self._colours[at] = (r, g, b, h * w)
        self._small, self._small_bytes = {}, 0

    def finish(self, stacked: np.ndarray | None = None) -> list[Reference]:
        """The references of the images added, in order; ``stacked``: their thumbnails as one
        (n, 32, 32) array, when the caller has made it. Then empty, for more images."""
        n = len(self._thumbs)
        if n == 0:
            return []
        t = np.stack(self._thumbs) if stacked is None else stacked
        t = t.astype(np.float32, copy=False)
        if all(self._eight):
            t = t / np.float32(255)
        else:
            t = t / np.where(self._eight, 255, 1).astype(np.float32)[:, None, None]
        lo32, hi32 = t.min(axis=(1, 2)), t.max(axis=(1, 2))  # NaN and infinity show here
        if not (np.isfinite(lo32).all() and np.isfinite(hi32).all()):
            t = np.nan_to_num(t, nan=0.0, posinf=1.0, neginf=0.0)
            lo32, hi32 = t.min(axis=(1, 2)), t.max(axis=(1, 2))
        lo, hi = lo32.astype(np.float64), hi32.astype(np.float64)
        shaped = hi - lo > FLAT_RANGE  # as in ``stretched``: the flat ones are zeros
        t -= lo32[:, None, None]  # ``stretched``'s operations, on every thumbnail at once
        t *= (255 / np.where(shaped, hi - lo, 1.0)).astype(np.float32)[:, None, None]
        np.rint(t, out=t)
        np.clip(t, 0, 255, out=t)
        q = t.astype(np.uint8)
        q[~shaped] = 0
        data, size = q.tobytes(), THUMB * THUMB
        self._sum_small()
        colours = self._means()
        self._thumbs, self._eight, self._colours = [], [], []
        return [
            Reference(data[i * size : (i + 1) * size], a, b, colours[i])
            for i, (a, b) in enumerate(zip(lo.tolist(), hi.tolist(), strict=True))
        ]

    def _means(self) -> list[tuple[float, float, float]]:
        """Each image's mean colour; integer sums divided as ``mean_colour`` divides its float64
        sums, which hold the same integers (below 2**53: exact), so they are the same numbers."""
        sums = [i for i, c in enumerate(self._colours) if len(c) == 4]
        out = [(c[0], c[1], c[2]) for c in self._colours]
        if sums:
            table = np.array([self._colours[i] for i in sums], dtype=np.float64)
            means = (table[:, :3] / table[:, 3:] / self.max_value).astype(np.float32)
            for i, (r, g, b) in zip(sums, means.astype(np.float64).tolist(), strict=True):
                out[i] = (r, g, b)
        return out


def references_of(
    thumbs: Sequence[np.ndarray], images: Sequence[np.ndarray], max_value: float
) -> list[Reference]:
    """``References`` of ``images`` and their thumbnails, in order."""
    refs = References(max_value)
    for thumb, pixels in zip(thumbs, images, strict=True):
        refs.add(thumb, pixels)
    return refs.finish()


def channel_sums(pixels: np.ndarray) -> tuple[int, int, int, int]:
    """The sums of channels 0-2 (or of channel 0, thrice) over ``mean_colour``'s strided sample
    of an integer image, and its pixel count. A photograph's sampled rows are summed whole
    first (a contiguous pass): 7× faster than gathering its sample."""
    h, w, c = pixels.shape
    step = max(1, math.ceil(math.sqrt(h * w / _SAMPLE)))
    first = 3 if c >= 3 else 1
    if step == 1:
        acc = np.uint32 if h * w * _PEAK[pixels.dtype] < 1 << 32 else np.uint64
        sums = pixels.reshape(h * w, c)[:, :first].sum(axis=0, dtype=acc).tolist()
        count = h * w
    else:
        rows = pixels[::step]
        peak = len(rows) * _PEAK[pixels.dtype]
        acc = np.uint16 if peak < 1 << 16 else np.uint32 if peak < 1 << 32 else np.uint64
        across = np.ascontiguousarray(rows).sum(axis=0, dtype=acc)[::step, :first]
        sums = across.sum(axis=0, dtype=np.uint64).tolist()
        count = len(rows) * len(across)
    if first == 1:
        return sums[0], sums[0], sums[0], count
    return sums[0], sums[1], sums[2], count


def _finite(v: float) -> float:
    """``v`` within float32's range (NaN, which no sum of finite pixels gives, as 0)."""
    return 0.0 if math.isnan(v) else max(-_F32_MAX, min(_F32_MAX, v))
