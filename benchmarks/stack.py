"""apply to one file per image against ``apply --stack``, and loading the results back, timed in
one run on the same images: seeded 28×28 grey PNGs (MNIST's shape) made in a temp folder. Each
timing is the best of N fresh runs (a new output folder each time). Ratios printed are per-file
time ÷ stack time: above 1.0× the stack is faster.

Usage: python benchmarks/stack.py [--images 10000] [--repeat 3] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from throughput import best  # the same best-of-N timer as the other benchmarks

import normstat


def make_digits(folder: Path, n: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for i in range(n):
        sub = folder / f"{i % 10}"
        sub.mkdir(parents=True, exist_ok=True)
        px = rng.integers(0, 256, (28, 28), dtype=np.uint8)
        Image.fromarray(px).save(sub / f"{i:05d}.png")


def load_files(out: Path, names: list[str]) -> float:
    return float(sum(np.load(out / f"{n}.npy")[0, 0, 0] for n in names))


def load_stack(out: Path) -> float:
    arr = np.load(out / "stack.npy", mmap_mode="r")
    return float(np.asarray(arr).sum(dtype=np.float64))  # every row read from the map


def bench(tmp: Path, src: Path, stats: normstat.Stats, workers: int, n: int, repeat: int) -> None:
    outs = {"files": tmp / "files", "stack": tmp / "stack"}

    def run(kind: str) -> None:
        shutil.rmtree(outs[kind], ignore_errors=True)
        normstat.apply(src, stats, outs[kind], workers=workers, stack=kind == "stack")

    t_files = best(lambda: run("files"), repeat)
    t_stack = best(lambda: run("stack"), repeat)
    names = (outs["stack"] / "stack.txt").read_text().splitlines()
    l_files = best(lambda: load_files(outs["files"], names), repeat)
    l_stack = best(lambda: load_stack(outs["stack"]), repeat)
    print(
        f"workers={workers}: write per-file {t_files:.2f}s ({n / t_files:,.0f} img/s),"
        f" --stack {t_stack:.2f}s ({n / t_stack:,.0f} img/s): {t_files / t_stack:.1f}×"
    )
    print(
        f"           load per-file {l_files:.3f}s, stack memmap {l_stack:.3f}s:"
        f" {l_files / l_stack:.1f}×"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    print(f"{platform.python_version()} numpy {np.__version__}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="normstat-stack-") as tmp:
        src = Path(tmp) / "digits"
        make_digits(src, args.images)
        stats = normstat.compute(src, workers=max(args.workers))
        for workers in args.workers:
            bench(Path(tmp), src, stats, workers, args.images, args.repeat)


if __name__ == "__main__":
    main()
