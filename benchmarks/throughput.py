"""compute and apply against the loops people write instead, timed in one run on the same files
and the same number of processes; ratios, not seconds, are the result (machines are noisy).

Per corpus (see corpus.py): compute ÷ a Pillow decode-only loop (``Image.open(f).convert(mode)``
+ ``np.asarray``), compute ÷ the "tutorial loop" (per-image float32 mean and std, averaged over
images, and how wrong its std is), apply ÷ a decode + ``np.save`` loop, and 2 workers ÷ 1.
``--rss`` adds compute's peak memory on 10k and 100k tiny images.

Usage: python benchmarks/throughput.py [--data /tmp/normstat-bench] [--repeat 3] [--rss]
Needs ``pip install -r benchmarks/requirements.txt`` (to build the corpus from real photos).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

import normstat

HERE = Path(__file__).resolve().parent
CORPORA = {  # name: (folder, mode, what)
    "jpeg": ("jpeg", "RGB", "1,000 photo JPEGs, 500×375, q85–95"),
    "detail": ("detail", "RGB", "400 high-detail JPEGs, q95"),
    "digits": ("digits", "L", "5,000 28×28 gray PNGs"),
    "png16": ("png16", "I;16", "20 1024×1024 16-bit PNGs"),
}


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def files_of(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.rglob("*") if p.is_file())


def decode_files(args: tuple[list[str], str]) -> int:
    paths, mode = args
    for f in paths:
        np.asarray(Image.open(f).convert(mode))
    return len(paths)


def decode_save_files(args: tuple[list[str], str, str]) -> int:
    paths, mode, out = args
    for i, f in enumerate(paths):
        arr = np.asarray(Image.open(f).convert(mode), dtype=np.float32)
        np.save(os.path.join(out, f"{os.getpid()}-{i}.npy"), arr)
    return len(paths)


def in_processes(fn: Callable, files: list[str], workers: int, *extra: str) -> None:
    """The baseline loop over ``files`` in ``workers`` processes (pool start-up included, as
    compute's is)."""
    if workers == 1:
        fn((files, *extra))
        return
    step = 64
    parts = [(files[i : i + step], *extra) for i in range(0, len(files), step)]
    methods = multiprocessing.get_all_start_methods()  # as normstat's pool starts its workers
    with multiprocessing.get_context("fork" if "fork" in methods else "spawn").Pool(
        workers
    ) as pool:
        pool.map(fn, parts)


def tutorial_loop(files: list[str], mode: str) -> np.ndarray:
    """What DataLoader tutorials do: per-image float32 mean/std, averaged over images."""
    means, stds = [], []
    for f in files:
        x = np.asarray(Image.open(f).convert(mode), dtype=np.float32) / 255.0
        x = x.reshape(-1, x.shape[-1] if x.ndim == 3 else 1)
        means.append(x.mean(axis=0))
        stds.append(x.std(axis=0))
    return np.mean(stds, axis=0)


def bench_corpus(name: str, folder: Path, mode: str, repeat: int) -> list[tuple[str, float]]:
    files = files_of(folder)
    n = len(files)
    rows: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        stats = normstat.compute(str(folder), workers=1)
        stats.save(os.path.join(tmp, "stats.json"))
        for w in (1, 2):
            rows.append(
                (
                    f"decode-only loop, {w} proc",
                    best(lambda w=w: in_processes(decode_files, files, w, mode), repeat),
                )
            )
            rows.append(
                (
                    f"compute, {w} worker",
                    best(lambda w=w: normstat.compute(str(folder), workers=w), repeat),
                )
            )
        for w in (1, 2):
            out = os.path.join(tmp, "baseline")

            def baseline(w: int = w, out: str = out) -> None:
                shutil.rmtree(out, ignore_errors=True)
                os.makedirs(out)
                in_processes(decode_save_files, files, w, "RGB" if mode == "RGB" else mode, out)

            def run_apply(w: int = w) -> None:
                shutil.rmtree(os.path.join(tmp, "applied"), ignore_errors=True)
                normstat.apply(str(folder), stats, os.path.join(tmp, "applied"), workers=w)

            if mode != "I;16":  # np.asarray of a 16-bit convert() is not a fair baseline
                rows.append((f"decode + np.save loop, {w} proc", best(baseline, repeat)))
                rows.append((f"apply, {w} worker", best(run_apply, repeat)))
        if mode in ("RGB", "L"):
            t = time.perf_counter()
            tut_std = tutorial_loop(files, mode)
            rows.append(("tutorial loop, 1 proc", time.perf_counter() - t))
            err = np.abs(tut_std / np.asarray(stats.std) - 1).max() * 100
            rows.append((f"(tutorial std off by up to {err:.0f}%)", float("nan")))
    secs = dict(rows)
    print(f"\n## {name}: {CORPORA[name][2]} ({n} files), best of {repeat}")
    print(f"{'what':<34}{'seconds':>9}{'images/s':>10}")
    for what, t in rows:
        print(f"{what:<34}{t:>9.3f}{n / t:>10.0f}" if t == t else what)
    ratios = [
        (
            "compute ÷ decode-only, 1 proc",
            secs["decode-only loop, 1 proc"] / secs["compute, 1 worker"],
        ),
        (
            "compute ÷ decode-only, 2 proc",
            secs["decode-only loop, 2 proc"] / secs["compute, 2 worker"],
        ),
        ("compute 2 workers ÷ 1", secs["compute, 1 worker"] / secs["compute, 2 worker"]),
    ]
    if "apply, 1 worker" in secs:
        ratios += [
            (
                "apply ÷ decode+save, 1 proc",
                secs["decode + np.save loop, 1 proc"] / secs["apply, 1 worker"],
            ),
            (
                "apply ÷ decode+save, 2 proc",
                secs["decode + np.save loop, 2 proc"] / secs["apply, 2 worker"],
            ),
            ("apply 2 workers ÷ 1", secs["apply, 1 worker"] / secs["apply, 2 worker"]),
        ]
    if "tutorial loop, 1 proc" in secs:
        ratios.append(
            (
                "compute (2 workers) ÷ tutorial loop",
                secs["tutorial loop, 1 proc"] / secs["compute, 2 worker"],
            )
        )
        ratios.append(
            (
                "compute (1 worker) ÷ tutorial loop",
                secs["tutorial loop, 1 proc"] / secs["compute, 1 worker"],
            )
        )
    for what, r in ratios:
        print(f"{what:<40}{r:>7.2f}×")
    return ratios


def peak_rss(folder: Path, workers: int) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of compute in a fresh process: its own high-water mark
    (VmHWM: ru_maxrss would carry over this process's, across fork and exec) or its workers'."""
    code = (
        "import re, resource, normstat;"
        f"normstat.compute({str(folder)!r}, workers={workers});"
        "hwm = int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1));"
        "print(max(hwm, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))"
    )
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return time.perf_counter() - t, int(out.stdout) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "normstat-bench")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", nargs="*", default=list(CORPORA))
    parser.add_argument("--rss", action="store_true", help="also peak RSS at 10k and 100k images")
    args = parser.parse_args()
    build = [sys.executable, str(HERE / "corpus.py"), str(args.data)]
    if args.rss:
        build += ["--tiny", "100000"]
    subprocess.run(build, check=True)
    print(
        f"normstat {normstat.__version__}, {platform.processor() or platform.machine()},"
        f" {os.cpu_count()} cores, Python {platform.python_version()},"
        f" {time.strftime('%Y-%m-%d')}"
    )
    summary = {}
    for name in args.only:
        folder, mode, _ = CORPORA[name]
        summary[name] = bench_corpus(name, args.data / folder, mode, args.repeat)
    if args.rss:
        tiny = args.data / "tiny"
        small = args.data / "tiny10k"
        if not small.is_dir():
            small.mkdir()
            for sub in sorted(tiny.iterdir())[:10]:
                os.symlink(sub, small / sub.name)
        print("\n## peak RSS of compute (8×8 PNGs)")
        for label, folder in (("10k", small), ("100k", tiny)):
            for w in (1, 2):
                secs, mb = peak_rss(folder, w)
                print(f"{label} images, {w} worker: {mb:.0f} MB peak, {secs:.1f} s")
    print("\n" + json.dumps({k: {w: round(r, 3) for w, r in v} for k, v in summary.items()}))


if __name__ == "__main__":
    main()
