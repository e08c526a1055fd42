"""The statistics a manifest reports, checked against the exact ``state`` they are computed from.

``mean``/``std`` are what apply divides by, so values that are finite but absurd (a std of
1e-320, a mean of 1e308) would make it write infinite or NaN arrays with exit 0. ``state`` holds
the exact moments (integers for 8/16-bit data), so the reported values are recomputed from it and
must agree; ``state`` itself must be a possible dataset's (bounded by the mode's maximum, a
non-negative variance), and the values must lie in the data's range."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np

from normstat.modes import Mode

from .covariance import check_covariance
from .ranges import check_range_histogram
from .values import Reader

__all__ = ["FLOAT32_MAX", "STD_FLOOR", "check_histogram", "check_statistics", "valid_counts"]

FLOAT32_MAX = float(np.finfo(np.float32).max)  # float modes hold float32 pixel values
STD_FLOOR = 1e-15  # relative to the data's magnitude: 2^63 8-bit pixels cannot vary less


def valid_counts(data: dict[str, Any], n: int) -> tuple[list[int], list[int]]:
    """Each channel's valid pixels and images with one (schema @2; @1: every pixel, image)."""
    pixels = data.get("pixels_valid", [data["pixels"]] * n)
    return list(pixels), list(data.get("images_valid", [data["images"]] * n))


def check_statistics(r: Reader, data: dict[str, Any], mode: Mode) -> None:
    """``state`` valid for ``mode``, and every reported statistic the value it gives."""
    state = r.obj(data["state"], "state")
    n, scale = len(mode.channels), mode.max_value
    count = r.integer(r.key(state, "count", "state"), "state.count", 1)
    if count != data["pixels"]:
        r.fail(f"'state.count' {count} is not 'pixels' {data['pixels']}")
    counts, images_valid = valid_counts(data, n)
    for key, want in (("counts", counts), ("images_valid", images_valid)):
        if state.get(key, want) != want or ("pixels_valid" in data) != (key in state):
            r.fail(f"'state.{key}' does not match the manifest's valid counts")
    sums = r.numbers(r.key(state, "std_per_image_sum", "state"), "state.std_per_image_sum", n)
    if any(s < 0 for s in sums):
        r.fail("'state.std_per_image_sum' holds a negative value")
    if mode.integer:
        mean_raw, var_raw = _int_state(r, state, mode, counts)
        mean = [float(Fraction(m) / Fraction(scale)) for m in mean_raw]
        std = [math.sqrt(float(v / Fraction(scale) ** 2)) for v in var_raw]
        raw_mean, raw_var = [float(m) for m in mean_raw], [float(v) for v in var_raw]
    else:
        raw_mean, raw_var = _float_state(r, state, n, counts)
        mean, std = raw_mean, [math.sqrt(v) for v in raw_var]
    if "exact" in state:
        _exact(r, state, mode, counts, sums, raw_mean, raw_var)
    raw = data["raw"]
    per_image = [s / k for s, k in zip(sums, images_valid, strict=True)]
    expected = {
        "mean": mean,
        "std": std,
        "std_per_image_mean": [p / scale for p in per_image],
        "raw.mean": raw_mean,
        "raw.var": raw_var,
        "raw.std": [math.sqrt(v) for v in raw_var],
        "raw.std_per_image_mean": per_image,
    }
    for key, values in expected.items():
        stored = raw[key[4:]] if key.startswith("raw.") else data[key]
        for got, exact in zip(stored, values, strict=True):
            r.agrees(float(got), exact, key)
    _ranges(r, data, mode, raw_mean)
    check_covariance(r, data, mode, count)


def _int_state(
    r: Reader, state: dict[str, Any], mode: Mode, counts: list[int]
) -> tuple[list[Fraction], list[Fraction]]:
    """Exact mean and variance per channel from Σx and Σx² of ``counts`` values in 0..max."""
    if state.get("kind") != "exact-int":
        r.fail(f"'state.kind' must be 'exact-int' for mode {mode.name}")
    n, top, most = len(mode.channels), int(mode.max_value), max(counts)
    total = r.integers(r.key(state, "sum", "state"), "state.sum", n, 0, most * top)
    sq = r.integers(r.key(state, "sum_sq", "state"), "state.sum_sq", n, 0, most * top * top)
    means, variances = [], []
    for s, q, count in zip(total, sq, counts, strict=True):
        if s > count * top:
            r.fail("'state' sums are not those of any data (sum out of range)")
        spread = count * q - s * s  # count² · variance
        if spread < 0 or q > top * s:  # Cauchy-Schwarz; x² ≤ max·x for 0 ≤ x ≤ max
            r.fail("'state' sums are not those of any data (sum_sq out of range)")
        means.append(Fraction(s, count))
        variances.append(Fraction(spread, count * count))
    return means, variances


def _float_state(
    r: Reader, state: dict[str, Any], n: int, counts: list[int]
) -> tuple[list[float], list[float]]:
    """Mean and variance per channel from the float partial (shift + offset, M2 / count)."""
    if state.get("kind") != "float":
        r.fail("'state.kind' must be 'float' for a float mode")
    shift = r.numbers(r.key(state, "shift", "state"), "state.shift", n)
    offset = r.numbers(r.key(state, "mean_offset", "state"), "state.mean_offset", n)
    m2 = r.numbers(r.key(state, "m2", "state"), "state.m2", n)
    if any(v < 0 for v in m2):
        r.fail("'state.m2' holds a negative value")
    if any(abs(v) > FLOAT32_MAX for v in shift + offset):
        r.fail("'state' values are outside the float32 range of the data")
    means = [a + b for a, b in zip(shift, offset, strict=True)]
    return means, [v / count for v, count in zip(m2, counts, strict=True)]


