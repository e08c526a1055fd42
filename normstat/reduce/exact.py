"""Order-free folds of per-image float values: every float64 is an integer multiple of 2^-1074,
so sums of them (and of their products) are kept exactly as Python integers scaled by 2^BITS
(2^(2·BITS) for squares), and rounded once when reported.

Why: the dataset's statistics then do not depend on the order images are folded in, only on
the set of per-image partials. Manifests of disjoint parts merge into exactly the manifest of one
pass over their union (``normstat merge``), whatever the shards, workers or engine were. Integer
images already have exact sums (``IntMoments``); this is the same guarantee for the sum of
per-image stds and for float images' moments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from .moments import FloatMoments

__all__ = ["BITS", "ExactFloatMoments", "ExactSum", "scaled"]

BITS = 1100  # > 1074 + 1: the smallest subnormal's exponent, with room to spare


def scaled(x: float, bits: int = BITS) -> int:
    """``x · 2^bits`` exactly (``x`` finite)."""
    num, den = x.as_integer_ratio()
    return num << (bits - den.bit_length() + 1)


def _float(value: int, bits: int) -> float:
    """``value / 2^bits`` correctly rounded."""
    return float(Fraction(value, 1 << bits)) if value else 0.0


@dataclass
class ExactSum:
    """A sum of floats, exact (``scaled_total / 2^BITS``)."""

    scaled_total: int = 0

    def add(self, x: float) -> None:
        self.scaled_total += scaled(x)

    @property
    def value(self) -> float:
        return _float(self.scaled_total, BITS)

    def merge(self, other: ExactSum) -> ExactSum:
        return ExactSum(self.scaled_total + other.scaled_total)

    def to_state(self) -> dict[str, Any]:
        return {"scaled": hex(self.scaled_total)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ExactSum:
        return cls(int(state["scaled"], 16))


@dataclass
class ExactFloatMoments:
    """One channel of float data: count, Σx and Σx² exactly, as reconstructed from per-image
    partials (each image's mean is its ``shift + mean_offset`` exactly, its Σ(x-mean)² its
    ``m2``), and min/max. Mean and variance are exact functions of those partials, rounded
    once."""

    count: int = 0
    total: int = 0  # Σx · 2^BITS
    total_sq: int = 0  # Σx² · 2^(2·BITS)
    lo: float = math.inf
    hi: float = -math.inf

    def add(self, m: FloatMoments) -> None:
        if m.count == 0:
            return
        mean = scaled(m.shift) + scaled(m.mean_offset)
        self.count += m.count
        self.total += m.count * mean
        self.total_sq += scaled(m.m2, 2 * BITS) + m.count * mean * mean
        self.lo = min(self.lo, m.lo)
        self.hi = max(self.hi, m.hi)

    def merge(self, other: ExactFloatMoments) -> ExactFloatMoments:
        return ExactFloatMoments(
            self.count + other.count,
            self.total + other.total,
            self.total_sq + other.total_sq,
            min(self.lo, other.lo),
            max(self.hi, other.hi),
        )

    def mean_fraction(self) -> Fraction:
        return Fraction(self.total, self.count << BITS)

    def m2_fraction(self) -> Fraction:
        """Σ(x - mean)² = Σx² - (Σx)²/n, exactly."""
        n = self.count
        return Fraction(n * self.total_sq - self.total * self.total, n << (2 * BITS))

    @property
    def mean(self) -> float:
        return float(self.mean_fraction()) if self.count else math.nan

    @property
    def var(self) -> float:
        return float(self.m2_fraction() / self.count) if self.count else math.nan

    @property
    def std(self) -> float:
        return math.sqrt(self.var) if self.count else math.nan

    @property
    def shift(self) -> float:
        """The mean rounded: with ``mean_offset`` (the rest), the manifest's float state."""
        return self.mean if self.count else 0.0

    @property
    def mean_offset(self) -> float:
        if not self.count:
            return 0.0
        return float(self.mean_fraction() - Fraction(self.shift))

    @property
    def m2(self) -> float:
        return float(self.m2_fraction()) if self.count else 0.0

    def to_state(self) -> dict[str, Any]:
        return {"sum": hex(self.total), "sum_sq": hex(self.total_sq)}
