"""What ``compute --covariance`` costs, measured in one run on the same files and one process:
the cross products of one 500×375 RGB image alone (ms), and compute with and without the
option on the photo JPEGs and the 28×28 digits (ratio). The default compute runs none of this
code (one boolean per image), so its speed is that of throughput.py.

Usage: python benchmarks/covariance.py [--data /tmp/normstat-bench] [--repeat 3]
(the corpora of ``benchmarks/corpus.py``; missing ones are skipped)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

import normstat
from normstat.reduce.covariance import cross_products

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import best  # the same best-of-N timer as the other benchmarks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "normstat-bench")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ["NORMSTAT_IN_PROCESS"] = "1"  # one core, no pool start-up in the figures
    rng = np.random.default_rng(0)
    for dtype, top in ((np.uint8, 256), (np.uint16, 65536)):
        px = rng.integers(0, top, (375, 500, 3), dtype=dtype)
        per = best(lambda px=px: [cross_products(px, True) for _ in range(20)], args.repeat) / 20
        print(f"cross products, one 500×375 RGB image ({np.dtype(dtype).name}): {per * 1e3:.2f} ms")
    fpx = rng.random((375, 500, 3), dtype=np.float32)
    per = best(lambda: [cross_products(fpx, False) for _ in range(20)], args.repeat) / 20
    print(f"cross products, one 500×375 RGB image (float32): {per * 1e3:.2f} ms")
    for name in ("jpeg", "digits"):
        folder = args.data / name
        if not folder.is_dir():
            print(f"{name}: no corpus at {folder} (python benchmarks/corpus.py {args.data})")
            continue
        images = normstat.compute(folder, workers=1).images
        plain = best(lambda f=folder: normstat.compute(f, workers=1), args.repeat)
        cov = best(lambda f=folder: normstat.compute(f, workers=1, covariance=True), args.repeat)
        print(
            f"{name} ({images} images), 1 process: compute {plain / images * 1e3:.3f} ms/image, "
            f"--covariance {cov / images * 1e3:.3f} ms/image: {cov / plain:.3f}×"
        )


if __name__ == "__main__":
    main()
