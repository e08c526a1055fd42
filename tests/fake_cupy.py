"""A stand-in "cupy" that is really NumPy, to drive the device code path end to end in CI.

It has what normstat's device code touches: ``cuda.runtime`` (one device), pinned memory (a
bytearray), ``asarray``, and optionally a ``ReductionKernel`` that runs the kernel's NumPy twin
(or a deliberately wrong one, to check that a bad kernel is refused).
"""

from __future__ import annotations

import types
from typing import Any

import numpy as np

from normstat.reduce.kernels import sum_sq_twin


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
