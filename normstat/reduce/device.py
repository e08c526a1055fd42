"""Where reductions run: NumPy on the CPU or CuPy on a CUDA device, and getting batches there.

CuPy is imported here and only here, inside functions, so ``import normstat`` and the CLI's
start-up never load it. ``--device gpu`` without a usable device is a ``DeviceError`` carrying
CuPy's own reason; ``--device auto`` quietly stays on the CPU unless a device is usable *and*
the array data are large enough to pay for starting it (``AUTO_MIN_BYTES``).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from normstat.errors import DeviceError, describe
from normstat.options import DEVICES

__all__ = [
    "AUTO_MIN_BYTES",
    "Plan",
    "Stager",
    "device_summary",
    "load_cupy",
    "memory_bandwidth",
    "plan",
]


# --device auto moves .npy data to the GPU from this many bytes on. An estimate, not yet a
# measurement on a GPU: starting CUDA and CuPy (context, kernel compilation or cache load) costs
# about 0.5-1 s, after which a batch costs its PCIe transfer (~12 GB/s pinned, PCIe 4 x16)
# instead of the CPU reducer (measured at 0.3-1.3 GB/s per process by benchmarks/gpu.py).
# 1 s / (1/1 GB/s - 1/12 GB/s) ≈ 1.1 GB. benchmarks/gpu.py prints the measured crossover.
AUTO_MIN_BYTES = 1 << 30


def load_cupy() -> ModuleType:
    """CuPy with a usable device, or DeviceError("--device gpu", "no usable CUDA device: ...")."""
    try:
        import cupy as cp  # noqa: TID251  # the one place, and only when a GPU is wanted

        count = int(cp.cuda.runtime.getDeviceCount())
        if count < 1:
            raise RuntimeError("CUDA reports no device")
        float(cp.asarray(np.ones(2)).sum())  # a context, an allocation, a kernel, a copy back
    except Exception as exc:
        raise DeviceError("--device gpu", f"no usable CUDA device: {describe(exc)}") from None
    return cp


def _usable_cupy() -> ModuleType | None:
    try:
        return load_cupy()
    except DeviceError:
        return None


@dataclass(frozen=True)
class Plan:
    """The array namespace that reduces decoded image files, and the one for .npy arrays."""

    files: ModuleType
    arrays: ModuleType

    @property
    def uses_gpu(self) -> bool:
        return self.files is not np or self.arrays is not np


def plan(device: str, array_bytes: int) -> Plan:
    """``gpu``: everything on the GPU (or DeviceError). ``auto``: .npy arrays on the GPU when
    one is usable and they hold at least AUTO_MIN_BYTES; decoded files stay on the CPU, where
    decoding, not reducing, is the cost. ``cpu``: NumPy."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}")
    if device == "gpu":
        cp = load_cupy()
        return Plan(cp, cp)
    if device == "auto" and array_bytes >= AUTO_MIN_BYTES:
        found = _usable_cupy()
        if found is not None:
            return Plan(np, found)
    return Plan(np, np)


class Stager:
    """Copies host batches to the device through one reused pinned (page-locked) buffer, which
    the DMA engine reads directly (about twice the bandwidth of pageable memory).

    Reuse is safe: every batch's results are copied back to the host before the next ``put``,
    and on one stream that copy completes after the previous host-to-device copy."""

    def __init__(self, xp: ModuleType) -> None:
        self.xp = xp
        self._buffer: Any = None
        self._capacity = 0

    def put(self, host: np.ndarray) -> Any:
        if self.xp is np:
            return host
        if host.nbytes > self._capacity:
            self._capacity = max(host.nbytes, 2 * self._capacity)
            self._buffer = self.xp.cuda.alloc_pinned_memory(self._capacity)
        staged = np.frombuffer(self._buffer, dtype=host.dtype, count=host.size)
        staged = staged.reshape(host.shape)
        np.copyto(staged, host)
        return self.xp.asarray(staged)


def memory_bandwidth(cp: ModuleType, device: int = 0) -> float | None:
    """Theoretical device memory bandwidth in bytes/s (2 transfers per clock × bus width)."""
    try:
        props = cp.cuda.runtime.getDeviceProperties(device)
        clock_khz, bus_bits = props.get("memoryClockRate", 0), props.get("memoryBusWidth", 0)
        if not clock_khz:
            attrs = cp.cuda.Device(device).attributes
            clock_khz, bus_bits = attrs["MemoryClockRate"], attrs["GlobalMemoryBusWidth"]
        return 2.0 * float(clock_khz) * 1e3 * float(bus_bits) / 8.0 or None
    except Exception:
        return None


def device_summary(cp: ModuleType, device: int = 0) -> str:
    """E.g. "NVIDIA H100 80GB HBM3 (3352 GB/s)", for benchmark output."""
    try:
        name = cp.cuda.runtime.getDeviceProperties(device)["name"]
        name = name.decode() if isinstance(name, bytes) else str(name)
    except Exception:
        name = "CUDA device"
    bw = memory_bandwidth(cp, device)
    return f"{name} ({bw / 1e9:.0f} GB/s)" if bw else name
