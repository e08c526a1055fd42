"""Reducers against exact oracles: Python integers and fractions.Fraction, never the code itself.

Integer data: every count, Σx, Σx² must equal the Python-integer sums and the variance must equal
the exact rational. Float data: the Chan merge of chunk partials must match an exact Fraction
reference to 1e-12 relative on adversarial data (offset 1e8, variance 1e-6), where the naive
E[x²] - E[x]² formula is shown to fail.
"""

from __future__ import annotations

import collections
import itertools
import math
import random
from fractions import Fraction
from functools import reduce

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from normstat.reduce import (
    PERCENTILES,
    FloatMoments,
    IntMoments,
    float_partial,
    histogram,
    histograms,
    int_partial,
    percentiles_from_histogram,
)
from normstat.reduce.exact import ExactSum

EPS = np.finfo(np.float64).eps
BITS = {8: (np.uint8, 256), 16: (np.uint16, 65536)}


# ---------------------------------------------------------------- exact references (pure Python)


def exact_int_stats(values: list[int]) -> tuple[int, int, int, Fraction]:
    """(n, Σx, Σx², variance) with Python integers; variance as Σ(n·x - Σx)² / n³."""
    n = len(values)
    total = sum(values)
    total_sq = sum(v * v for v in values)
    var = Fraction(sum((n * v - total) ** 2 for v in values), n**3)
    return n, total, total_sq, var


def exact_float_stats(values: np.ndarray) -> tuple[Fraction, Fraction]:
    """Exact mean and population variance of float64 values (each float is a rational)."""
    fr = [Fraction(float(v)) for v in values]
    n = len(fr)
    mean = sum(fr, Fraction(0)) / n
    var = sum(((f - mean) ** 2 for f in fr), Fraction(0)) / n
    return mean, var


