"""Data for benchmarks/leaks.py: the datasets (train and test splits that share no image) and the
transformations planted into train. Everything is drawn here from a seed: no download.

- photos: crops of the photographs bundled with scikit-image and scikit-learn; train crops from
  the left 45 % of each photograph, test crops from the right 45 % (visually disjoint).
- digits: 28×28 digits in PIL's default font, jittered (many look alike, as in MNIST).
- glyphs: 28×28 digits from the DejaVu fonts and PIL's default font with jitter of position,
  size, stroke width, slant, rotation and blur; train and test use DISJOINT fonts (like MNIST's
  disjoint writers): nothing is a copy, but many images look alike.
- strokes: thin "1", "7", "l" shapes (one to three strokes), the hardest look-alikes.
- simple: flat and two-tone images (the usual perceptual-hash collisions).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

Split = tuple[list[Image.Image], list[Image.Image]]
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")

# kind -> target recall (the issue's): 0.99 for copies, re-encodings, resizes and mirrors
KINDS: dict[str, float] = {
    "exact": 0.99,
    "png": 0.99,
    "bmp": 0.99,
    "webp-lossless": 0.99,
    "jpeg-q75": 0.99,
    "jpeg-q90": 0.99,
    "webp-q90": 0.99,
    "half-bilinear": 0.99,
    "half-lanczos": 0.99,
    "double-bilinear": 0.99,
    "double-lanczos": 0.99,
    "mirror": 0.99,
    "crop-1-10%": 0.97,
    "bright-x0.8": 0.97,
    "bright-x1.2": 0.97,
}


@dataclass(frozen=True)
class Size:
    train: int
    test: int
    plant: int  # test images planted per transformation


# Per preset, per dataset. photos: train is crops per photograph, test the grid's columns.
PRESETS: dict[str, dict[str, Size]] = {
    "quick": {
        "photos": Size(10, 2, 60),
        "digits": Size(1500, 150, 20),
        "glyphs": Size(2000, 200, 20),
        "strokes": Size(1000, 150, 20),
        "simple": Size(400, 100, 30),
    },
    "default": {
        "photos": Size(30, 2, 120),
        "digits": Size(5000, 400, 40),
        "glyphs": Size(10000, 600, 40),
        "strokes": Size(3000, 400, 40),
        "simple": Size(400, 100, 100),
    },
    "full": {
        "photos": Size(60, 3, 250),
        "digits": Size(60000, 10000, 500),
        "glyphs": Size(10000, 2000, 200),
        "strokes": Size(10000, 2000, 200),
        "simple": Size(2000, 500, 300),
    },
}


# --------------------------------------------------------------------------------------------
# photos


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


def photo_splits(size: Size, rng: np.random.Generator) -> Split:
    """Train crops from the left 45 % of each photograph (any zoom, overlapping), test crops from
    the right 45 % (a non-overlapping grid, so no two test images share pixels)."""
    train, test = [], []
    for arr in _photographs():
        im = Image.fromarray(arr)
        w, h = im.size
        left, right = im.crop((0, 0, int(0.45 * w), h)), im.crop((w - int(0.45 * w), 0, w, h))
        for _ in range(size.train):
            lw, lh = left.size
            cw = int(rng.integers(lw // 4, lw + 1))
            ch = min(lh, int(cw * rng.uniform(0.6, 1.4)))
            x, y = int(rng.integers(0, lw - cw + 1)), int(rng.integers(0, lh - ch + 1))
            train.append(_resized(left.crop((x, y, x + cw, y + ch)), rng))
        rw, rh = right.size
        cols = size.test
        rows = max(2, round(cols * rh / rw))
        for i in range(cols):
            for j in range(rows):
                box = (i * rw // cols, j * rh // rows, (i + 1) * rw // cols, (j + 1) * rh // rows)
                test.append(_resized(right.crop(box), rng))
    return train, test


# --------------------------------------------------------------------------------------------
# digits, glyphs, strokes (28×28 grayscale)


def _scan(big: Image.Image, rng: np.random.Generator, slant: float, turn: float) -> Image.Image:
    """Slant, rotate and blur a 56×56 drawing like a scan, then reduce it to 28×28."""
    shear = float(rng.uniform(-slant, slant))
    big = big.transform(big.size, Image.Transform.AFFINE, (1, shear, -shear * 28, 0, 1, 0))
    big = big.rotate(float(rng.uniform(-turn, turn)), resample=Image.Resampling.BILINEAR)
    big = big.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 1.5))))
    return big.resize((28, 28), Image.Resampling.BOX)


def _glyph(
    rng: np.random.Generator, font: Callable[[int], ImageFont.FreeTypeFont], text: str
) -> Image.Image:
    big = Image.new("L", (56, 56), 0)
    draw = ImageDraw.Draw(big)
    face = font(int(rng.integers(28, 44)))
    stroke = int(rng.integers(0, 4))
    x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=face, stroke_width=stroke)
    x = (56 - (x1 - x0)) / 2 - x0 + rng.uniform(-6, 6)
    y = (56 - (y1 - y0)) / 2 - y0 + rng.uniform(-6, 6)
    ink = int(rng.integers(160, 256))
    draw.text((x, y), text, fill=ink, font=face, stroke_width=stroke, stroke_fill=ink)
    return _scan(big, rng, 0.3, 20)


def _default_font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)  # type: ignore[return-value]


def digit_splits(size: Size, rng: np.random.Generator) -> Split:
    """PIL's default font only: train and test are drawn alike (the hardest false-flag case)."""

    def one() -> Image.Image:
        return _glyph(rng, _default_font, str(rng.integers(0, 10)))

    return [one() for _ in range(size.train)], [one() for _ in range(size.test)]