EXACT_BITS = 1100  # the scale of the exact sums (normstat.reduce.exact.BITS)
_MAX_HEX = 1200  # hex digits: squares of float32-range values at 2^2200 need ~600


def _hex_ints(r: Reader, value: Any, what: str, n: int) -> list[int]:
    if not isinstance(value, list) or len(value) != n:
        r.fail(f"'{what}' must be a list of {n} hex integers, one per channel")
    out = []
    for v in value:
        if not isinstance(v, str) or not 3 <= len(v) <= _MAX_HEX:
            r.fail(f"'{what}' must hold hex integers such as '0x1f'")
        try:
            out.append(int(v, 16))
        except ValueError:
            r.fail(f"'{what}' must hold hex integers such as '0x1f'")
        if not v.lstrip("-").startswith("0x"):
            r.fail(f"'{what}' must hold hex integers such as '0x1f'")
    return out


def _exact(
    r: Reader,
    state: dict[str, Any],
    mode: Mode,
    counts: list[int],
    sums: list[float],
    raw_mean: list[float],
    raw_var: list[float],
) -> None:
    """``state.exact``: the exact sums merging adds up; the rounded state must be theirs."""
    exact = r.obj(state["exact"], "state.exact")
    if r.integer(r.key(exact, "bits", "state.exact"), "state.exact.bits") != EXACT_BITS:
        r.fail(f"'state.exact.bits' must be {EXACT_BITS}")
    n, one = len(mode.channels), Fraction(1 << EXACT_BITS)
    std_sums = _hex_ints(r, r.key(exact, "std_per_image_sum", "state.exact"), "state.exact", n)
    for got, scaled in zip(sums, std_sums, strict=True):
        if scaled < 0:
            r.fail("'state.exact.std_per_image_sum' holds a negative value")
        r.agrees(got, float(scaled / one), "state.std_per_image_sum")
    if mode.integer:
        return
    total = _hex_ints(r, r.key(exact, "sum", "state.exact"), "state.exact.sum", n)
    total_sq = _hex_ints(r, r.key(exact, "sum_sq", "state.exact"), "state.exact.sum_sq", n)
    for c in range(n):
        count = counts[c]
        mean = Fraction(total[c]) / one / count
        m2 = Fraction(total_sq[c]) / one / one - mean * mean * count
        if m2 < 0:
            r.fail("'state.exact' sums are not those of any data (negative variance)")
        if abs(mean) > FLOAT32_MAX:
            r.fail("'state.exact' values are outside the float32 range of the data")
        r.agrees(raw_mean[c], float(mean), "state.exact.sum")
        r.agrees(raw_var[c], float(m2 / count), "state.exact.sum_sq")


def _ranges(r: Reader, data: dict[str, Any], mode: Mode, mean_raw: list[float]) -> None:
    """min ≤ mean ≤ max within the mode's range; a std no larger than the range allows, and
    either 0 (a constant channel: apply refuses to divide by it) or not vanishingly small."""
    raw, scale = data["raw"], mode.max_value
    bound = float(mode.max_value) if mode.integer else FLOAT32_MAX
    for c in range(len(mode.channels)):
        lo, hi = float(raw["min"][c]), float(raw["max"][c])
        if mode.integer and not (lo.is_integer() and hi.is_integer()):
            r.fail(f"'raw.min'/'raw.max' must be integers for mode {mode.name}")
        if not (-bound if not mode.integer else 0.0) <= lo <= hi <= bound:
            r.fail(f"'raw.min'/'raw.max' {lo!r}/{hi!r} are not a range of mode {mode.name}")
        slack = 1e-9 * max(abs(lo), abs(hi), 1e-300)
        if not lo - slack <= mean_raw[c] <= hi + slack:
            r.fail(f"'mean' of channel {mode.channels[c]} lies outside its min..max")
        for key, value in (("min", lo), ("max", hi)):
            if key in data:
                r.agrees(float(data[key][c]), value / scale, key)
        magnitude = max(1.0, abs(lo) / scale, abs(hi) / scale)
        widest = (hi - lo) / 2 / scale
        for key in ("std", "std_per_image_mean"):
            s = float(data[key][c])
            if s > widest * (1 + 1e-9) + 1e-300:
                r.fail(f"'{key}' {s!r} is larger than the data's range allows")
            if 0 < s < STD_FLOOR * magnitude:
                r.fail(f"'{key}' {s!r} is positive but too small to divide by")


def check_histogram(r: Reader, hist: np.ndarray, data: dict[str, Any]) -> None:
    """The sidecar's histogram must be the one ``state`` and ``raw.min``/``max`` came from:
    merge adds histograms, and percentiles are read from them."""
    if "range" in data["options"]:
        check_range_histogram(r, hist, data)
        return
    state = data["state"]
    valid, _ = valid_counts(data, len(hist))
    for c, row in enumerate(hist):
        count = valid[c]
        values = np.flatnonzero(row)
        counts = [int(h) for h in row[values]]
        bins = [int(v) for v in values]
        if sum(counts) != count:
            r.fail(f"sidecar histogram of channel {c} does not count {count} pixels")
        total = sum(v * h for v, h in zip(bins, counts, strict=True))
        sq = sum(v * v * h for v, h in zip(bins, counts, strict=True))
        if total != state["sum"][c] or sq != state["sum_sq"][c]:
            r.fail(f"sidecar histogram of channel {c} does not agree with 'state'")
        if bins[0] != data["raw"]["min"][c] or bins[-1] != data["raw"]["max"][c]:
            r.fail(f"sidecar histogram of channel {c} does not agree with 'raw.min'/'raw.max'")
