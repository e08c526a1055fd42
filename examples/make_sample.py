"""Make a small sample dataset: train/val/test splits of synthetic photos, with a corrupt file
in train and two test images leaked from train (a renamed copy and a PNG→BMP copy).

Usage: python examples/make_sample.py sample [--train 300]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

CLASSES = ("boats", "fields", "streets")


def photo(rng: np.random.Generator, size: tuple[int, int], cls: int) -> Image.Image:
    """A smooth image with structure, like a downscaled photograph rather than noise."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = rng.uniform(40, 200, 3) + 25 * cls
    slope = rng.normal(0, 0.6, (3, 2))
    img = base[:, None, None] + slope[:, :1, None] * x + slope[:, 1:, None] * y
    img = np.clip(img.transpose(1, 2, 0), 0, 255).astype(np.uint8)
    im = Image.fromarray(img, "RGB")
    draw = ImageDraw.Draw(im)
    for _ in range(rng.integers(3, 9)):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        r = int(rng.integers(5, max(6, w // 4)))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        draw.ellipse((x0 - r, y0 - r, x0 + r, y0 + r), fill=colour)
    im = im.filter(ImageFilter.GaussianBlur(1.5))
    noise = rng.normal(0, 6, (h, w, 3))
    return Image.fromarray(np.clip(np.asarray(im) + noise, 0, 255).astype(np.uint8), "RGB")


def split(root: Path, name: str, count: int, rng: np.random.Generator) -> list[Path]:
    paths = []
    for i in range(count):
        cls = i % len(CLASSES)
        folder = root / name / CLASSES[cls]
        folder.mkdir(parents=True, exist_ok=True)
        size = (int(rng.integers(200, 321)), int(rng.integers(150, 241)))
        im = photo(rng, size, cls)
        if i % 10 == 7:  # some grayscale scans among the photos
            im = im.convert("L")
        if i % 4 == 0:
            path = folder / f"{name}_{i:04d}.png"
            im.save(path)
        else:
            path = folder / f"{name}_{i:04d}.jpg"
            im.save(path, quality=90)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--train", type=int, default=300)
    args = parser.parse_args()
    rng = np.random.default_rng(2026)
    if args.out.exists():
        shutil.rmtree(args.out)
    train = split(args.out, "train", args.train, rng)
    split(args.out, "val", max(1, args.train // 5), rng)
    split(args.out, "test", max(1, args.train // 5), rng)
    # A corrupt download in train: normstat lists it as skipped, with the reason.
    good = train[1].read_bytes()
    (train[1].parent / "train_broken.jpg").write_bytes(good[: len(good) // 3])
    # Leaks: a train image renamed into test, and a PNG train image re-saved as BMP.
    shutil.copy(train[2], args.out / "test" / CLASSES[2] / "test_leak_renamed.jpg")
    png = next(p for p in train if p.suffix == ".png")
    Image.open(png).save(args.out / "test" / CLASSES[0] / "test_leak_copy.bmp")
    print(f"Wrote {args.out}/train ({len(train) + 1} files), val, test (2 leaked images)")


if __name__ == "__main__":
    main()
