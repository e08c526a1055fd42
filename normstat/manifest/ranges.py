"""The manifest's float range (``--range LO,HI``): its ``range`` block and float percentiles,
built from the dataset's channels × (B + 2) histogram, and checked on load: against the valid
counts always, against the sidecar's histogram when it is read (merge adds those)."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np

from normstat.modes import Mode
from normstat.options import RANGE_BINS, range_pair
from normstat.reduce import PERCENTILES
from normstat.reduce.ranges import ABOVE, BELOW, FloatRange, range_histogram, range_report

from .values import Reader

__all__ = [
    "MEANING",
    "check_range_histogram",
    "check_range_options",
    "check_range_report",
    "percentiles_of",
    "range_block",
    "range_of",
]

MEANING = (
    "raw.percentiles are lower edges of the bins holding the nearest-rank percentiles: the true "
    "percentile p satisfies edge <= p < the next bin's edge (edge + width, rounded up to "
    "float64; p <= hi in the last bin); 'below' means p < lo, 'above' means p > hi"
)


def range_of(options: dict[str, Any]) -> FloatRange | None:
    """The options' float range, or None (validated options only)."""
    pair = options.get("range")
    if pair is None:
        return None
    return FloatRange(float(pair[0]), float(pair[1]), int(options.get("bins", RANGE_BINS)))


def range_block(
    hist: np.ndarray, spec: FloatRange, qs: tuple[float, ...]
) -> tuple[dict[str, Any], dict[str, list[float | str]]]:
    """The ``range`` block and ``raw.percentiles`` of float data whose channels × (B + 2)
    histogram over ``spec`` is ``hist``."""
    pct, below, above = range_report(hist, spec, qs)
    block = {
        "lo": spec.lo,
        "hi": spec.hi,
        "bins": spec.bins,
        "width": spec.width,
        "below": below,
        "above": above,
        "percentiles": MEANING,
    }
    return block, pct


def check_range_options(r: Reader, options: dict[str, Any]) -> None:
    """``options.range`` a valid LO,HI and ``options.bins`` the bins this normstat uses."""
    pair = options["range"]
    try:
        if not isinstance(pair, list) or any(isinstance(v, bool) for v in pair):
            raise ValueError
        if list(range_pair(pair)) != pair:
            raise ValueError
    except (ValueError, TypeError):
        r.fail("'options.range' must be [LO, HI] with finite LO < HI")
    if options.get("bins") != RANGE_BINS or isinstance(options.get("bins"), bool):
        r.fail(f"'options.bins' must be {RANGE_BINS} with 'options.range'")


def check_range_report(r: Reader, data: dict[str, Any], mode: Mode, qs: tuple[float, ...]) -> None:
    """The ``range`` block matches the options, and each percentile is a bin edge, or a tail
    that the below/above counts put it in; min and max agree with the tails too."""
    options, n = data["options"], len(mode.channels)
    if "range" not in options:
        if "range" in data:
            r.fail("'range' needs 'options.range'")
        return
    if mode.integer:
        r.fail(f"'options.range' is for float data, not mode {mode.name}")
    spec = range_of(options)
    assert spec is not None
    block = r.obj(r.key(data, "range", "manifest"), "range")
    for key, want in (("lo", spec.lo), ("hi", spec.hi), ("bins", spec.bins)):
        if r.key(block, key, "range") != want:
            r.fail(f"'range.{key}' does not match the options")
    r.agrees(
        float(r.number(r.key(block, "width", "range"), "range.width")), spec.width, "range.width"
    )
    r.text(r.key(block, "percentiles", "range"), "range.percentiles")
    counts = data["pixels_valid"]
    below = r.integers(r.key(block, "below", "range"), "range.below", n, 0, max(counts))
    above = r.integers(r.key(block, "above", "range"), "range.above", n, 0, max(counts))
    edges = spec.edges()
    pct = r.obj(r.key(data["raw"], "percentiles", "raw"), "raw.percentiles")
    if sorted(pct) != sorted(f"{q:g}" for q in qs):
        r.fail(f"'raw.percentiles' must hold {', '.join(f'{q:g}' for q in qs)}")
    for c in range(n):
        total = counts[c]
        if below[c] + above[c] > total:
            r.fail(f"'range' below and above of channel {c} exceed its valid pixels")
        for q in qs:
            got = pct[f"{q:g}"]
            if not isinstance(got, list) or len(got) != n:
                r.fail(f"'raw.percentiles.{q:g}' must hold {n} values")
            rank = max(1, math.ceil(Fraction(str(q)) * total / 100))
            tail = BELOW if rank <= below[c] else ABOVE if rank > total - above[c] else None
            value = got[c]
            if tail is not None or isinstance(value, str):
                if value != tail:
                    r.fail(f"'raw.percentiles.{q:g}' of channel {c} contradicts 'range' counts")
                continue
            v = r.number(value, f"raw.percentiles.{q:g}")
            k = int(np.searchsorted(edges, v))
            if not (k < spec.bins and edges[k] == v):
                r.fail(f"'raw.percentiles.{q:g}' of channel {c} is not a bin edge of 'range'")
        lo, hi = float(data["raw"]["min"][c]), float(data["raw"]["max"][c])
        if (below[c] > 0) != (lo < spec.lo) or (above[c] > 0) != (hi > spec.hi):
            r.fail(f"'raw.min'/'raw.max' of channel {c} contradict 'range' below/above")


def check_range_histogram(r: Reader, hist: np.ndarray, data: dict[str, Any]) -> None:
    """The sidecar's float histogram must be the one the valid counts, tails, percentiles and
    min/max came from."""
    spec = range_of(data["options"])
    assert spec is not None
    block, pct = range_block(hist, spec, percentiles_of(data["options"]))
    counts = data["pixels_valid"]
    for c, row in enumerate(hist):
        if int(row.sum()) != counts[c]:
            r.fail(f"sidecar histogram of channel {c} does not count {counts[c]} pixels")
        inside = np.flatnonzero(row[1:-1])
        for key, k in (("min", 0), ("max", -1)):
            value = float(data["raw"][key][c])
            if spec.lo <= value <= spec.hi:
                at = int(np.flatnonzero(range_histogram(np.array([value]), spec)[1:-1])[0])
                if inside.size == 0 or at != inside[k]:
                    r.fail(f"sidecar histogram of channel {c} does not agree with 'raw.{key}'")
    if block["below"] != data["range"]["below"] or block["above"] != data["range"]["above"]:
        r.fail("sidecar histogram does not agree with 'range' below/above")
    if pct != data["raw"]["percentiles"]:
        r.fail("sidecar histogram does not agree with 'raw.percentiles'")


def percentiles_of(options: dict[str, Any]) -> tuple[float, ...]:
    """The percentiles a manifest reports: its ``options.percentiles``, else the default."""
    chosen = options.get("percentiles")
    return PERCENTILES if chosen is None else tuple(float(q) for q in chosen)