def font_sets() -> tuple[list[str], list[str]]:
    """Disjoint train and test fonts: every third DejaVu face (sorted) goes to test; PIL's default
    font (named "default") to train."""
    faces = sorted(p.name for p in FONT_DIR.glob("*.ttf") if "Math" not in p.name)
    test = faces[1::3]
    return ["default", *(f for f in faces if f not in test)], test


def _font(name: str) -> Callable[[int], ImageFont.FreeTypeFont]:
    if name == "default":
        return _default_font
    path = str(FONT_DIR / name)
    return lambda size: ImageFont.truetype(path, size)


def glyph_splits(size: Size, rng: np.random.Generator) -> Split:
    train_fonts, test_fonts = font_sets()
    if not test_fonts:
        raise SystemExit(f"glyphs: no fonts in {FONT_DIR} (apt-get install fonts-dejavu-core)")

    def draw(fonts: list[str]) -> Image.Image:
        font = _font(fonts[int(rng.integers(0, len(fonts)))])
        return _glyph(rng, font, str(rng.integers(0, 10)))

    return [draw(train_fonts) for _ in range(size.train)], [
        draw(test_fonts) for _ in range(size.test)
    ]


def _stroke(rng: np.random.Generator) -> Image.Image:
    """A thin "1" (with or without flag and foot), "7" or "l" (with a tail), drawn as lines."""
    big = Image.new("L", (56, 56), 0)
    draw = ImageDraw.Draw(big)
    width, ink = int(rng.integers(2, 6)), int(rng.integers(160, 256))
    cx, top, bottom = 28 + rng.uniform(-8, 8), rng.uniform(6, 16), rng.uniform(40, 50)
    lean = rng.uniform(-6, 6)
    shape = ("1", "7", "l")[int(rng.integers(0, 3))]
    if shape == "7":
        left, right = cx - rng.uniform(6, 14), cx + rng.uniform(6, 14)
        lines = [((left, top), (right, top)), ((right, top), (cx - 4 + lean, bottom))]
    else:
        lines = [((cx + lean, top), (cx - lean, bottom))]
        if shape == "1" and rng.random() < 0.6:
            lines.append(((cx + lean, top), (cx + lean - rng.uniform(4, 10), top + 6)))
        if shape == "1" and rng.random() < 0.3:
            lines.append(((cx - lean - 7, bottom), (cx - lean + 7, bottom)))
        if shape == "l" and rng.random() < 0.7:
            lines.append(((cx - lean, bottom), (cx - lean + rng.uniform(3, 8), bottom - 3)))
    for a, b in lines:
        draw.line([a, b], fill=ink, width=width)
    return _scan(big, rng, 0.2, 10)


