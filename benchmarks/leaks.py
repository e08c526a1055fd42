"""Leak-detection benchmark: plant transformed copies of test images in a train split, run
``normstat compute`` and ``normstat check``, and print recall and precision per transformation;
then check two disjoint splits with nothing planted and print how many test images are flagged.

Three datasets: real photos (crops of the photographs bundled with scikit-image and
scikit-learn; train and test crops come from opposite sides of each photograph, so the splits are
visually disjoint), tiny 28×28 grayscale digits drawn here (many look alike, as in MNIST), and
flat / two-tone images (the usual perceptual-hash collisions).

Usage: python benchmarks/leaks.py [--workers N] [--keep DIR]
Needs: pip install -r benchmarks/requirements.txt
"""

from __future__ import annotations

import argparse
import io
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

import normstat

TRANSFORMS = ("exact", "jpeg", "half", "double", "crop", "bright", "mirror")
THRESHOLDS = (0.80, 0.85, 0.90, 0.93, 0.95, 0.97, 0.98)


# --------------------------------------------------------------------------------------------
# datasets


def _photographs() -> list[np.ndarray]:
    import skimage.data as data
    from sklearn.datasets import load_sample_images

    names = [
        "astronaut", "brick", "camera", "chelsea", "coffee", "coins", "grass", "gravel",
        "hubble_deep_field", "immunohistochemistry", "moon", "retina", "rocket", "clock",
        "cell", "colorwheel", "page", "text",
    ]  # fmt: skip
    photos = [getattr(data, n)() for n in names]
    photos.append(data.stereo_motorcycle()[0])
    photos.extend(load_sample_images().images)
    out = []
    for p in photos:
        rgb = np.stack([p] * 3, axis=-1) if p.ndim == 2 else p[..., :3]
        out.append(np.ascontiguousarray(rgb, dtype=np.uint8))
    return out


