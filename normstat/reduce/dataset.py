"""The dataset's statistics as one partial: per-channel moments, the sum of per-image stds and
the histogram, folded image by image, mergeable, and read back from a manifest's ``state``; and
the numbers the manifest reports from it. Every sum is exact (``exact.py``), so the result is
the same whatever order or grouping the images are folded in: what ``normstat merge`` needs."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from normstat.modes import Mode

from .exact import BITS, ExactFloatMoments, ExactSum
from .histograms import PERCENTILES, percentiles_from_histogram
from .moments import FloatMoments, IntMoments

__all__ = ["DatasetMoments"]

Moments = IntMoments | FloatMoments
STATE_BITS = BITS  # the scale of the exact sums a manifest's ``state.exact`` holds


@dataclass
class DatasetMoments:
    """Partial statistics of ``images`` images in ``mode``; ``hist`` (channels × bins) for
    integer modes."""

    mode: Mode
    moments: list[Any] = field(default_factory=list)  # IntMoments | ExactFloatMoments
    std_sums: list[ExactSum] = field(default_factory=list)
    hist: np.ndarray | None = None
    images: int = 0

    def __post_init__(self) -> None:
        n, mode = len(self.mode.channels), self.mode
        if not self.moments:
            self.moments = [IntMoments() if mode.integer else ExactFloatMoments() for _ in range(n)]
        if not self.std_sums:
            self.std_sums = [ExactSum() for _ in range(n)]
        if self.hist is None and mode.integer:
            self.hist = np.zeros((n, mode.bins), dtype=np.int64)

    def add(self, moments: tuple[Moments, ...]) -> None:
        """Fold in one image's per-channel partials (its histogram comes with its chunk's)."""
        for c, m in enumerate(moments):
            if isinstance(m, IntMoments):
                self.moments[c] = self.moments[c].merge(m)
            else:
                self.moments[c].add(m)
            self.std_sums[c].add(m.std)
        self.images += 1

    def add_histogram(self, hist: np.ndarray | None) -> None:
        if hist is not None and self.hist is not None:
            self.hist += hist

    def merge(self, other: DatasetMoments) -> DatasetMoments:
        if other.mode != self.mode:
            raise ValueError(f"cannot merge mode {other.mode.name} into {self.mode.name}")
        hist = None if self.hist is None or other.hist is None else self.hist + other.hist
        return DatasetMoments(
            self.mode,
            [a.merge(b) for a, b in zip(self.moments, other.moments, strict=True)],
            [a.merge(b) for a, b in zip(self.std_sums, other.std_sums, strict=True)],
            hist,
            self.images + other.images,
        )

    def to_state(self) -> dict[str, Any]:
        """The manifest's ``state``: exact integers, or the float partial; ``exact`` holds the
        exact sums (hex integers scaled by 2^bits) that merging needs."""
        state: dict[str, Any]
        if self.mode.integer:
            state = {
                "kind": "exact-int",
                "count": self.moments[0].count,
                "sum": [m.total for m in self.moments],
                "sum_sq": [m.total_sq for m in self.moments],
            }
        else:
            state = {
                "kind": "float",
                "count": self.moments[0].count,
                "shift": [m.shift for m in self.moments],
                "mean_offset": [m.mean_offset for m in self.moments],
                "m2": [m.m2 for m in self.moments],
            }
        state["std_per_image_sum"] = [s.value for s in self.std_sums]
        exact: dict[str, Any] = {"bits": STATE_BITS}
        if not self.mode.integer:
            exact["sum"] = [hex(m.total) for m in self.moments]
            exact["sum_sq"] = [hex(m.total_sq) for m in self.moments]
        exact["std_per_image_sum"] = [hex(s.scaled_total) for s in self.std_sums]
        state["exact"] = exact
        return state

    @classmethod
    def from_state(
        cls,
        state: dict[str, Any],
        *,
        mode: Mode,
        images: int,
        hist: np.ndarray | None = None,
        lo: list[float] | None = None,
        hi: list[float] | None = None,
    ) -> DatasetMoments:
        """Back from a manifest: ``state`` plus what the manifest keeps beside it (the image
        count, the sidecar's histogram, and for floats the raw min and max). A state without
        ``exact`` (manifests before 0.3) gives its rounded values."""
        n, count = len(mode.channels), int(state["count"])
        exact = state.get("exact")
        moments: list[Any]
        if mode.integer:
            moments = [
                IntMoments(count, int(state["sum"][c]), int(state["sum_sq"][c])) for c in range(n)
            ]
        else:
            lo = lo if lo is not None else [math.inf] * n
            hi = hi if hi is not None else [-math.inf] * n
            moments = []
            for c in range(n):
                m = ExactFloatMoments()
                m.add(
                    FloatMoments(
                        count,
                        float(state["shift"][c]),
                        float(state["mean_offset"][c]),
                        float(state["m2"][c]),
                        float(lo[c]),
                        float(hi[c]),
                    )
                )
                if exact is not None:
                    m.total, m.total_sq = int(exact["sum"][c], 16), int(exact["sum_sq"][c], 16)
                moments.append(m)
        if exact is not None:
            sums = [ExactSum(int(v, 16)) for v in exact["std_per_image_sum"]]
        else:
            sums = []
            for v in state["std_per_image_sum"]:
                sums.append(ExactSum())
                sums[-1].add(float(v))
        hist = None if hist is None else np.asarray(hist, dtype=np.int64).copy()
        return cls(mode, moments, sums, hist, images)

    def summary(self) -> dict[str, Any]:
        """mean, std (pooled and per-image mean), min and max in [0, 1] units, and ``raw``: the
        same in pixel units with var and (integer modes) exact percentiles."""
        mode, n = self.mode, self.images
        scale = mode.max_value
        per_image = [s.value / n for s in self.std_sums]
        raw: dict[str, Any] = {
            "mean": [m.mean for m in self.moments],
            "var": [m.var for m in self.moments],
            "std": [m.std for m in self.moments],
            "std_per_image_mean": per_image,
        }
        if mode.integer:
            assert self.hist is not None
            mean = [float(Fraction(m.total, m.count) / Fraction(scale)) for m in self.moments]
            std = [math.sqrt(float(m.var_fraction() / Fraction(scale) ** 2)) for m in self.moments]
            lo = [int(np.flatnonzero(h)[0]) for h in self.hist]
            hi = [int(np.flatnonzero(h)[-1]) for h in self.hist]
            pct = [percentiles_from_histogram(h) for h in self.hist]
            raw["percentiles"] = {f"{q:g}": [p[i] for p in pct] for i, q in enumerate(PERCENTILES)}
        else:
            mean, std = raw["mean"], raw["std"]
            lo = [m.lo for m in self.moments]
            hi = [m.hi for m in self.moments]
        raw["min"], raw["max"] = lo, hi
        return {
            "mean": mean,
            "std": std,
            "std_per_image_mean": [s / scale for s in per_image],
            "min": [v / scale for v in lo],
            "max": [v / scale for v in hi],
            "raw": raw,
        }
