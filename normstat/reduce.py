"""Per-image partials and their merge into dataset statistics.

Integer images (8/16-bit) are reduced exactly: per-image sums and sums of squares come from the
image's histogram, and dataset totals are Python integers, so mean and variance are the exact
rational values rounded once. Float images use float64 partials ``(count, shift, mean, M2)``
merged with the parallel form of Welford's update (Chan, Golub & LeVeque, "Updating formulae and
a pairwise algorithm for computing sample variances", 1979); keeping a per-partial shift (a value
of the data) makes the update accurate even for data far from zero (offset 1e8, variance 1e-6).

The functions take an array namespace ``xp`` (NumPy, or CuPy for the GPU path) so one code path
serves both; results are returned as host Python numbers.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from fractions import Fraction
from types import ModuleType
from typing import Any

import numpy as np

__all__ = [
    "PERCENTILES",
    "CompensatedSum",
    "FloatMoments",
    "IntMoments",
    "float_partial",
    "histogram",
    "histograms",
    "int_partial",
    "int_partials",
    "percentiles_from_histogram",
]

PERCENTILES = (0.5, 1.0, 5.0, 50.0, 95.0, 99.0, 99.5)


def histogram(channel: Any, bins: int, xp: ModuleType = np) -> np.ndarray:
    """Counts of each integer value of one channel (exact; int64)."""
    return np.asarray(xp.bincount(channel.ravel(), minlength=bins), dtype=np.int64)


_SMALL = 4096  # samples: below this, bincount beats building a Pillow image
_PIL_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def histograms(pixels: Any, bins: int, xp: ModuleType = np, image: Any = None) -> np.ndarray:
    """Per-channel histograms (channels × bins, int64) of an H×W×C integer image.

    8-bit NumPy images go through Pillow's one-pass C histogram, 3× faster than a strided
    bincount per channel (``image``: the Pillow image of the same pixels, when the decoder kept
    one, saves a copy); everything else (16-bit, CuPy arrays) through ``bincount``.
    """
    channels = pixels.shape[2]
    if xp is np and pixels.size <= _SMALL and image is None:  # Pillow's set-up would dominate
        return np.stack(
            [np.bincount(pixels[..., c].ravel(), minlength=bins) for c in range(channels)]
        ).astype(np.int64, copy=False)
    if xp is np and pixels.dtype == np.uint8 and bins == 256 and channels in _PIL_MODES:
        from PIL import Image

        if image is None or image.mode != _PIL_MODES[channels]:
            arr = pixels[..., 0] if channels == 1 else pixels
            image = Image.fromarray(np.ascontiguousarray(arr), _PIL_MODES[channels])
        return np.asarray(image.histogram(), dtype=np.int64).reshape(channels, 256)
    return np.stack([histogram(pixels[..., c], bins, xp) for c in range(channels)])


@dataclass
class IntMoments:
    """Exact per-channel state of integer data: count, Σx and Σx² as Python integers."""

    count: int = 0
    total: int = 0
    total_sq: int = 0

    def merge(self, other: IntMoments) -> IntMoments:
        return IntMoments(
            self.count + other.count, self.total + other.total, self.total_sq + other.total_sq
        )

    @property
    def mean(self) -> float:
        return float(Fraction(self.total, self.count)) if self.count else math.nan

    def var_fraction(self) -> Fraction:
        n = self.count
        return Fraction(n * self.total_sq - self.total * self.total, n * n)

    @property
    def var(self) -> float:
        return float(self.var_fraction()) if self.count else math.nan

    @property
    def std(self) -> float:
        return math.sqrt(self.var) if self.count else math.nan


@functools.cache
def _powers(bins: int) -> np.ndarray:
    values = np.arange(bins, dtype=np.uint64)
    return np.stack([np.ones_like(values), values, values * values], axis=1)


def int_partials(hists: np.ndarray) -> tuple[IntMoments, ...]:
    """Each channel's exact moments from its histogram (values are the bin indices), from one
    matrix product: per-image cost matters on small images."""
    # Σ h·v² stays below 2^64 for any image under 4.3 gigapixels at 16 bits.
    sums = hists.astype(np.uint64) @ _powers(hists.shape[-1])
    return tuple(IntMoments(int(n), int(t), int(q)) for n, t, q in sums.tolist())


def int_partial(hist: np.ndarray) -> IntMoments:
    """One channel's exact moments from its histogram."""
    return int_partials(hist[None])[0]


