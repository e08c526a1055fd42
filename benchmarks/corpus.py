"""Build the benchmark corpora from real photographs (scikit-image's and scikit-learn's bundled
photos), not noise, so decode and hashing costs look like a real dataset's.

- ``jpeg/``: ImageNet-typical JPEGs, random crops rescaled to 500×375 or 375×500, quality 85–95.
- ``detail/``: the high-detail subset: crops at the photos' native resolution (no downscaling
  smooths them) with fine sensor-like grain, quality 95 — more bits per pixel, closer to ImageNet.
- ``digits/``: 28×28 grayscale PNGs (MNIST-sized).
- ``png16/``: 1024×1024 16-bit grayscale PNGs.
- ``tiny/``: N 8×8 grayscale PNGs, for the memory benchmark at 10k and 100k images.

Usage: python benchmarks/corpus.py OUT [--jpeg 1000] [--detail 500] [--digits 5000] [--png16 20]
                                        [--tiny 0]
Needs ``pip install -r benchmarks/requirements.txt``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from PIL import Image

PHOTOS = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "retina.jpg",
    "hubble_deep_field.jpg",
    "ihc.png",
    "color.png",
    "camera.png",
    "moon.png",
    "brick.png",
    "grass.png",
    "gravel.png",
)


def photographs() -> list[np.ndarray]:
    """The bundled photos as RGB uint8 arrays (grayscale ones replicated)."""
    import skimage
    from sklearn.datasets import load_sample_images

    folder = Path(skimage.__file__).parent / "data"
    out = []
    for name in PHOTOS:
        with Image.open(folder / name) as im:
            out.append(np.asarray(im.convert("RGB")))
    out.extend(load_sample_images().images)
    return out


def crop(
    rng: np.random.Generator, photo: np.ndarray, size: tuple[int, int], scale: float
) -> Image.Image:
    """A random crop covering ``scale`` of the photo's short side, resized to ``size`` (w, h)."""
    h, w = photo.shape[:2]
    aspect = size[0] / size[1]
    ch = int(min(h, w / aspect) * scale)
    cw = int(ch * aspect)
    y = int(rng.integers(0, h - ch + 1))
    x = int(rng.integers(0, w - cw + 1))
    im = Image.fromarray(photo[y : y + ch, x : x + cw])
    if rng.random() < 0.5:
        im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return im.resize(size, Image.Resampling.LANCZOS)


def jpegs(out: Path, n: int, photos: list[np.ndarray], rng: np.random.Generator) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        size = (500, 375) if rng.random() < 0.75 else (375, 500)
        im = crop(rng, photos[i % len(photos)], size, rng.uniform(0.5, 1.0))
        im.save(out / f"{i:06d}.jpg", quality=int(rng.integers(85, 96)))


def detail(out: Path, n: int, photos: list[np.ndarray], rng: np.random.Generator) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        ch, cw = min(h, 375), min(w, 500)
        y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        px = photo[y : y + ch, x : x + cw].astype(np.int16)
        px = px + rng.normal(0, 5, px.shape).astype(np.int16)  # sensor grain, as in real photos
        Image.fromarray(np.clip(px, 0, 255).astype(np.uint8)).save(out / f"{i:06d}.jpg", quality=95)


def digits(out: Path, n: int, photos: list[np.ndarray], rng: np.random.Generator) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        im = crop(rng, photos[i % len(photos)], (28, 28), rng.uniform(0.05, 0.3)).convert("L")
        im.save(out / f"{i:06d}.png")


def png16(out: Path, n: int, photos: list[np.ndarray], rng: np.random.Generator) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        im = crop(rng, photos[i % len(photos)], (1024, 1024), rng.uniform(0.6, 1.0)).convert("L")
        wide = np.asarray(im).astype(np.uint16) * 257 + rng.integers(0, 257, (1024, 1024))
        Image.fromarray(wide.astype(np.uint16)).save(out / f"{i:04d}.png")


def tiny(out: Path, n: int, rng: np.random.Generator) -> None:
    """Many small files in folders of 1,000 (a flat folder of 100k files is unrealistic)."""
    for i in range(n):
        folder = out / f"{i // 1000:04d}"
        if i % 1000 == 0:
            folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(folder / f"{i:06d}.png")


def bits_per_pixel(folder: Path) -> float:
    files = sorted(folder.glob("*.jpg"))
    size = sum(f.stat().st_size for f in files)
    pixels = 0
    for f in files:
        with Image.open(f) as im:
            pixels += im.width * im.height
    return 8 * size / max(pixels, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--jpeg", type=int, default=1000)
    parser.add_argument("--detail", type=int, default=500)
    parser.add_argument("--digits", type=int, default=5000)
    parser.add_argument("--png16", type=int, default=20)
    parser.add_argument("--tiny", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    photos = photographs()
    for name, count, make in (
        ("jpeg", args.jpeg, jpegs),
        ("detail", args.detail, detail),
        ("digits", args.digits, digits),
        ("png16", args.png16, png16),
    ):
        if count and not (args.out / name).is_dir():
            make(args.out / name, count, photos, rng)
    if args.tiny and not (args.out / "tiny").is_dir():
        tiny(args.out / "tiny", args.tiny, rng)
    for name in ("jpeg", "detail"):
        if (args.out / name).is_dir():
            print(f"{name}: {bits_per_pixel(args.out / name):.2f} bits/pixel")
    os.sync()


if __name__ == "__main__":
    main()
