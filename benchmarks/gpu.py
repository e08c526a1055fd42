"""GPU against CPU, measured in one run: the batched reducer's throughput (GB/s, and on the GPU
as a fraction of the device's memory bandwidth), compute end to end on a large .npy stack and on
decoded image files (ratio to the CPU path), and the stack size from which --device gpu pays.

Runs without a GPU too: CPU figures are printed and the GPU parts say "no GPU: skipped".

Usage: python benchmarks/gpu.py [--stack-mb 256] [--images 400] [--workers 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from PIL import Image

import normstat
from normstat.errors import DeviceError
from normstat.modes import MODES
from normstat.reduce.batch import reduce_batch
from normstat.reduce.device import AUTO_MIN_BYTES, device_summary, load_cupy, memory_bandwidth
from normstat.reduce.kernels import fused_sum_sq
from normstat.verbs.compute.arrays import reduce_on_cpu

CASES = [("uint8", "RGB"), ("uint16", "RGB;16"), ("float32", "RGB;F")]


def best(fn: Callable[[], Any], repeat: int, sync: Callable[[], None] = lambda: None) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return min(times)


def batch(kind: str, nbytes: int, rng: np.random.Generator) -> np.ndarray:
    itemsize = np.dtype(kind).itemsize
    n = max(1, nbytes // (224 * 224 * 3 * itemsize))
    shape = (n, 224, 224, 3)
    if kind == "float32":
        return rng.standard_normal(shape, dtype=np.float32)
    return rng.integers(0, np.iinfo(kind).max + 1, shape, dtype=kind)


def reducer_rows(cp: ModuleType | None, repeat: int) -> list[str]:
    """GB/s of the reduction of a 64 MB batch: the CPU's route (histograms for integers), the
    generic batch reducer on NumPy, and on the GPU (data resident) plain and with the kernel."""
    rng = np.random.default_rng(0)
    lines = [
        f"{'reduction GB/s, 64 MB of 224×224×3':<36}{'CPU':>7}{'NumPy':>7}{'GPU':>8}"
        f"{'fused':>8}{'of bw':>7}{'GPU/CPU':>9}"
    ]
    bw = memory_bandwidth(cp) if cp is not None else None
    fused = fused_sum_sq(cp) if cp is not None else None
    for kind, mode in CASES:
        x = batch(kind, 64 << 20, rng)
        m = MODES[mode]
        cpu = x.nbytes / best(lambda x=x, m=m: reduce_on_cpu(x, m), repeat) / 1e9
        generic = x.nbytes / best(lambda x=x, m=m: reduce_batch(x, m), repeat) / 1e9
        head = f"{kind + ' (' + mode + ')':<36}{cpu:>7.2f}{generic:>7.2f}"
        if cp is None:
            lines.append(f"{head}   no GPU: skipped")
            continue
        xd = cp.asarray(x)
        sync = cp.cuda.Device().synchronize
        plain = xd.nbytes / best(lambda xd=xd, m=m: reduce_batch(xd, m, cp), repeat, sync) / 1e9
        fast = (
            xd.nbytes / best(lambda xd=xd, m=m: reduce_batch(xd, m, cp, fused), repeat, sync) / 1e9
        )
        gpu = max(plain, fast)
        share = f"{gpu * 1e9 / bw:.0%}" if bw else "?"
        lines.append(f"{head}{plain:>8.1f}{fast:>8.1f}{share:>7}{gpu / cpu:>8.0f}×")
    return lines


def end_to_end(cp: ModuleType | None, args: argparse.Namespace, tmp: Path) -> list[str]:
    rng = np.random.default_rng(1)
    stack = tmp / "stack"
    stack.mkdir()
    arr = batch("uint8", args.stack_mb << 20, rng)
    np.save(stack / "train.npy", arr)
    del arr
    small = tmp / "small"
    small.mkdir()
    np.save(small / "train.npy", batch("uint8", 8 << 20, rng))
    floats = tmp / "floats"
    floats.mkdir()
    np.save(floats / "train.npy", batch("float32", args.stack_mb << 20, rng))
    files = tmp / "files"
    files.mkdir()
    for i in range(args.images):
        Image.fromarray(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)).save(
            files / f"{i:05d}.png", compress_level=1
        )
    mb = (stack / "train.npy").stat().st_size / 1e6
    lines = [
        f"{'compute end to end, ' + str(args.workers) + ' workers':<44}{'CPU s':>9}"
        f"{'GPU s':>10}{'CPU/GPU':>9}"
    ]
    timings: dict[str, tuple[float, float | None]] = {}
    for label, src in [
        (f".npy stack uint8 {mb:.0f} MB", stack),
        (".npy stack uint8 8 MB", small),
        (f".npy stack float32 {mb:.0f} MB", floats),
        (f"{args.images} PNG files 224×224 (decoded)", files),
    ]:
        cpu = best(
            lambda s=src: normstat.compute(s, workers=args.workers, device="cpu"), args.repeat
        )
        gpu = None
        if cp is not None:
            gpu = best(
                lambda s=src: normstat.compute(s, workers=args.workers, device="gpu"), args.repeat
            )
        timings[label] = (cpu, gpu)
        if gpu is None:
            lines.append(f"{label:<44}{cpu:>9.2f}{'no GPU: skipped':>19}")
        else:
            lines.append(f"{label:<44}{cpu:>9.2f}{gpu:>10.2f}{cpu / gpu:>8.2f}×")
    (big_cpu, big_gpu), (small_cpu, small_gpu) = list(timings.values())[:2]
    if big_gpu is None or small_gpu is None:
        lines.append(
            "crossover for --device auto: no GPU: skipped "
            f"(built-in estimate {AUTO_MIN_BYTES / 1e9:.2f} GB)"
        )
        return lines
    # time = fixed + bytes × rate on each side, from the two stack sizes; the crossover is where
    # the GPU's start-up (measured separately below, in a fresh process it is paid once) is
    # repaid by its lower per-byte time.
    big, small_b = (stack / "train.npy").stat().st_size, (small / "train.npy").stat().st_size
    rate_cpu = (big_cpu - small_cpu) / (big - small_b)
    rate_gpu = (big_gpu - small_gpu) / (big - small_b)
    lines.append(f"per-GB time: CPU {rate_cpu * 1e9:.2f} s, GPU {rate_gpu * 1e9:.2f} s")
    if rate_gpu < rate_cpu:
        startup = args.startup_s
        cross = startup / (rate_cpu - rate_gpu)
        lines.append(
            f"crossover for --device auto: {cross / 1e9:.2f} GB with {startup:.2f} s of GPU "
            f"start-up (built-in estimate {AUTO_MIN_BYTES / 1e9:.2f} GB)"
        )
    else:
        lines.append("crossover for --device auto: none, the GPU path is not faster per byte")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack-mb", type=int, default=256)
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    t = time.perf_counter()
    try:
        cp: ModuleType | None = load_cupy()
        fused_sum_sq(cp)  # kernel compilation (or cache load) and its self-check
        args.startup_s = time.perf_counter() - t
        print(f"device: {device_summary(cp)}; CuPy start-up + kernel check {args.startup_s:.2f} s")
    except DeviceError as exc:
        cp, args.startup_s = None, 0.0
        print(f"device: CPU only ({exc.reason}); GPU parts: no GPU: skipped")
    print("\n".join(reducer_rows(cp, args.repeat)))
    with tempfile.TemporaryDirectory() as tmp:
        print("\n".join(end_to_end(cp, args, Path(tmp))))


if __name__ == "__main__":
    main()
