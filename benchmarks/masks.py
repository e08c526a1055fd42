"""The cost of masks: compute with --nodata, --alpha mask and float --nodata nan ÷ compute
without, on the same synthetic files in the same run (ratios, not seconds), one worker.

Usage: python benchmarks/masks.py [--repeat 3]
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


def _corpus(root: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    folders = {k: root / k for k in ("rgb", "rgba", "float")}
    for f in folders.values():
        f.mkdir()
    for i in range(200):
        px = rng.integers(0, 256, (256, 256, 4), dtype=np.uint8)
        Image.fromarray(px[..., :3]).save(folders["rgb"] / f"{i}.png", compress_level=1)
        Image.fromarray(px, "RGBA").save(folders["rgba"] / f"{i}.png", compress_level=1)
    stack = rng.standard_normal((200, 256, 256)).astype(np.float32)
    stack[:, :8] = np.nan
    np.save(folders["float"] / "nan.npy", stack)
    np.save(folders["float"] / "plain.npy", np.nan_to_num(stack))
    return folders


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        f = _corpus(Path(tmp))
        run = normstat.compute
        cases = [
            (
                "8-bit RGB PNG, --nodata 0",
                lambda: run(str(f["rgb"]), workers=1),
                lambda: run(str(f["rgb"]), workers=1, nodata=0),
            ),
            (
                "8-bit RGBA PNG, --alpha mask (vs drop)",
                lambda: run(str(f["rgba"]), workers=1),
                lambda: run(str(f["rgba"]), workers=1, alpha="mask"),
            ),
            (
                "float .npy stack, --nodata nan",
                lambda: run(str(f["float"] / "plain.npy"), workers=1),
                lambda: run(str(f["float"] / "nan.npy"), workers=1, nodata="nan"),
            ),
        ]
        for name, plain, masked in cases:
            t0, t1 = best(plain, args.repeat), best(masked, args.repeat)
            print(f"{name}: masked ÷ unmasked time = {t1 / t0:.2f} ({t0:.2f} s unmasked)")


if __name__ == "__main__":
    main()
