"""benchmarks/leaks.py measures what it says: the planted transformations against independent
references (NumPy slices, exact rational brightness), disjoint splits and fonts, and its counting
of found copies on a tiny run (lossless copies are exact leaks: every one must be counted)."""

from __future__ import annotations

import io
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import leaks
import leaksets


def _pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("L"))


@pytest.fixture
def gray() -> Image.Image:
    rng = np.random.default_rng(5)
    return Image.fromarray(rng.integers(0, 256, (31, 47), dtype=np.uint8), "L")


def _png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def test_lossless_kinds_keep_the_pixels_and_exact_keeps_the_bytes(gray: Image.Image) -> None:
    original = _png(gray)
    rng = np.random.default_rng(0)
    assert leaksets.plant("exact", original, gray, rng) == (original, "")
    for kind in ("png", "bmp", "webp-lossless"):
        data, _ = leaksets.plant(kind, original, gray, rng)
        np.testing.assert_array_equal(_pixels(data), np.asarray(gray), err_msg=kind)


def test_crop_cuts_each_side_by_1_to_10_percent(gray: Image.Image) -> None:
    arr = np.asarray(gray)
    big = Image.fromarray(np.tile(arr, (4, 4)))  # 124 × 188: percentages are whole pixels
    rng = np.random.default_rng(1)
    for _ in range(50):
        data, _ = leaksets.plant("crop-1-10%", b"", big, rng)
        out = _pixels(data)
        h, w = out.shape
        src = np.asarray(big)
        matches = [
            (y, x)
            for y in range(src.shape[0] - h + 1)
            for x in range(src.shape[1] - w + 1)
            if np.array_equal(src[y : y + h, x : x + w], out)
        ]
        assert matches, "the crop is not a window of the original"
        y, x = matches[0]
        for cut, n in ((x, 188), (y, 124), (188 - w - x, 188), (124 - h - y, 124)):
            assert 1 <= cut <= round(0.10 * n), (cut, n)


@pytest.mark.parametrize(("kind", "factor"), [("bright-x0.8", "0.8"), ("bright-x1.2", "1.2")])
def test_brightness_is_exact_and_clipped(gray: Image.Image, kind: str, factor: str) -> None:
    data, _ = leaksets.plant(kind, b"", gray, np.random.default_rng(0))
    f = Fraction(factor)
    expected = [min(255, round(v * f)) for v in np.asarray(gray).ravel().tolist()]
    assert _pixels(data).ravel().tolist() == expected


def test_resizes_halve_and_double_the_size(gray: Image.Image) -> None:
    rng = np.random.default_rng(0)
    for kind, size in (("half-lanczos", (24, 16)), ("double-bilinear", (94, 62))):
        data, _ = leaksets.plant(kind, b"", gray, rng)
        with Image.open(io.BytesIO(data)) as im:
            assert im.size == size


def test_glyph_fonts_and_images_are_disjoint() -> None:
    train_fonts, test_fonts = leaksets.font_sets()
    if not test_fonts:
        pytest.skip(f"no fonts in {leaksets.FONT_DIR}")
    assert not set(train_fonts) & set(test_fonts)
    train, test = leaksets.glyph_splits(leaksets.Size(200, 50, 0), np.random.default_rng(3))
    seen = {im.tobytes() for im in train}
    assert all(im.size == (28, 28) and im.mode == "L" for im in train + test)
    assert not any(im.tobytes() in seen for im in test)


def test_tiny_run_counts_every_lossless_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kinds = {k: leaksets.KINDS[k] for k in ("exact", "png", "mirror")}
    monkeypatch.setattr(leaks, "KINDS", kinds)
    layout = leaks.build("strokes", leaksets.Size(40, 8, 4), tmp_path, seed=0)
    assert sorted(layout.kinds) == sorted(kinds)
    fig = leaks.measure(layout, workers=1, margin=leaks.DEFAULT)
    for kind in ("exact", "png"):
        assert fig["kinds"][kind]["planted"] == 4
        assert fig["kinds"][kind]["found"] == 4, fig["kinds"][kind]
    assert fig["clean"]["checked"] == 8
    assert fig["time"]["check_per_compute"] > 0