def _resized(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Crops are scaled to a typical dataset size (long side 128 to 320 pixels)."""
    side = int(rng.integers(128, 321))
    scale = side / max(im.size)
    return im.resize((max(8, round(im.width * scale)), max(8, round(im.height * scale))))


def photo_splits(rng: np.random.Generator) -> tuple[list[Image.Image], list[Image.Image]]:
    """Train crops from the left 45 % of each photograph (any zoom, overlapping), test crops from
    the right 45 % (a non-overlapping grid, so no two test images share pixels)."""
    train, test = [], []
    for arr in _photographs():
        im = Image.fromarray(arr)
        w, h = im.size
        left, right = im.crop((0, 0, int(0.45 * w), h)), im.crop((w - int(0.45 * w), 0, w, h))
        for _ in range(30):
            lw, lh = left.size
            cw = int(rng.integers(lw // 4, lw + 1))
            ch = min(lh, int(cw * rng.uniform(0.6, 1.4)))
            x, y = int(rng.integers(0, lw - cw + 1)), int(rng.integers(0, lh - ch + 1))
            train.append(_resized(left.crop((x, y, x + cw, y + ch)), rng))
        rw, rh = right.size
        cols, rows = 2, max(2, round(2 * rh / rw))
        for i in range(cols):
            for j in range(rows):
                box = (i * rw // cols, j * rh // rows, (i + 1) * rw // cols, (j + 1) * rh // rows)
                test.append(_resized(right.crop(box), rng))
    return train, test


def _digit(rng: np.random.Generator) -> Image.Image:
    """A digit in a random size, stroke, slant, rotation and position, blurred like a scan."""
    big = Image.new("L", (56, 56), 0)
    draw = ImageDraw.Draw(big)
    font = ImageFont.load_default(size=int(rng.integers(28, 44)))
    text, stroke = str(rng.integers(0, 10)), int(rng.integers(0, 4))
    x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font, stroke_width=stroke)
    x = (56 - (x1 - x0)) / 2 - x0 + rng.uniform(-6, 6)
    y = (56 - (y1 - y0)) / 2 - y0 + rng.uniform(-6, 6)
    ink = int(rng.integers(160, 256))
    draw.text((x, y), text, fill=ink, font=font, stroke_width=stroke, stroke_fill=ink)
    shear = float(rng.uniform(-0.3, 0.3))
    big = big.transform(big.size, Image.Transform.AFFINE, (1, shear, -shear * 28, 0, 1, 0))
    big = big.rotate(float(rng.uniform(-20, 20)), resample=Image.Resampling.BILINEAR)
    big = big.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 1.5))))
    return big.resize((28, 28), Image.Resampling.BOX)


def digit_splits(rng: np.random.Generator) -> tuple[list[Image.Image], list[Image.Image]]:
    return [_digit(rng) for _ in range(1500)], [_digit(rng) for _ in range(200)]


def _simple(rng: np.random.Generator) -> Image.Image:
    w, h = int(rng.integers(32, 200)), int(rng.integers(32, 200))
    a, b = (tuple(int(v) for v in rng.integers(0, 256, 3)) for _ in range(2))
    im = Image.new("RGB", (w, h), a)
    kind = rng.integers(0, 4)
    if kind == 1:
        im.paste(b, (0, 0, int(rng.integers(1, w)), h))
    elif kind == 2:
        im.paste(b, (0, 0, w, int(rng.integers(1, h))))
    elif kind == 3:
        ImageDraw.Draw(im).ellipse(
            (int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2)), w - 1, h - 1), fill=b
        )
    return im


def simple_splits(rng: np.random.Generator) -> tuple[list[Image.Image], list[Image.Image]]:
    return [_simple(rng) for _ in range(400)], [_simple(rng) for _ in range(100)]


# --------------------------------------------------------------------------------------------
# transformations planted into train


def _jpeg(im: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue()))


def _crop(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    w, h = im.size
    cw, ch = round(w * rng.uniform(0.9, 1.0)), round(h * rng.uniform(0.9, 1.0))
    if (cw, ch) == (w, h):  # a crop of a tiny image may round to the whole: cut one column
        cw -= 1
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    return im.crop((x, y, x + cw, y + ch))


def _bright(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    factor = float(rng.choice([0.8, 1.2]))
    arr = np.asarray(im, dtype=np.float32) * factor
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), im.mode)


def plant(im: Image.Image, kind: str, rng: np.random.Generator) -> tuple[Image.Image, str]:
    """The transformed copy and the format it is saved in."""
    w, h = im.size
    ops: dict[str, Callable[[], tuple[Image.Image, str]]] = {
        "exact": lambda: (im, "bmp"),
        "jpeg": lambda: (_jpeg(im, int(rng.integers(75, 96))), "png"),
        "half": lambda: (im.resize((max(1, w // 2), max(1, h // 2)), Image.LANCZOS), "png"),
        "double": lambda: (im.resize((2 * w, 2 * h), Image.BICUBIC), "png"),
        "crop": lambda: (_crop(im, rng), "png"),
        "bright": lambda: (_bright(im, rng), "png"),
        "mirror": lambda: (im.transpose(Image.Transpose.FLIP_LEFT_RIGHT), "png"),
    }
    return ops[kind]()


# --------------------------------------------------------------------------------------------
# runs


def _write(images: list[Image.Image], folder: Path, fmt: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, im in enumerate(images):
        p = folder / f"{i:05d}.{fmt}"
        im.save(p, quality=92) if fmt == "jpg" else im.save(p)
        paths.append(p)
    return paths


def run(
    name: str,
    splits: tuple[list[Image.Image], list[Image.Image]],
    base: Path,
    workers: int | None,
    rng: np.random.Generator,
) -> dict[str, float]:
    train_images, test_images = splits
    lossy = name == "photos"  # photos are stored as JPEG, like most photo datasets
    root = base / name
    test_paths = _write(test_images, root / "test", "jpg" if lossy else "png")
    decoded = [Image.open(p).convert(test_images[0].mode) for p in test_paths]
    _write(train_images, root / "train" / "plain", "jpg" if lossy else "png")
    origin: dict[str, tuple[int, str]] = {}  # planted train file -> (test index, kind)
    for kind in TRANSFORMS:
        folder = root / "train" / f"planted-{kind}"
        folder.mkdir(parents=True)
        for i, im in enumerate(decoded):
            copy, fmt = plant(im, kind, rng)
            p = folder / f"{i:05d}.{fmt}"
            copy.save(p)
            origin[str(p.resolve())] = (i, kind)
    index_of = {str(p.resolve()): i for i, p in enumerate(test_paths)}

    t0 = time.perf_counter()
    stats = normstat.compute(root / "train", workers=workers)
    stats.save(str(root / "stats.json"))
    t1 = time.perf_counter()
    report = normstat.check(root / "test", root / "stats.json", workers=workers, threshold=0.5)
    t2 = time.perf_counter()
    print(
        f"\n== {name}: {len(train_images)} train + {len(origin)} planted, {len(test_paths)} test"
        f" (compute {t1 - t0:.1f} s, check {t2 - t1:.1f} s)"
    )

    # Clean run: only the plain train images, nothing planted.
    plain = normstat.compute(root / "train" / "plain", workers=workers)
    plain.save(str(root / "plain.json"))
    clean = normstat.check(root / "test", root / "plain.json", workers=workers, threshold=0.5)

    found: dict[tuple[str, float], int] = defaultdict(int)
    false: dict[tuple[str, float], int] = defaultdict(int)
    for leak in report.leaked:
        test_i = index_of[str(Path(leak.test).resolve())]
        src = origin.get(str(Path(leak.train).resolve()))
        for thr in THRESHOLDS:
            if leak.score < thr:
                continue
            if src is not None and src[0] == test_i:
                found[(src[1], thr)] += 1
            else:
                false[(src[1] if src else "plain", thr)] += 1
    n = len(test_paths)
    figures: dict[str, float] = {}
    header = "transformation   " + "".join(f"  @{t:.2f} R / P " for t in THRESHOLDS)
    print(header)
    for kind in TRANSFORMS:
        cells = []
        for thr in THRESHOLDS:
            tp, fp = found[(kind, thr)], false[(kind, thr)]
            recall, precision = tp / n, tp / (tp + fp) if tp + fp else 1.0
            cells.append(f"  {100 * recall:5.1f} / {100 * precision:5.1f}")
            figures[f"{kind}@{thr}"] = recall
        print(f"{kind:16s} " + "".join(cells))
    cells = []
    for thr in THRESHOLDS:
        flagged = {leak.test for leak in clean.leaked if leak.score >= thr}
        cells.append(f"  {len(flagged):4d} = {100 * len(flagged) / n:4.1f} %")
        figures[f"clean@{thr}"] = len(flagged) / n
    print(f"{'clean: flagged':16s} " + "".join(cells))
    print(f"(nothing planted: test images flagged against {len(train_images)} disjoint train)")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--keep", type=Path, default=None, help="Build the data here and keep it.")
    parser.add_argument("--only", choices=("photos", "digits", "simple"), default=None)
    args = parser.parse_args()
    rng = np.random.default_rng(2020)
    base = args.keep or Path(tempfile.mkdtemp(prefix="normstat-leaks-"))
    if args.keep and base.exists():
        shutil.rmtree(base)
    print("R / P: recall and precision (%) of planted copies found with score >= threshold;")
    print(f"the default --threshold is {normstat.api.DEFAULT_THRESHOLD}.")
    try:
        for name, make in (
            ("photos", photo_splits),
            ("digits", digit_splits),
            ("simple", simple_splits),
        ):
            if args.only in (None, name):
                run(name, make(np.random.default_rng(len(name))), base, args.workers, rng)
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
