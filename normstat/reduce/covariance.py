"""Exact channel covariance: per-image sums of cross products Σ x_i·x_j (i < j) folded like the
moments are, so the dataset's C×C covariance is an exact rational rounded once, whatever order
or grouping the images were folded in (``normstat merge`` adds the states).

Integer images: the products of one image are summed in uint64 (8-bit: x_i·x_j ≤ 255² in
uint16; 16-bit: ≤ 65535² in uint32; the sum is exact while pixels · max² < 2^64, and larger
images are summed in blocks) and totals are Python integers. Float images: the per-image
co-moment Σ (x_i − μ_i)(x_j − μ_j) in float64 (Björck's corrected two pass, like
``float_partial``), rebuilt with the image's exact means into Σ x_i·x_j scaled by 2^(2·BITS)
(``exact.py``). The diagonal is not stored: it is the moments' Σx², so the covariance's diagonal
is the reported variance exactly.

Reported: the covariance in pixel units, the correlation (null where a channel is constant:
0/0 is undefined, not 0 and not NaN), and the eigen decomposition of the covariance of the
[0, 1]-scaled values (what AlexNet-style PCA lighting and ZCA whitening use).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from .exact import BITS, scaled
from .moments import FloatMoments, IntMoments

__all__ = ["CrossMoments", "correlation", "cross_products", "pairs", "pca", "report"]

_BLOCK = 1 << 32  # pixels per exact uint64 block: 2^32 · (2^16 − 1)² < 2^64


def pairs(channels: int) -> list[tuple[int, int]]:
    """The upper triangle, row by row: (0, 1), (0, 2), (1, 2) for three channels."""
    return [(i, j) for i in range(channels) for j in range(i + 1, channels)]


def cross_products(px: np.ndarray, integer: bool) -> tuple[int | float, ...]:
    """One H×W×C image's per-pair terms: Σ x_i·x_j (Python ints) for integer pixels, the
    co-moment about the image's means (floats) for float pixels."""
    c = px.shape[-1]
    planes = np.ascontiguousarray(px.reshape(-1, c).T)
    n = planes.shape[1]
    if integer:
        wide = np.uint16 if planes.dtype == np.uint8 else np.uint32
        out: list[int | float] = []
        for i, j in pairs(c):
            total = 0
            for start in range(0, n, _BLOCK):
                a, b = planes[i, start : start + _BLOCK], planes[j, start : start + _BLOCK]
                total += int(np.multiply(a, b, dtype=wide).sum(dtype=np.uint64))
            out.append(total)
        return tuple(out)
    x = planes.astype(np.float64)
    d = x - x[:, :1]
    r = d - (d.sum(axis=1) / n)[:, None]
    resid = r.sum(axis=1)
    return tuple(float(r[i] @ r[j]) - float(resid[i] * resid[j]) / n for i, j in pairs(c))


@dataclass
class CrossMoments:
    """Σ x_i·x_j per channel pair (i < j), exact: integers for integer data, integers scaled by
    2^(2·BITS) for float data."""

    channels: int
    integer: bool
    sums: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.sums:
            self.sums = [0] * len(pairs(self.channels))

    def add(
        self, moments: tuple[IntMoments | FloatMoments, ...], products: tuple[int | float, ...]
    ) -> None:
        """Fold in one image: its per-pair terms and (floats) its per-channel partials."""
        if self.integer:
            for k, p in enumerate(products):
                self.sums[k] += int(p)
            return
        means = []
        for m in moments:
            assert isinstance(m, FloatMoments)
            means.append(scaled(m.shift) + scaled(m.mean_offset) if m.count else 0)
        n = moments[0].count
        for k, (i, j) in enumerate(pairs(self.channels)):
            self.sums[k] += scaled(float(products[k]), 2 * BITS) + n * means[i] * means[j]

    def merge(self, other: CrossMoments) -> CrossMoments:
        if (other.channels, other.integer) != (self.channels, self.integer):
            raise ValueError("cannot merge covariance states of different data")
        return CrossMoments(
            self.channels,
            self.integer,
            [a + b for a, b in zip(self.sums, other.sums, strict=True)],
        )

    def to_state(self) -> dict[str, Any]:
        """Integers as JSON numbers (integer data) or hex strings scaled by 2^(2·bits)."""
        state: dict[str, Any] = {"pairs": [list(p) for p in pairs(self.channels)]}
        if self.integer:
            state["sum_prod"] = list(self.sums)
        else:
            state["bits"] = BITS
            state["sum_prod"] = [hex(s) for s in self.sums]
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any], channels: int, integer: bool) -> CrossMoments:
        values = state["sum_prod"]
        sums = [int(v) if integer else int(v, 16) for v in values]
        return cls(channels, integer, sums)

    def covariance(self, count: int, totals: list[int], squares: list[int]) -> list[list[Fraction]]:
        """The exact population covariance (pixel units) from the channels' exact Σx and Σx²
        (for float data scaled by 2^BITS and 2^(2·BITS), as ``ExactFloatMoments`` holds them)."""
        c, n = self.channels, count
        den = n * n if self.integer else (n * n) << (2 * BITS)
        cov = [[Fraction(0)] * c for _ in range(c)]
        for i in range(c):
            cov[i][i] = Fraction(n * squares[i] - totals[i] * totals[i], den)
        for k, (i, j) in enumerate(pairs(c)):
            cov[i][j] = cov[j][i] = Fraction(n * self.sums[k] - totals[i] * totals[j], den)
        return cov


def correlation(cov: list[list[Fraction]]) -> list[list[float | None]]:
    """Pearson correlation; None where either channel is constant (variance 0)."""
    c = len(cov)
    out: list[list[float | None]] = [[None] * c for _ in range(c)]
    for i in range(c):
        for j in range(c):
            if cov[i][i] > 0 and cov[j][j] > 0:
                # cov² / (var_i · var_j) is exact; one rounding, one square root
                rho = math.sqrt(float(cov[i][j] ** 2 / (cov[i][i] * cov[j][j])))
                out[i][j] = math.copysign(min(rho, 1.0), cov[i][j]) if i != j else 1.0
    return out


def pca(cov_unit: np.ndarray) -> tuple[list[float], list[list[float]]]:
    """Eigenvalues (descending) and eigenvectors (as columns) of a symmetric matrix, each
    vector's largest-magnitude component made positive (the first such, on ties), so the result
    is deterministic. Eigenvalues below 0 (rounding on a singular matrix) are reported as 0."""
    values, vectors = np.linalg.eigh(cov_unit)
    order = np.argsort(-values, kind="stable")
    values, vectors = values[order], vectors[:, order]
    for k in range(vectors.shape[1]):
        if vectors[int(np.argmax(np.abs(vectors[:, k]))), k] < 0:
            vectors[:, k] = -vectors[:, k]
    return [float(v) if v > 0 else 0.0 for v in values], vectors.tolist()


def report(cov: list[list[Fraction]], scale: float) -> dict[str, Any]:
    """The manifest's reported keys: ``raw.covariance``, ``correlation`` and ``pca``."""
    unit = np.array([[float(v / Fraction(scale) ** 2) for v in row] for row in cov])
    eigenvalues, eigenvectors = pca(unit)
    return {
        "covariance": [[float(v) for v in row] for row in cov],
        "correlation": correlation(cov),
        "pca": {"scale": "unit", "eigenvalues": eigenvalues, "eigenvectors": eigenvectors},
    }
