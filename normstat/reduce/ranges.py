"""Histograms of float data over a range [LO, HI] given by the user (``--range``), and the
percentiles read from them.

Bin k holds the values x with e_k ≤ x < e_{k+1}, where e_k = LO + k·(HI − LO)/B in exact
arithmetic (x = HI goes into the last bin): the bin is floor((x − LO)·B/(HI − LO)) computed
exactly. A float64 estimate of that formula is off by at most one (its relative error is a few
ulps of a value ≤ B), so it is corrected against ``edges``: e_k rounded up to the next float64,
a table computed once per range with integer arithmetic. Bins therefore depend on the values
alone, never on the grouping, the machine or the order of operations, so any ``--workers`` and
``merge`` give the same histogram. Values below LO and above HI are counted separately: a
channel's histogram has B + 2 entries, [below, bin 0, ..., bin B−1, above].
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any

import numpy as np

from normstat.options import RANGE_BINS, range_pair

from .histograms import percentiles_from_histogram

__all__ = [
    "ABOVE",
    "BELOW",
    "FloatRange",
    "bin_edges",
    "range_histogram",
    "range_histograms",
    "range_percentiles",
    "range_report",
]

BELOW, ABOVE = "below", "above"  # a percentile outside [LO, HI], reported as such
_UNITS = 1074  # every float64 is an integer multiple of 2^-1074


@dataclass(frozen=True)
class FloatRange:
    """[lo, hi] cut into ``bins`` equal bins (a power of two, so x·bins is exact)."""

    lo: float
    hi: float
    bins: int = RANGE_BINS

    def __post_init__(self) -> None:
        if self.bins < 1 or self.bins & (self.bins - 1):
            raise ValueError(f"range bins must be a power of two, not {self.bins}")
        if (self.lo, self.hi) != range_pair((self.lo, self.hi)):
            raise ValueError(f"range must be LO,HI with finite LO < HI, not {self.lo},{self.hi}")

    @property
    def width(self) -> float:
        """The bin width (HI − LO)/B, rounded to float64 (for people; bins use exact edges)."""
        return float((Fraction(self.hi) - Fraction(self.lo)) / self.bins)

    def edges(self) -> np.ndarray:
        """e_0 .. e_B, each rounded up to float64 (e_B is HI itself)."""
        return bin_edges(self.lo, self.hi, self.bins)


def _ceil_float(n: int, shift: int) -> float:
    """The smallest float64 ≥ n·2^-shift (exact, from the integer)."""
    if n == 0:
        return 0.0
    m = abs(n)
    grid = max(m.bit_length() - 53, shift - _UNITS)  # float64 spacing there, in 2^-shift units
    if grid <= 0:
        return math.ldexp(n, -shift)  # exactly representable
    down = m >> grid  # toward zero
    if n > 0:
        up = down + (down << grid != m)
        return math.ldexp(up, grid - shift)
    return -math.ldexp(down, grid - shift)


@lru_cache(maxsize=4)
def bin_edges(lo: float, hi: float, bins: int) -> np.ndarray:
    """e_k = LO + k·(HI − LO)/bins rounded up to float64, k = 0..bins: x ≥ e_k exactly when
    x ≥ the returned value, for any float x. Cached: a worker computes it once (~0.1 s)."""
    shift = _UNITS + bins.bit_length() - 1  # e_k · 2^shift is an integer
    a = int(Fraction(lo) * (1 << _UNITS)) << (bins.bit_length() - 1)
    step = int(Fraction(hi) * (1 << _UNITS)) - int(Fraction(lo) * (1 << _UNITS))
    out = np.array([_ceil_float(a + k * step, shift) for k in range(bins + 1)], dtype=np.float64)
    out.flags.writeable = False
    return out


@lru_cache(maxsize=4)
def _thresholds(lo: float, hi: float, bins: int) -> np.ndarray:
    """P[h] for h = 0..B+2: x belongs at histogram index ≥ h exactly when x ≥ P[h] (index 0
    is below, 1..B the bins, B+1 above): -inf, LO, e_1 .. e_{B-1}, the float after HI, +inf."""
    edges = bin_edges(lo, hi, bins)
    out = np.concatenate([[-math.inf], edges[:-1], [math.nextafter(hi, math.inf), math.inf]])
    out.flags.writeable = False
    return out


_BLOCK = 1 << 14  # values per pass: the temporaries stay in cache


def range_histogram(values: Any, spec: FloatRange) -> np.ndarray:
    """[below, bin 0 .. bin B−1, above] counts (int64) of the finite ``values`` (any shape)."""
    x = np.asarray(values).ravel()
    lo, bins = spec.lo, spec.bins
    thresholds = _thresholds(lo, spec.hi, bins)
    scale = bins / (spec.hi - lo)
    index = np.empty(x.size, dtype=np.int64)
    for start in range(0, x.size, _BLOCK):
        v = x[start : start + _BLOCK]
        # The estimate of the index, within one of the exact one (clipping and truncation
        # toward zero move only values of the tails, which stay within one too).
        t = np.subtract(v, lo, dtype=np.float64)
        t *= scale
        np.clip(t, -1.0, float(bins), out=t)
        t += 1.0
        h = index[start : start + _BLOCK]
        h[:] = t
        h -= v < thresholds[h]  # one too high
        h += v >= thresholds[h + 1]  # one too low
    return np.bincount(index, minlength=bins + 2)


def range_percentiles(
    hist: np.ndarray, spec: FloatRange, qs: tuple[float, ...]
) -> list[float | str]:
    """Per percentile q, the nearest-rank percentile's bin as its lower edge (the smallest
    float64 ≥ e_k: the true value lies in [edge, next edge)), or BELOW / ABOVE when it lies
    outside [LO, HI]. ``hist`` is one channel's [below, bins..., above], whose nearest-rank
    index is the integer histograms' (index 0 below, B + 1 above)."""
    edges = spec.edges()
    return [
        BELOW if i == 0 else ABOVE if i == spec.bins + 1 else float(edges[i - 1])
        for i in percentiles_from_histogram(hist, qs)
    ]


def range_histograms(pixels: Any, spec: FloatRange) -> np.ndarray:
    """Channels × (B + 2) histograms of an (N×)H×W×C float array's values (a masked image's
    are histogrammed channel by channel, by ``masked_partials``)."""
    channels = pixels.shape[-1]
    out = np.empty((channels, spec.bins + 2), dtype=np.int64)
    for c in range(channels):
        out[c] = range_histogram(pixels[..., c], spec)
    return out


def range_report(
    hist: np.ndarray, spec: FloatRange, qs: tuple[float, ...]
) -> tuple[dict[str, list[float | str]], list[int], list[int]]:
    """The manifest's percentiles (per q, per channel) and each channel's below and above
    counts, from the dataset's channels × (B + 2) histogram."""
    pct = [range_percentiles(h, spec, qs) for h in hist]
    percentiles = {f"{q:g}": [p[i] for p in pct] for i, q in enumerate(qs)}
    return percentiles, [int(h[0]) for h in hist], [int(h[-1]) for h in hist]