@dataclass
class FloatMoments:
    """Float64 state ``(count, shift, mean, m2)``: the data's mean is ``shift + mean``.

    ``mean`` and ``m2`` are relative to ``shift`` so they stay small when the data sit far from
    zero; the merge keeps the left operand's shift, so merging in a fixed order is deterministic.
    """

    count: int = 0
    shift: float = 0.0
    mean_offset: float = 0.0
    m2: float = 0.0
    lo: float = math.inf
    hi: float = -math.inf

    def merge(self, other: FloatMoments) -> FloatMoments:
        if other.count == 0:
            return FloatMoments(**vars(self))
        if self.count == 0:
            return FloatMoments(**vars(other))
        n_old, n_new = self.count, other.count
        n_updated = n_old + n_new
        # (other.shift - self.shift) is exact when both shifts are within a factor 2 (Sterbenz).
        delta = (other.shift - self.shift) + (other.mean_offset - self.mean_offset)
        mean_updated = self.mean_offset + delta * (n_new / n_updated)
        m2_updated = self.m2 + other.m2 + delta * delta * (n_old * n_new / n_updated)
        return FloatMoments(
            n_updated,
            self.shift,
            mean_updated,
            m2_updated,
            min(self.lo, other.lo),
            max(self.hi, other.hi),
        )

    @property
    def mean(self) -> float:
        return self.shift + self.mean_offset if self.count else math.nan

    @property
    def var(self) -> float:
        return self.m2 / self.count if self.count else math.nan

    @property
    def std(self) -> float:
        return math.sqrt(self.var) if self.count else math.nan


def float_partial(channel: Any, xp: ModuleType = np) -> FloatMoments:
    """Two-pass moments of one channel around its first value, with the rounding correction of
    Björck's corrected two-pass algorithm (the residual sum removes the mean's rounding)."""
    x = channel.ravel().astype(xp.float64)
    n = int(x.size)
    if n == 0:
        return FloatMoments()
    shift = float(x[0])
    d = x - shift
    mean = float(d.sum()) / n
    r = d - mean
    resid = float(r.sum())
    m2 = float((r * r).sum()) - resid * resid / n
    return FloatMoments(n, shift, mean + resid / n, max(m2, 0.0), float(x.min()), float(x.max()))


def percentiles_from_histogram(hist: np.ndarray, qs: tuple[float, ...] = PERCENTILES) -> list[int]:
    """Exact nearest-rank percentiles (NumPy's ``inverted_cdf``): the smallest value v with
    at least ⌈q·N/100⌉ samples ≤ v."""
    cdf = np.cumsum(hist, dtype=np.int64)
    n = int(cdf[-1])
    out = []
    for q in qs:
        rank = max(1, math.ceil(Fraction(str(q)) * n / 100))
        out.append(int(np.searchsorted(cdf, rank, side="left")))
    return out


@dataclass
class CompensatedSum:
    """Neumaier summation: the mean of per-image stds stays accurate over millions of images."""

    total: float = 0.0
    compensation: float = 0.0

    def add(self, x: float) -> None:
        t = self.total + x
        if abs(self.total) >= abs(x):
            self.compensation += (self.total - t) + x
        else:
            self.compensation += (x - t) + self.total
        self.total = t

    @property
    def value(self) -> float:
        return self.total + self.compensation
