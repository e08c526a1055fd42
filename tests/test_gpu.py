"""On a real CUDA device (``pytest -m gpu``): CuPy results against the NumPy results of the same
code, on random 8-bit, 16-bit and float batches, and compute end to end. Skipped, with the
reason, where CuPy or a device is missing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fake_cupy import sum_sq_twin
from PIL import Image

import normstat
from normstat.errors import DeviceError
from normstat.modes import MODES
from normstat.reduce.batch import reduce_batch, sum_sq
from normstat.reduce.device import load_cupy
from normstat.reduce.kernels import fused_sum_sq

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def cp():  # type: ignore[no-untyped-def]
    try:
        return load_cupy()
    except DeviceError as exc:
        pytest.skip(f"no GPU: {exc.reason}")


def _batch(kind: str, shape: tuple[int, ...]) -> np.ndarray:
    rng = np.random.default_rng(3)
    if kind == "uint8":
        return rng.integers(0, 256, shape, dtype=np.uint8)
    if kind == "uint16":
        return rng.integers(0, 65536, shape, dtype=np.uint16)
    return (1e8 + rng.standard_normal(shape) * 1e-3).astype(kind)


CASES = [("uint8", "RGB"), ("uint16", "RGB;16"), ("float32", "RGB;F"), ("float64", "RGB;F")]


@pytest.mark.parametrize(("kind", "mode"), CASES)
@pytest.mark.parametrize("use_kernel", [False, True])
def test_gpu_batch_equals_cpu_batch(cp, kind: str, mode: str, use_kernel: bool) -> None:  # type: ignore[no-untyped-def]
    x = _batch(kind, (16, 64, 96, 3))
    fused = fused_sum_sq(cp) if use_kernel else None
    if use_kernel and fused is None:
        pytest.fail("the fused kernel did not match the generic path on this device")
    gpu = reduce_batch(cp.asarray(x), MODES[mode], cp, fused)
    cpu = reduce_batch(x, MODES[mode])
    if MODES[mode].integer:
        assert gpu.moments == cpu.moments
        assert np.array_equal(gpu.hist, cpu.hist)  # type: ignore[arg-type]
        return
    for g, c in zip(gpu.moments, cpu.moments, strict=True):
        for mg, mc in zip(g, c, strict=True):
            assert (mg.count, mg.shift, mg.lo, mg.hi) == (mc.count, mc.shift, mc.lo, mc.hi)
            assert mg.mean == pytest.approx(mc.mean, rel=1e-15)
            assert mg.var == pytest.approx(mc.var, rel=1e-12)


@pytest.mark.parametrize("kind", ["uint8", "uint16", "float32"])
def test_kernel_equals_twin_and_generic(cp, kind: str) -> None:  # type: ignore[no-untyped-def]
    fused = fused_sum_sq(cp)
    assert fused is not None
    x = _batch(kind, (4, 100_000, 3))
    got = cp.asnumpy(fused(cp.asarray(x), 1))
    for want in (sum_sq_twin(x, 1), sum_sq(x, 1)):
        if kind == "float32":
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
        else:
            assert np.array_equal(got, want)


def test_compute_on_gpu_equals_cpu(cp, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(11)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(
            tmp_path / f"{i}.png"
        )
    np.save(tmp_path / "s.npy", rng.integers(0, 256, (30, 40, 50, 3), dtype=np.uint8))

    def comparable(stats: normstat.Stats) -> str:
        data = {k: v for k, v in stats.data.items() if k not in ("created", "options")}
        return json.dumps(data, sort_keys=True)

    gpu = normstat.compute(tmp_path, workers=2, device="gpu")
    cpu = normstat.compute(tmp_path, workers=2, device="cpu")
    assert comparable(gpu) == comparable(cpu)
