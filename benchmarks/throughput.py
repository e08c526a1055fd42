"""Images/s of compute and apply on the sample dataset, 1 and 2 workers, against a Pillow
decode-only loop over the same files measured in the same run (ratios, not seconds, matter).

Usage: python benchmarks/throughput.py [--train 1500] [--repeat 3]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

import normstat

ROOT = Path(__file__).resolve().parents[1]


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=1500)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "sample"
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "examples/make_sample.py"),
                str(data),
                "--train",
                str(args.train),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        train = data / "train"
        files = sorted(p for p in train.rglob("*") if p.is_file() and "broken" not in p.name)
        n = len(files)

        def decode_only() -> None:
            for f in files:
                np.asarray(Image.open(f).convert("RGB"))

        rows = [("Pillow decode-only loop, 1 process", best(decode_only, args.repeat))]
        stats = normstat.compute(train, workers=1)
        stats.save(str(Path(tmp) / "stats.json"))
        for w in (1, 2):
            rows.append(
                (
                    f"compute, {w} worker(s)",
                    best(lambda w=w: normstat.compute(train, workers=w), args.repeat),
                )
            )
        for w in (1, 2):
            out = Path(tmp) / f"out{w}"

            def run_apply(w: int = w, out: Path = out) -> None:
                shutil.rmtree(out, ignore_errors=True)
                normstat.apply(train, stats, out, workers=w)

            rows.append((f"apply, {w} worker(s)", best(run_apply, args.repeat)))
    base = rows[0][1]
    print(f"{n} images ({args.train} requested), best of {args.repeat}")
    print(f"{'what':<38}{'seconds':>9}{'images/s':>10}{'vs decode':>11}")
    for name, t in rows:
        print(f"{name:<38}{t:>9.3f}{n / t:>10.0f}{base / t:>10.2f}x")


if __name__ == "__main__":
    main()
