"""What ``compute --color lab`` costs, measured in one run, one process: the CIELAB conversion
of one 500×375 RGB image (8- and 16-bit; best and median ms), and compute with and without the
option on the same folder of photo JPEGs (ratio). Without the option compute runs none of this
code (one test of ``task.color`` per image), so its speed is that of throughput.py.

Usage: python benchmarks/color.py [--data /tmp/normstat-bench] [--repeat 3]
(the ``jpeg`` corpus of ``benchmarks/corpus.py`` when present; else 200 smooth synthetic
500×375 JPEGs are written to a temporary folder)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

import normstat
from normstat.reduce.color import rgb_to_lab

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import best  # the same best-of-N timer as the other benchmarks


def timings(fn, n: int) -> list[float]:  # type: ignore[no-untyped-def]
    """Every run's seconds, for the median as well as the best."""
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def synthetic(folder: Path, count: int = 200) -> Path:
    """Smooth colour gradients plus noise, saved as JPEG (photo-like decode cost)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:375, 0:500] / 500.0
    for i in range(count):
        base = np.stack([np.sin(xx * (i % 7 + 1)), np.cos(yy * (i % 5 + 1)), xx * yy], axis=-1)
        px = np.clip((base * 0.5 + 0.5) * 255 + rng.normal(0, 12, base.shape), 0, 255)
        Image.fromarray(px.astype(np.uint8)).save(folder / f"{i:04d}.jpg", quality=90)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "normstat-bench")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ["NORMSTAT_IN_PROCESS"] = "1"  # one core, no pool start-up in the figures
    rng = np.random.default_rng(0)
    for dtype, top in ((np.uint8, 256), (np.uint16, 65536)):
        px = rng.integers(0, top, (375, 500, 3), dtype=dtype)
        rgb_to_lab(px)  # the table is built once per process, not per image
        t = timings(lambda px=px: rgb_to_lab(px), 50)
        print(
            f"CIELAB conversion, one 500×375 RGB image ({np.dtype(dtype).name}): "
            f"best {min(t) * 1e3:.2f} ms, median {statistics.median(t) * 1e3:.2f} ms"
        )
    folder = args.data / "jpeg"
    with tempfile.TemporaryDirectory() as tmp:
        if not folder.is_dir():
            folder = synthetic(Path(tmp) / "jpeg")
        images = normstat.compute(folder, workers=1).images
        plain = best(lambda: normstat.compute(folder, workers=1), args.repeat)
        lab = best(lambda: normstat.compute(folder, workers=1, color="lab"), args.repeat)
        print(
            f"{folder} ({images} images), 1 process: compute {plain / images * 1e3:.3f} ms/image, "
            f"--color lab {lab / images * 1e3:.3f} ms/image: {lab / plain:.2f}×"
        )


if __name__ == "__main__":
    main()
