"""What the perceptual fingerprints cost ``compute`` per image: ``perceptual`` (dHash + pHash
from one thumbnail) against normstat 0.1's dHash alone, on 500×375 RGB uint8 images, one core,
measured in the same run.

Usage: python benchmarks/fingerprint_cost.py [--repeat 2000]
"""

from __future__ import annotations

import argparse
import timeit

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from normstat.fingerprints import perceptual


def dhash_v01(pixels: np.ndarray) -> int:
    """normstat 0.1's dHash (the baseline): luma, BOX-resized straight to 9×8."""
    thumb = Image.fromarray(np.ascontiguousarray(pixels[..., :3])).convert("L")
    small = np.asarray(thumb.resize((9, 8), Image.Resampling.BOX), dtype=np.float32)
    bits = (small[:, 1:] > small[:, :-1]).ravel()
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def photo(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    field = rng.normal(size=(8, 10, 3))
    im = Image.fromarray(((field - field.min()) / np.ptp(field) * 255).astype(np.uint8))
    im = im.resize((500, 375), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(im)
    for _ in range(10):
        x, y, r = (int(v) for v in rng.integers(0, 400, 3))
        draw.ellipse(
            (x, y, x + r // 4, y + r // 4), fill=tuple(int(v) for v in rng.integers(0, 256, 3))
        )
    noisy = np.asarray(im.filter(ImageFilter.GaussianBlur(1))) + rng.normal(0, 5, (375, 500, 3))
    return np.clip(noisy, 0, 255).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args()
    images = [photo(s) for s in range(8)]

    def per_image(fn) -> float:  # type: ignore[no-untyped-def]
        n = args.repeat // len(images)
        best = min(timeit.repeat(lambda: [fn(px) for px in images], number=n, repeat=5))
        return best / (n * len(images)) * 1e6

    old = per_image(dhash_v01)
    new = per_image(lambda px: perceptual(px, 255))
    print("500×375 RGB uint8, one core, best of 5")
    print(f"dHash (0.1)            {old:7.1f} µs/image")
    print(f"dHash + pHash (0.2)    {new:7.1f} µs/image")
    print(f"added                  {new - old:7.1f} µs/image  (ratio {new / old:.2f})")


if __name__ == "__main__":
    main()
