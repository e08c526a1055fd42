"""Per-image partials and their merge into dataset statistics (the partial-statistic contract:
``merge``, ``to_state``, ``from_state``; conformance: tests/test_contracts.py).

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
from typing import Any, Protocol, TypeVar

import numpy as np

__all__ = [
    "FloatMoments",
    "IntMoments",
    "Partial",
    "float_partial",
    "int_partial",
    "int_partials",
]

P = TypeVar("P", bound="Partial")


class Partial(Protocol):
    """A statistic over part of the data: merged with another part's in a fixed order, and
    written to (read back from) plain JSON values, exactly."""

    def merge(self: P, other: P) -> P: ...

    def to_state(self) -> dict[str, Any]: ...

    @classmethod
    def from_state(cls: type[P], state: dict[str, Any]) -> P: ...


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

    def to_state(self) -> dict[str, Any]:
        return {"count": self.count, "sum": self.total, "sum_sq": self.total_sq}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> IntMoments:
        return cls(int(state["count"]), int(state["sum"]), int(state["sum_sq"]))

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

    def to_state(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "shift": self.shift,
            "mean_offset": self.mean_offset,
            "m2": self.m2,
            "min": self.lo,
            "max": self.hi,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> FloatMoments:
        return cls(
            int(state["count"]),
            float(state["shift"]),
            float(state["mean_offset"]),
            float(state["m2"]),
            float(state["min"]),
            float(state["max"]),
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
