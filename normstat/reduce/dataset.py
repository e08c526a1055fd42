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

from .covariance import CrossMoments, report
from .exact import BITS, ExactFloatMoments, ExactSum
from .histograms import PERCENTILES, percentiles_from_histogram
from .moments import FloatMoments, IntMoments

__all__ = ["DatasetMoments"]

Moments = IntMoments | FloatMoments
STATE_BITS = BITS  # the scale of the exact sums a manifest's ``state.exact`` holds


@dataclass
class DatasetMoments:
    """Partial statistics of ``images`` images in ``mode``; ``hist`` (channels × bins) for
    integer modes; ``cross`` the channel cross products, when the covariance is asked for.
    With masks, each channel's moments count its valid pixels only, out of ``pixels`` per
    channel, and ``images_valid`` counts the images with a valid pixel in it (those its mean of
    per-image stds is over)."""

    mode: Mode
    moments: list[Any] = field(default_factory=list)  # IntMoments | ExactFloatMoments
    std_sums: list[ExactSum] = field(default_factory=list)
    hist: np.ndarray | None = None
    images: int = 0
    pixels: int = 0
    images_valid: list[int] = field(default_factory=list)
    cross: CrossMoments | None = None

    def __post_init__(self) -> None:
        n, mode = len(self.mode.channels), self.mode
        if not self.moments:
            self.moments = [IntMoments() if mode.integer else ExactFloatMoments() for _ in range(n)]
        if not self.std_sums:
            self.std_sums = [ExactSum() for _ in range(n)]
        if not self.images_valid:
            self.images_valid = [self.images] * n
        if self.hist is None and mode.integer:
            self.hist = np.zeros((n, mode.bins), dtype=np.int64)

    def add(
        self,
        moments: tuple[Moments, ...],
        pixels: int | None = None,
        products: tuple[int | float, ...] | None = None,
    ) -> None:
        """Fold in one image's per-channel partials (its histogram comes with its chunk's) and,
        with the covariance, its cross products; ``pixels``: its size, when masks leave fewer
        valid pixels. A channel without a valid pixel adds nothing, not even to the mean of
        per-image stds."""
        if self.cross is not None:
            if products is None:
                raise ValueError("image without the cross products the covariance needs")
            self.cross.add(moments, products)
        for c, m in enumerate(moments):
            if m.count == 0:
                continue
            if isinstance(m, IntMoments):
                self.moments[c] = self.moments[c].merge(m)
            else:
                self.moments[c].add(m)
            self.std_sums[c].add(m.std)
            self.images_valid[c] += 1
        self.images += 1
        self.pixels += moments[0].count if pixels is None else pixels

    @property
    def masked(self) -> bool:
        """Whether any pixel or image was left out of some channel."""
        counts = [m.count for m in self.moments]
        return any(c != self.pixels for c in counts) or any(
            v != self.images for v in self.images_valid
        )

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
            self.pixels + other.pixels,
            [a + b for a, b in zip(self.images_valid, other.images_valid, strict=True)],
            _merged_cross(self.cross, other.cross),
        )

    def to_state(self, counts: bool = False) -> dict[str, Any]:
        """The manifest's ``state``: exact integers, or the float partial; ``exact`` holds the
        exact sums (hex integers scaled by 2^bits) that merging needs. ``counts`` (schema @2):
        each channel's valid pixels and images too, ``count`` being the images' pixels."""
        state: dict[str, Any]
        if self.mode.integer:
            state = {
                "kind": "exact-int",
                "count": self.pixels,
                "sum": [m.total for m in self.moments],
                "sum_sq": [m.total_sq for m in self.moments],
            }
        else:
            state = {
                "kind": "float",
                "count": self.pixels,
                "shift": [m.shift for m in self.moments],
                "mean_offset": [m.mean_offset for m in self.moments],
                "m2": [m.m2 for m in self.moments],
            }
        if counts:
            state["counts"] = [m.count for m in self.moments]
            state["images_valid"] = list(self.images_valid)
        state["std_per_image_sum"] = [s.value for s in self.std_sums]
        exact: dict[str, Any] = {"bits": STATE_BITS}
        if not self.mode.integer:
            exact["sum"] = [hex(m.total) for m in self.moments]
            exact["sum_sq"] = [hex(m.total_sq) for m in self.moments]
        exact["std_per_image_sum"] = [hex(s.scaled_total) for s in self.std_sums]
        state["exact"] = exact
        if self.cross is not None:
            state["covariance"] = self.cross.to_state()
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
        n, pixels = len(mode.channels), int(state["count"])
        counts = [int(v) for v in state.get("counts", [pixels] * n)]
        images_valid = [int(v) for v in state.get("images_valid", [images] * n)]
        exact = state.get("exact")
        moments: list[Any]
        if mode.integer:
            moments = [
                IntMoments(counts[c], int(state["sum"][c]), int(state["sum_sq"][c]))
                for c in range(n)
            ]
        else:
            lo = lo if lo is not None else [math.inf] * n
            hi = hi if hi is not None else [-math.inf] * n
            moments = []
            for c in range(n):
                m = ExactFloatMoments()
                m.add(
                    FloatMoments(
                        counts[c],
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
        cross = None
        if "covariance" in state:
            cross = CrossMoments.from_state(state["covariance"], n, mode.integer)
        return cls(mode, moments, sums, hist, images, pixels, images_valid, cross)

    def summary(self, percentiles: tuple[float, ...] = PERCENTILES) -> dict[str, Any]:
        """mean, std (pooled and per-image mean), min and max in [0, 1] units, and ``raw``: the
        same in pixel units with var and (integer modes) exact ``percentiles``."""
        mode = self.mode
        scale = mode.max_value
        per_image = [s.value / n for s, n in zip(self.std_sums, self.images_valid, strict=True)]
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
            pct = [percentiles_from_histogram(h, percentiles) for h in self.hist]
            raw["percentiles"] = {f"{q:g}": [p[i] for p in pct] for i, q in enumerate(percentiles)}
        else:
            mean, std = raw["mean"], raw["std"]
            lo = [m.lo for m in self.moments]
            hi = [m.hi for m in self.moments]
        raw["min"], raw["max"] = lo, hi
        out = {
            "mean": mean,
            "std": std,
            "std_per_image_mean": [s / scale for s in per_image],
            "min": [v / scale for v in lo],
            "max": [v / scale for v in hi],
            "raw": raw,
        }
        if self.cross is not None:
            out.update(self._covariance_report(raw))
        return out

    def _covariance_report(self, raw: dict[str, Any]) -> dict[str, Any]:
        """``raw.covariance`` (added to ``raw``), and ``correlation`` and ``pca`` to report."""
        assert self.cross is not None
        count = self.moments[0].count
        totals = [m.total for m in self.moments]
        squares = [m.total_sq for m in self.moments]
        cov = self.cross.covariance(count, totals, squares)
        found = report(cov, self.mode.max_value)
        raw["covariance"] = found.pop("covariance")
        return found


def _merged_cross(a: CrossMoments | None, b: CrossMoments | None) -> CrossMoments | None:
    if a is None and b is None:
        return None
    if a is None or b is None:
        raise ValueError("cannot merge statistics with and without the covariance")
    return a.merge(b)
