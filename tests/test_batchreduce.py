"""The batched, namespace-generic reducer against the per-image CPU path and exact references,
and the fused kernel's NumPy twin against the generic path."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from fake_cupy import TwinReductionKernel, WrongReductionKernel, make_fake_cupy, sum_sq_twin
from helpers import reduce_image
from hypothesis import given, settings
from hypothesis import strategies as st

from normstat.modes import MODES
from normstat.readers import Decoded
from normstat.reduce import FloatMoments, IntMoments
from normstat.reduce.batch import batch_histogram, reduce_batch, sum_sq
from normstat.reduce.kernels import fused_sum_sq, kernel_matches

RNG = np.random.default_rng(20261121)


def _batch(dtype: str, shape: tuple[int, int, int, int]) -> np.ndarray:
    if dtype == "uint8":
        return RNG.integers(0, 256, shape, dtype=np.uint8)
    if dtype == "uint16":
        return RNG.integers(0, 65536, shape, dtype=np.uint16)
    return (RNG.standard_normal(shape) * 3 + 1).astype(dtype)


MODE_OF = {
    ("uint8", 1): "L",
    ("uint8", 3): "RGB",
    ("uint8", 4): "RGBA",
    ("uint16", 1): "I;16",
    ("uint16", 3): "RGB;16",
    ("float32", 1): "F",
    ("float32", 3): "RGB;F",
}


@pytest.mark.parametrize(("dtype", "channels"), sorted(MODE_OF))
def test_batch_equals_per_image_cpu_path(dtype: str, channels: int) -> None:
    """Per image, the batch gives exactly the partials the per-image CPU path gives (floats
    too: the same arithmetic, rows summed like the 1-D array), and the summed histogram."""
    mode = MODES[MODE_OF[(dtype, channels)]]
    x = _batch(dtype, (5, 17, 23, channels))
    got = reduce_batch(x, mode)
    total = np.zeros((channels, mode.bins), dtype=np.int64) if mode.integer else None
    for i in range(len(x)):
        record, hists = reduce_image(Decoded(x[i], mode.name), mode.name)
        assert got.moments[i] == record.moments
        if total is not None:
            total += np.stack(hists)
    if total is None:
        assert got.hist is None
    else:
        assert got.hist is not None and np.array_equal(got.hist, total)


def test_integer_sums_are_exact_at_the_extremes() -> None:
    """All-65535 16-bit images: Σx² is far beyond float64's exact range; int64 stays exact."""
    x = np.full((2, 300, 400, 1), 65535, dtype=np.uint16)
    (m,) = reduce_batch(x, MODES["I;16"]).moments[0]
    assert isinstance(m, IntMoments)
    assert m.count == 120_000
    assert m.total == 65535 * 120_000
    assert m.total_sq == 65535 * 65535 * 120_000
    assert m.var_fraction() == 0


def test_adversarial_float_batch_matches_fractions() -> None:
    """Offset 1e8, variance 1e-6: per image and merged, ≤ 1e-12 relative to exact Fractions."""
    x = (1e8 + RNG.standard_normal((4, 30, 40, 1)) * 1e-3).astype(np.float64)
    got = reduce_batch(x, MODES["F"])
    merged = FloatMoments()
    for i in range(len(x)):
        (m,) = got.moments[i]
        assert isinstance(m, FloatMoments)
        merged = merged.merge(m)
        vals = [Fraction(float(v)) for v in x[i].ravel()]
        mean = sum(vals) / len(vals)
        var = sum((v - mean) ** 2 for v in vals) / len(vals)
        assert m.mean == pytest.approx(float(mean), rel=1e-15)
        assert m.var == pytest.approx(float(var), rel=1e-12)
    vals = [Fraction(float(v)) for v in x.ravel()]
    mean = sum(vals) / len(vals)
    var = sum((v - mean) ** 2 for v in vals) / len(vals)
    assert merged.mean == pytest.approx(float(mean), rel=1e-15)
    assert merged.var == pytest.approx(float(var), rel=1e-12)
    assert merged.std == pytest.approx(math.sqrt(var), rel=1e-12)


