"""The one CuPy-only piece: a fused Σx² reduction (its NumPy twin lives in tests/fake_cupy.py).

``(x * x).sum(axis)`` materializes the squares (8 bytes per sample) before summing; the CUDA
kernel squares inside the reduction. Its map expression is the generic path's arithmetic
(widen to int64 or float64, then square), so integer results are identical and float results
differ only by summation order. ``fused_sum_sq`` hands it out only after it reproduced the
generic path on the device (integers exactly, floats within 1e-12), so a miscompiled or
misbehaving kernel falls back to plain array operations instead of giving wrong statistics.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

from .batch import sum_sq, to_host

__all__ = ["KERNEL_SPECS", "fused_sum_sq", "kernel_matches"]

# (in_params, out_params, map_expr, reduce_expr, post_map_expr, identity, name) per accumulator.
KERNEL_SPECS = {
    "int64": (
        "T x",
        "int64 y",
        "static_cast<long long>(x) * static_cast<long long>(x)",
        "a + b",
        "y = a",
        "0",
        "normstat_sum_sq_int64",
    ),
    "float64": (
        "T x",
        "float64 y",
        "static_cast<double>(x) * static_cast<double>(x)",
        "a + b",
        "y = a",
        "0",
        "normstat_sum_sq_float64",
    ),
}


def _kernels(cp: ModuleType) -> dict[str, Any]:
    return {acc: cp.ReductionKernel(*spec) for acc, spec in KERNEL_SPECS.items()}


def _apply(kernels: dict[str, Any], cp: ModuleType) -> Callable[[Any, int], Any]:
    def fused(x: Any, axis: int) -> Any:
        acc = "int64" if np.issubdtype(x.dtype, np.integer) else "float64"
        return kernels[acc](x, axis=axis)

    return fused


def kernel_matches(fused: Callable[[Any, int], Any], xp: ModuleType) -> bool:
    """True when ``fused`` reproduces the generic Σx² on random 8-bit, 16-bit and float data."""
    rng = np.random.default_rng(5)
    samples: list[np.ndarray] = [
        rng.integers(0, 256, (3, 4097, 3), dtype=np.uint8),
        rng.integers(0, 65536, (2, 70001, 1), dtype=np.uint16),
        rng.standard_normal((2, 3, 50000)) * 1e-3,
        rng.standard_normal((2, 3, 777)).astype(np.float32),
    ]
    for host in samples:
        x = xp.asarray(host)
        axis = 2 if host.dtype.kind == "f" else 1
        got = to_host(fused(x, axis))
        want = to_host(sum_sq(x, axis, xp))
        if got.shape != want.shape or got.dtype != want.dtype:
            return False
        if host.dtype.kind == "f":
            if not np.allclose(got, want, rtol=1e-12, atol=0.0):
                return False
        elif not np.array_equal(got, want):
            return False
    return True


_checked: dict[ModuleType, Callable[[Any, int], Any] | None] = {}


def fused_sum_sq(xp: ModuleType) -> Callable[[Any, int], Any] | None:
    """The fused kernel for ``xp`` (CuPy) once it has matched the generic path; else None."""
    if xp is np or not hasattr(xp, "ReductionKernel"):
        return None
    if xp not in _checked:
        try:
            fused = _apply(_kernels(xp), xp)
            _checked[xp] = fused if kernel_matches(fused, xp) else None
        except Exception:  # no compiler (NVRTC) or a driver refusing it: generic path
            _checked[xp] = None
    return _checked[xp]