def stroke_splits(size: Size, rng: np.random.Generator) -> Split:
    return [_stroke(rng) for _ in range(size.train)], [_stroke(rng) for _ in range(size.test)]


# --------------------------------------------------------------------------------------------
# flat and two-tone


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


def simple_splits(size: Size, rng: np.random.Generator) -> Split:
    return [_simple(rng) for _ in range(size.train)], [_simple(rng) for _ in range(size.test)]


DATASETS: dict[str, Callable[[Size, np.random.Generator], Split]] = {
    "photos": photo_splits,
    "digits": digit_splits,
    "glyphs": glyph_splits,
    "strokes": stroke_splits,
    "simple": simple_splits,
}


# --------------------------------------------------------------------------------------------
# transformations planted into train


def _encoded(im: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _png(im: Image.Image) -> bytes:
    return _encoded(im, "PNG")


def _crop(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Each side cut by its own random 1-10 % (at least one pixel, so it is always a crop)."""
    w, h = im.size
    left, top, right, bottom = (
        max(1, round(float(rng.uniform(0.01, 0.10)) * n)) for n in (w, h, w, h)
    )
    return im.crop((left, top, w - right, h - bottom))


def _bright(im: Image.Image, factor: float) -> Image.Image:
    arr = np.asarray(im, dtype=np.float32) * np.float32(factor)
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), im.mode)


def _resize(im: Image.Image, scale: float, method: Image.Resampling) -> Image.Image:
    w, h = im.size
    return im.resize((max(1, round(w * scale)), max(1, round(h * scale))), method)


def plant(
    kind: str, original: bytes, im: Image.Image, rng: np.random.Generator
) -> tuple[bytes, str]:
    """The planted copy's file bytes and extension. ``original``: the test file as stored; ``im``:
    its decoded pixels. Geometric and brightness changes are stored losslessly (PNG), so only
    the transformation is measured."""
    bil, lan = Image.Resampling.BILINEAR, Image.Resampling.LANCZOS
    ops: dict[str, Callable[[], tuple[bytes, str]]] = {
        "exact": lambda: (original, ""),
        "png": lambda: (_png(im), "png"),
        "bmp": lambda: (_encoded(im, "BMP"), "bmp"),
        "webp-lossless": lambda: (_encoded(im, "WEBP", lossless=True), "webp"),
        "jpeg-q75": lambda: (_encoded(im, "JPEG", quality=75), "jpg"),
        "jpeg-q90": lambda: (_encoded(im, "JPEG", quality=90), "jpg"),
        "webp-q90": lambda: (_encoded(im, "WEBP", quality=90), "webp"),
        "half-bilinear": lambda: (_png(_resize(im, 0.5, bil)), "png"),
        "half-lanczos": lambda: (_png(_resize(im, 0.5, lan)), "png"),
        "double-bilinear": lambda: (_png(_resize(im, 2.0, bil)), "png"),
        "double-lanczos": lambda: (_png(_resize(im, 2.0, lan)), "png"),
        "mirror": lambda: (_png(im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)), "png"),
        "crop-1-10%": lambda: (_png(_crop(im, rng)), "png"),
        "bright-x0.8": lambda: (_png(_bright(im, 0.8)), "png"),
        "bright-x1.2": lambda: (_png(_bright(im, 1.2)), "png"),
    }
    return ops[kind]()