@settings(max_examples=25, deadline=None)
@given(
    st.integers(1, 6),
    st.integers(1, 9),
    st.integers(1, 9),
    st.sampled_from(["uint8", "uint16", "float32"]),
    st.integers(1, 5),
)
def test_batching_does_not_change_per_image_partials(
    b: int, h: int, w: int, dtype: str, split: int
) -> None:
    """Any cut of a batch into smaller batches gives the same per-image partials and the same
    summed histogram."""
    mode = MODES[MODE_OF[(dtype, 3 if dtype != "uint16" else 1)]]
    x = _batch(dtype, (b, h, w, len(mode.channels)))
    whole = reduce_batch(x, mode)
    cut = min(split, b)
    parts = [reduce_batch(x[:cut], mode)] + ([reduce_batch(x[cut:], mode)] if cut < b else [])
    assert [m for p in parts for m in p.moments] == whole.moments
    if mode.integer:
        assert np.array_equal(sum(p.hist for p in parts), whole.hist)  # type: ignore[misc]


def test_batch_histogram_is_per_channel() -> None:
    x = np.zeros((1, 2, 2, 3), dtype=np.uint8)
    x[..., 1] = 7
    x[0, 0, 0, 2] = 255
    h = batch_histogram(x, 256)
    assert h.shape == (3, 256)
    assert h[0, 0] == 4 and h[1, 7] == 4 and h[2, 0] == 3 and h[2, 255] == 1


def test_bad_batches_are_refused() -> None:
    with pytest.raises(ValueError, match="expected"):
        reduce_batch(np.zeros((2, 3, 3, 1), np.uint8), MODES["RGB"])
    with pytest.raises(ValueError, match="empty"):
        reduce_batch(np.zeros((0, 3, 3, 3), np.uint8), MODES["RGB"])


# ---------------------------------------------------------------- the kernel's NumPy twin


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32", "float64"])
@pytest.mark.parametrize("axis", [1, 2])
def test_twin_matches_generic_sum_of_squares(dtype: str, axis: int) -> None:
    """The kernel's arithmetic (widen, square, add; in blocks) against the generic path:
    integers identical, floats within 1e-12 (only the summation order differs)."""
    x = _batch(dtype, (3, 70_001, 3, 1))[..., 0]
    twin, generic = sum_sq_twin(x, axis), sum_sq(x, axis)
    assert twin.dtype == generic.dtype and twin.shape == generic.shape
    if dtype.startswith("float"):
        np.testing.assert_allclose(twin, generic, rtol=1e-12, atol=0)
    else:
        assert np.array_equal(twin, generic)


def test_twin_as_fused_gives_the_generic_batch_results() -> None:
    for key in [("uint16", 3), ("float32", 3)]:
        mode = MODES[MODE_OF[key]]
        x = _batch(key[0], (3, 33, 35, 3))
        plain = reduce_batch(x, mode)
        fused = reduce_batch(x, mode, fused=sum_sq_twin)
        for a, b in zip(plain.moments, fused.moments, strict=True):
            for ma, mb in zip(a, b, strict=True):
                assert ma.mean == mb.mean
                assert ma.var == pytest.approx(mb.var, rel=1e-12)


def test_kernel_is_used_only_when_it_matches() -> None:
    """A device kernel is handed out after it reproduced the generic path; a wrong one never."""
    assert fused_sum_sq(np) is None
    good = make_fake_cupy(TwinReductionKernel)
    assert fused_sum_sq(good) is not None
    assert fused_sum_sq(make_fake_cupy(WrongReductionKernel)) is None
    assert fused_sum_sq(make_fake_cupy(None)) is None
    assert kernel_matches(lambda a, axis: sum_sq(a, axis), np)
    assert not kernel_matches(lambda a, axis: sum_sq(a, axis).astype(np.float32), np)


@pytest.mark.parametrize("key", [("uint8", 3), ("uint8", 4), ("uint16", 1), ("float32", 3)])
def test_cpu_array_route_equals_the_generic_batch(key: tuple[str, int]) -> None:
    """The CPU's histogram route for .npy batches gives the generic batch's exact results."""
    from normstat.verbs.compute.arrays import reduce_on_cpu

    mode = MODES[MODE_OF[key]]
    x = _batch(key[0], (4, 19, 21, key[1]))
    fast, generic = reduce_on_cpu(x, mode), reduce_batch(x, mode)
    assert fast.moments == generic.moments
    if mode.integer:
        assert np.array_equal(fast.hist, generic.hist)  # type: ignore[arg-type]