def exact_percentile(values: list[int], q: float) -> int:
    """Nearest rank: the smallest v with at least ⌈q·N/100⌉ samples ≤ v (exact arithmetic)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(Fraction(str(q)) * len(ordered) / 100))
    return ordered[rank - 1]


def rel_err(got: float, ref: Fraction) -> float:
    return float(abs(Fraction(got) - ref) / abs(ref))


def fold(parts: list) -> object:
    return reduce(lambda a, b: a.merge(b), parts)


# ---------------------------------------------------------------- histogram / int_partial


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("seed", range(6))
def test_histogram_counts_every_value(bits: int, seed: int) -> None:
    dtype, bins = BITS[bits]
    rng = np.random.default_rng(1000 * bits + seed)
    shape = tuple(int(s) for s in rng.integers(1, 60, size=2))
    arr = rng.integers(0, bins, size=shape, dtype=dtype)
    hist = histogram(arr, bins)
    assert hist.shape == (bins,)
    assert hist.dtype == np.int64
    expected = [0] * bins
    for v in arr.ravel().tolist():
        expected[v] += 1
    assert hist.tolist() == expected


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("seed", range(8))
def test_int_partial_is_exact(bits: int, seed: int) -> None:
    dtype, bins = BITS[bits]
    rng = np.random.default_rng(seed + 17 * bits)
    size = int(rng.integers(1, 5000))
    # Half the seeds use values piled at the top of the range (saturated images).
    low = bins - 40 if seed % 2 else 0
    arr = rng.integers(low, bins, size=size, dtype=dtype)
    values = [int(v) for v in arr.ravel()]
    n, total, total_sq, var = exact_int_stats(values)

    m = int_partial(histogram(arr, bins))
    assert (m.count, m.total, m.total_sq) == (n, total, total_sq)
    assert all(type(x) is int for x in (m.count, m.total, m.total_sq))
    assert m.var_fraction() == var
    assert m.mean == float(Fraction(total, n))
    assert m.var == float(var)
    assert m.std == math.sqrt(float(var))


def test_int_partial_single_value_has_zero_variance() -> None:
    m = int_partial(histogram(np.array([[65535]], dtype=np.uint16), 65536))
    assert (m.count, m.total, m.total_sq) == (1, 65535, 65535**2)
    assert m.var_fraction() == 0
    assert m.var == 0.0
    assert m.std == 0.0


def test_empty_int_moments_are_nan() -> None:
    m = IntMoments()
    assert math.isnan(m.mean)
    assert math.isnan(m.var)
    assert math.isnan(m.std)


def test_int_partial_of_a_histogram_whose_sum_sq_exceeds_int64() -> None:
    """3·2³⁰ saturated 16-bit pixels: Σx² ≈ 1.4·2⁶³ fits uint64 but not int64."""
    count = 3 * 2**30
    hist = np.zeros(65536, dtype=np.int64)
    hist[65535] = count
    hist[0] = 5
    m = int_partial(hist)
    assert m.count == count + 5
    assert m.total == count * 65535
    assert m.total_sq == count * 65535**2
    assert m.total_sq > 2**63 - 1  # an int64 accumulator would have wrapped here
    n = count + 5
    assert m.var_fraction() == Fraction(n * count * 65535**2 - (count * 65535) ** 2, n * n)


def test_dataset_sum_sq_beyond_int64_stays_exact_where_int64_wraps() -> None:
    """Many saturated 16-bit images: the dataset Σx² passes 2⁶³; Python ints keep it exact."""
    per_image = 2**30  # pixels per (synthetic) image, all at 65535 except one 0 pixel
    hist = np.zeros(65536, dtype=np.int64)
    hist[65535] = per_image - 1
    hist[0] = 1
    parts = [int_partial(hist) for _ in range(12)]
    merged = fold(parts)

    n = 12 * per_image
    ones = 12 * (per_image - 1)
    assert merged.count == n
    assert merged.total == ones * 65535
    assert merged.total_sq == ones * 65535**2
    assert merged.total_sq > 2**64  # beyond even uint64
    assert merged.var_fraction() == Fraction(n * ones * 65535**2 - (ones * 65535) ** 2, n * n)

    # What a dataset-wide int64 accumulator would report instead: silently wrapped.
    wrapped = int(np.array([p.total_sq for p in parts], dtype=np.int64).sum())
    assert wrapped != merged.total_sq


def test_naive_float32_variance_is_wrong_where_exact_is_exact() -> None:
    rng = np.random.default_rng(5)
    data = rng.integers(60000, 65536, size=100_000).astype(np.uint16)
    values = data.tolist()
    _, _, _, var = exact_int_stats(values)

    x = data.astype(np.float32)
    mean32 = x.mean(dtype=np.float32)
    naive32 = float((x * x).mean(dtype=np.float32) - mean32 * mean32)
    assert rel_err(naive32, var) > 1e-6  # the naive float32 route is visibly off

    m = int_partial(histogram(data, 65536))
    assert m.var_fraction() == var
    assert m.var == float(var)


@pytest.mark.parametrize("seed", range(4))
def test_merged_image_partials_equal_whole_dataset(seed: int) -> None:
    rng = np.random.default_rng(seed)
    images = [
        rng.integers(0, 65536, size=tuple(rng.integers(1, 40, size=2)), dtype=np.uint16)
        for _ in range(int(rng.integers(2, 9)))
    ]
    merged = fold([int_partial(histogram(im, 65536)) for im in images])
    values = [int(v) for im in images for v in im.ravel()]
    n, total, total_sq, var = exact_int_stats(values)
    assert (merged.count, merged.total, merged.total_sq) == (n, total, total_sq)
    assert merged.var_fraction() == var
    assert merged.mean == float(Fraction(total, n))


# ---------------------------------------------------------------- FloatMoments


def chunked_moments(data: np.ndarray, sizes: list[int]) -> FloatMoments:
    assert sum(sizes) == data.size
    acc = FloatMoments()
    start = 0
    for size in sizes:
        acc = acc.merge(float_partial(data[start : start + size]))
        start += size
    return acc


@pytest.mark.parametrize("offset", [1e8, -1e8, 1e10])
@pytest.mark.parametrize("seed", range(3))
def test_float_merge_is_accurate_on_adversarial_data(offset: float, seed: int) -> None:
    """Offset 1e8, std 1e-3 (variance 1e-6), chunks of 11, 20, 37 and 1000 values."""
    sizes = [11, 20, 37, 1000]
    rng = np.random.default_rng(seed)
    data = offset + rng.normal(0.0, 1e-3, size=sum(sizes))
    mean, var = exact_float_stats(data)
    assert 1e-7 < float(var) < 1e-5

    acc = chunked_moments(data, sizes)
    assert acc.count == data.size
    assert rel_err(acc.mean, mean) <= 1e-12
    assert rel_err(acc.var, var) <= 1e-12
    assert rel_err(acc.std**2, var) <= 1e-12
    assert acc.lo == float(data.min())
    assert acc.hi == float(data.max())

    whole = float_partial(data)
    assert rel_err(whole.mean, mean) <= 1e-12
    assert rel_err(whole.var, var) <= 1e-12

    # The same data in another chunking (and as float32-shaped 2-D channel) agrees too.
    acc2 = chunked_moments(data, [1000, 37, 20, 11])
    assert rel_err(acc2.var, var) <= 1e-12


@pytest.mark.parametrize("seed", range(3))
def test_naive_formula_fails_on_the_adversarial_data(seed: int) -> None:
    """Guards the test above: on this data E[x²] - E[x]² in float64 is useless."""
    rng = np.random.default_rng(seed)
    data = 1e8 + rng.normal(0.0, 1e-3, size=1068)
    _, var = exact_float_stats(data)
    naive = float(np.mean(data * data) - np.mean(data) ** 2)
    assert rel_err(naive, var) > 1e-3


def test_float_partial_of_one_value_and_of_nothing() -> None:
    one = float_partial(np.array([[3.25]]))
    assert (one.count, one.mean, one.var, one.lo, one.hi) == (1, 3.25, 0.0, 3.25, 3.25)
    empty = float_partial(np.zeros((0, 3)))
    assert empty.count == 0
    assert math.isnan(empty.mean)
    assert math.isnan(empty.var)
    assert math.isnan(empty.std)


def test_float_partial_accepts_float32_channels() -> None:
    rng = np.random.default_rng(3)
    data = rng.random((17, 23), dtype=np.float32)
    mean, var = exact_float_stats(data.ravel().astype(np.float64))
    m = float_partial(data)
    assert m.count == data.size
    assert rel_err(m.mean, mean) <= 1e-12
    assert rel_err(m.var, var) <= 1e-12


# ---------------------------------------------------------------- Hypothesis properties

uint16_lists = st.lists(st.integers(0, 65535), min_size=1, max_size=60)


def _int_moments(values: list[int]) -> IntMoments:
    return int_partial(histogram(np.array(values, dtype=np.uint16), 65536))


@settings(max_examples=60, deadline=None)
@given(st.lists(uint16_lists, min_size=1, max_size=6), st.randoms(use_true_random=False))
def test_int_merge_is_associative_and_order_free(
    parts: list[list[int]], rnd: random.Random
) -> None:
    moments = [_int_moments(p) for p in parts]
    left = fold(moments)
    right = reduce(lambda a, b: b.merge(a), reversed(moments))  # right-nested fold
    shuffled = moments[:]
    rnd.shuffle(shuffled)
    assert left == right == fold(shuffled)
    if len(moments) >= 3:
        a, b, c = moments[:3]
        assert a.merge(b).merge(c) == a.merge(b.merge(c)) == c.merge(a).merge(b)
    values = [v for p in parts for v in p]
    n, total, total_sq, var = exact_int_stats(values)
    assert (left.count, left.total, left.total_sq) == (n, total, total_sq)
    assert left.var_fraction() == var


# Magnitudes of image-like data: zero, or between 1e-6 and 1e6. Far smaller values (1e-200) make
# the exact variance underflow float64 itself, which no float64 result can be relative-close to.
finite = st.one_of(
    st.just(0.0),
    st.floats(min_value=1e-6, max_value=1e6),
    st.floats(min_value=-1e6, max_value=-1e-6),
)


@st.composite
def data_and_chunking(draw: st.DrawFn) -> tuple[np.ndarray, list[int]]:
    offset = draw(st.sampled_from([0.0, 1e3, -1e5, 1e8]))
    spread = draw(st.sampled_from([1.0, 1e-3, 1e3]))
    raw = draw(st.lists(finite, min_size=1, max_size=200))
    data = offset + np.array(raw, dtype=np.float64) * (spread / 1e6)
    cuts = draw(st.lists(st.integers(0, len(raw)), max_size=8))
    bounds = sorted({0, len(raw), *cuts})
    return data, [b - a for a, b in itertools.pairwise(bounds)]


@settings(max_examples=200, deadline=None)
@given(data_and_chunking())
def test_chunked_float_merge_equals_whole_and_exact(case: tuple[np.ndarray, list[int]]) -> None:
    data, sizes = case
    mean, var = exact_float_stats(data)
    scale = float(np.abs(data).max())
    whole = float_partial(data)
    merged = chunked_moments(data, sizes)
    assert merged.count == whole.count == data.size
    for m in (merged, whole):
        # mean: 1e-12 relative to the data's magnitude (the exact mean may be ~0); variance: 1e-12
        # relative, no absolute slack (constant data must give exactly 0).
        assert abs(Fraction(m.mean) - mean) <= Fraction(1e-12) * Fraction(scale)
        assert abs(Fraction(m.var) - var) <= Fraction(1e-12) * var
    assert abs(merged.var - whole.var) <= 2e-12 * float(var)
    assert merged.lo == whole.lo == float(data.min())
    assert merged.hi == whole.hi == float(data.max())


@settings(max_examples=60, deadline=None)
@given(st.lists(finite, min_size=1, max_size=50), uint16_lists)
def test_merging_with_empty_is_identity(floats: list[float], ints: list[int]) -> None:
    f = float_partial(np.array(floats))
    assert FloatMoments().merge(f) == f
    assert f.merge(FloatMoments()) == f
    assert FloatMoments().merge(FloatMoments()).count == 0
    i = _int_moments(ints)
    assert IntMoments().merge(i) == i
    assert i.merge(IntMoments()) == i


# ---------------------------------------------------------------- percentiles


@pytest.mark.parametrize("values", [[7], [3, 250], [9, 0, 9], [0, 255, 128]])
def test_percentiles_of_tiny_datasets(values: list[int]) -> None:
    hist = histogram(np.array(values, dtype=np.uint8), 256)
    got = percentiles_from_histogram(hist)
    assert got == [exact_percentile(values, q) for q in PERCENTILES]
    assert got == [int(np.percentile(values, q, method="inverted_cdf")) for q in PERCENTILES]


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("seed", range(10))
def test_percentiles_match_numpy_inverted_cdf(bits: int, seed: int) -> None:
    dtype, bins = BITS[bits]
    rng = np.random.default_rng(seed)
    size = int(rng.choice([1, 2, 3, 199, 200, 201, int(rng.integers(4, 3000))]))
    data = rng.integers(0, min(bins, int(rng.choice([5, 300, bins]))), size=size, dtype=dtype)
    got = percentiles_from_histogram(histogram(data, bins))
    ref = [int(np.percentile(data, q, method="inverted_cdf")) for q in PERCENTILES]
    assert got == ref
    assert got == [exact_percentile(data.tolist(), q) for q in PERCENTILES]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 255), min_size=1, max_size=400))
def test_percentiles_property(values: list[int]) -> None:
    hist = histogram(np.array(values, dtype=np.uint8), 256)
    assert percentiles_from_histogram(hist) == [exact_percentile(values, q) for q in PERCENTILES]


def test_percentiles_on_boundary_ranks() -> None:
    """N = 200: 0.5 % of N is exactly rank 1, 99.5 % exactly rank 199 (no float fuzz)."""
    values = list(range(200))
    hist = histogram(np.array(values, dtype=np.uint8), 256)
    assert percentiles_from_histogram(hist, (0.5, 99.5, 50.0)) == [0, 198, 99]


# ---------------------------------------------------------------- ExactSum (per-image stds)


def exact_sum(values: list[float]) -> float:
    s = ExactSum()
    for v in values:
        s.add(v)
    return s.value


@pytest.mark.parametrize(
    "values",
    [
        [1.0, 1e100, 1.0, -1e100],
        [1e16, 1.0, -1e16],
        [0.1] * 10,
        [1e308, 3.0, -1e308],
        [5e-324, 5e-324, -1e-320],
        [],
    ],
)
def test_exact_sum_classic_cases(values: list[float]) -> None:
    """Correctly rounded, as math.fsum is (and Fractions confirm)."""
    assert exact_sum(values) == math.fsum(values) == float(sum(map(Fraction, values)))


@pytest.mark.parametrize("seed", range(5))
def test_exact_sum_is_order_free_on_wide_dynamic_range(seed: int) -> None:
    rng = np.random.default_rng(seed)
    mags = 10.0 ** rng.integers(-300, 300, size=2000)
    values = (rng.standard_normal(2000) * mags).tolist()
    values += [-v for v in values[:1000]]
    expected = float(sum(map(Fraction, values)))
    for _ in range(3):
        random.Random(seed).shuffle(values)
        assert exact_sum(values) == expected
    halves = ExactSum(), ExactSum()
    for i, v in enumerate(values):
        halves[i % 2].add(v)
    assert halves[0].merge(halves[1]).value == expected


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_histograms_count_every_channel_exactly(channels: int, dtype: type) -> None:
    """The Pillow fast path (8-bit) and the bincount path (16-bit) against a Counter per channel."""
    rng = np.random.default_rng(channels)
    top = 256 if dtype == np.uint8 else 65536
    pixels = rng.integers(0, top, (23, 41, channels)).astype(dtype)
    got = histograms(pixels, top)
    assert got.shape == (channels, top) and got.dtype == np.int64
    for c in range(channels):
        ref = collections.Counter(int(v) for v in pixels[..., c].ravel())
        assert {v: int(n) for v, n in enumerate(got[c]) if n} == dict(ref)
