"""A stand-in "cupy" that is really NumPy, to drive the device code path end to end in CI.

It has what normstat's device code touches: ``cuda.runtime`` (one device), pinned memory (a
bytearray), ``asarray``, and optionally a ``ReductionKernel`` that runs the kernel's NumPy twin
(or a deliberately wrong one, to check that a bad kernel is refused).
"""

from __future__ import annotations

import types
from typing import Any

import numpy as np

_BLOCK = 1 << 16  # samples per row squared at a time by the twin: a bounded temporary


def sum_sq_twin(x: np.ndarray, axis: int) -> np.ndarray:
    """The fused kernel's arithmetic on the CPU (``normstat.reduce.kernels.KERNEL_SPECS``):
    widen, square, add, a block at a time along ``axis`` so no full array of squares exists
    (checked against ``normstat.reduce.batch.sum_sq``)."""
    acc = np.int64 if np.issubdtype(x.dtype, np.integer) else np.float64
    moved = np.moveaxis(x, axis, -1)
    total = np.zeros(moved.shape[:-1], dtype=acc)
    for start in range(0, moved.shape[-1], _BLOCK):
        block = moved[..., start : start + _BLOCK].astype(acc)
        total += np.einsum("...i,...i->...", block, block)
    return total


class TwinReductionKernel:
    """Runs the NumPy twin of the fused Σx² kernel; counts its calls."""

    calls = 0

    def __init__(self, *spec: str, **kwargs: Any) -> None:
        self.spec = spec

    def __call__(self, x: np.ndarray, axis: int) -> np.ndarray:
        type(self).calls += 1
        return sum_sq_twin(x, axis)


class WrongReductionKernel(TwinReductionKernel):
    """A kernel that is off by one: it must never be used."""

    def __call__(self, x: np.ndarray, axis: int) -> np.ndarray:
        return sum_sq_twin(x, axis) + 1


def make_fake_cupy(kernel: type | None = TwinReductionKernel) -> types.ModuleType:
    fake = types.ModuleType("cupy")
    for name in dir(np):
        if not name.startswith("__"):
            setattr(fake, name, getattr(np, name))
    props = {"name": b"Fake GPU", "memoryClockRate": 1_000_000, "memoryBusWidth": 256}
    fake.cuda = types.SimpleNamespace(  # type: ignore[attr-defined]
        runtime=types.SimpleNamespace(
            getDeviceCount=lambda: 1, getDeviceProperties=lambda d: props
        ),
        alloc_pinned_memory=lambda n: bytearray(n),
    )
    fake.asnumpy = np.asarray  # type: ignore[attr-defined]
    if kernel is not None:
        fake.ReductionKernel = kernel  # type: ignore[attr-defined]
    elif hasattr(fake, "ReductionKernel"):
        delattr(fake, "ReductionKernel")
    return fake
