"""What ``show --plot`` draws, as plain numbers: the histogram rebinned for display (exact
integer sums of the stored bins), and the marks in raw pixel units. No matplotlib here, so the
figure's content is tested against NumPy without drawing it."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

from normstat.manifest import Stats

__all__ = ["LOG_RATIO", "MAX_BINS", "Panel", "PlotData", "choose_log", "prepare", "rebin"]

MAX_BINS = 1024  # display bins of a 16-bit histogram: a figure 900 pixels wide shows no more
LOG_RATIO = 30  # a bin this many times the median non-zero bin flattens a linear axis


@dataclass(frozen=True)
class Panel:
    """One channel. Bin ``k`` holds the pixels of values ``start + k·width`` to
    ``start + (k+1)·width - 1``; ``edges`` are those bounds ∓ 0.5, so a value sits mid-unit."""

    channel: str
    mean: float  # raw units, as every value here
    std: float
    lo: float
    hi: float
    percentiles: dict[str, float]  # "p1" -> value, in the manifest's order
    counts: np.ndarray | None = field(default=None, repr=False)  # int64; None: no histogram
    start: int = 0
    width: int = 1

    @property
    def edges(self) -> np.ndarray:
        assert self.counts is not None
        return self.start - 0.5 + self.width * np.arange(len(self.counts) + 1, dtype=np.float64)


@dataclass(frozen=True)
class PlotData:
    name: str  # the manifest's file name
    mode: str
    dtype: str
    max_value: float  # raw value of 1.0 on the [0, 1] scale
    images: int
    pixels: int
    skipped: int
    panels: list[Panel]
    log: bool
    note: str | None  # why there are no bars, when there are none


def rebin(
    row: np.ndarray, start: int, stop: int, max_bins: int = MAX_BINS
) -> tuple[np.ndarray, int]:
    """Counts of values ``start..stop`` (inclusive) of a per-value histogram ``row``, summed into
    at most ``max_bins`` bins of one integer width (the last one may reach past ``stop``, where
    the added values count 0); the counts and the width. Exact: int64 sums of stored bins."""
    span = stop - start + 1
    width = max(1, math.ceil(span / max_bins))
    n = math.ceil(span / width)
    part = np.zeros(n * width, dtype=np.int64)
    taken = np.asarray(row[start : start + n * width], dtype=np.int64)
    part[: len(taken)] = taken
    return part.reshape(n, width).sum(axis=1), width


def choose_log(panels: list[Panel]) -> bool:
    """Log counts when some bin towers over the typical one (a black background, a saturated
    highlight): on a linear axis the rest of the distribution would be a flat line."""
    for p in panels:
        if p.counts is None:
            continue
        nonzero = p.counts[p.counts > 0]
        if len(nonzero) and int(nonzero.max()) > LOG_RATIO * float(np.median(nonzero)):
            return True
    return False


def prepare(stats: Stats, log: bool | None = None, max_bins: int = MAX_BINS) -> PlotData:
    """The figure's content for ``stats`` (loaded with its histogram); ``log`` None chooses."""
    d = stats.data
    raw = d["raw"]
    channels = stats.channels
    pct = raw.get("percentiles", {})
    hist = stats.histogram
    top = int(d["max_value"])
    if hist is not None and hist.shape[1] > 256:  # 16 bits: the data's range, not 0..65535
        start, stop = int(min(raw["min"])), int(max(raw["max"]))
    else:
        start, stop = 0, top
    panels = []
    for c, name in enumerate(channels):
        counts, width = (None, 1) if hist is None else rebin(hist[c], start, stop, max_bins)
        panels.append(
            Panel(
                channel=str(name),
                mean=float(raw["mean"][c]),
                std=float(raw["std"][c]),
                lo=float(raw["min"][c]),
                hi=float(raw["max"][c]),
                percentiles={f"p{q}": float(values[c]) for q, values in pct.items()},
                counts=counts,
                start=start,
                width=width,
            )
        )
    note = None
    if hist is None:
        note = (
            "no histogram stored for float data"
            if not stats.dataset_mode().integer
            else "the sidecar holds no histogram"
        ) + ": mean ± std, min and max only"
    return PlotData(
        name=os.path.basename(stats.path or "stats.json"),
        mode=stats.mode,
        dtype=str(d["dtype"]),
        max_value=float(d["max_value"]),
        images=stats.images,
        pixels=int(d["pixels"]),
        skipped=len(stats.skipped),
        panels=panels,
        log=choose_log(panels) if log is None else log,
        note=note,
    )
