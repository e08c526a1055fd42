"""The cost of --range: compute of a float32 .npy stack with --range -3,3 ÷ compute without,
on the same file in the same run (ratios, not seconds), one worker. Also float TIFFs (the
per-file route).

Usage: python benchmarks/range.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import best

import normstat


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rng = np.random.default_rng(0)
        stack = root / "stack.npy"
        np.save(stack, rng.standard_normal((200, 256, 256)).astype(np.float32))
        tiffs = root / "tiffs"
        tiffs.mkdir()
        for i in range(200):
            px = rng.standard_normal((256, 256)).astype(np.float32)
            Image.fromarray(px, "F").save(tiffs / f"{i}.tif")
        run = normstat.compute
        for name, src in (("float32 .npy stack, 200×256×256", stack), ("float TIFFs", tiffs)):
            t0 = best(lambda s=src: run(str(s), workers=1), args.repeat)
            t1 = best(lambda s=src: run(str(s), workers=1, value_range=(-3, 3)), args.repeat)
            print(f"{name}: --range ÷ plain time = {t1 / t0:.2f} ({t0:.2f} s plain)")


if __name__ == "__main__":
    main()
