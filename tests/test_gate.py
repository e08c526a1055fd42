"""check as a gate: its parts against independent references (band agreements against the
spatial recipe, box hashes against the thumbnails' own, the candidate ranking against brute
force, the decision's arithmetic), and end to end: look-alikes are not leaks, a copy of an image
the train split holds twice is, --fail-on, and the same report for any number of workers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import describe, invoke
from PIL import Image, ImageDraw, ImageFilter

import normstat
from normstat.fingerprints import phash_of, thumbnail
from normstat.verbs.check.candidates import nearest
from normstat.verbs.check.decide import FLOOR, Rule, colour_agrees, decide, tier
from normstat.verbs.check.features import agreement, blurred_score, features, mirrored
from normstat.verbs.check.queries import BOXES, box_hashes, box_thumb

# --------------------------------------------------------------------------------------------
# the parts


def _blur(n: int, sigma: float) -> np.ndarray:
    """Gaussian blur with mirrored edges as a matrix, written out independently."""
    r = int(np.ceil(3 * sigma))
    taps = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    taps /= taps.sum()
    m = np.zeros((n, n))
    for i in range(n):
        for k, w in enumerate(taps):
            j = i + k - r
            while j < 0 or j >= n:  # mirror about the half-sample edges
                j = -j - 1 if j < 0 else 2 * n - j - 1
            m[i, j] += w
    return m


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


def test_band_agreements_are_correlations_of_blurred_thumbnails() -> None:
    """LOW: Pearson of the σ=2 blurs; BAND: of the σ=1 minus σ=2 blurs; blurred_score: of the
    σ=1 blurs; mirrored features are those of the mirror image."""
    rng = np.random.default_rng(0)
    thumbs = rng.integers(0, 256, (6, 32, 32)).astype(np.float64)
    thumbs = np.stack([_blur(32, 0.7) @ t @ _blur(32, 0.7).T for t in thumbs])  # image-like
    g1, g2 = _blur(32, 1.0), _blur(32, 2.0)
    f = features(thumbs)
    got = agreement(f, f)
    for i in range(6):
        for j in range(6):
            low = _pearson(g2 @ thumbs[i] @ g2.T, g2 @ thumbs[j] @ g2.T)
            band_i = g1 @ thumbs[i] @ g1.T - g2 @ thumbs[i] @ g2.T
            band_j = g1 @ thumbs[j] @ g1.T - g2 @ thumbs[j] @ g2.T
            assert got[0, i, j] == pytest.approx(low, abs=2e-3)
            assert got[1, i, j] == pytest.approx(_pearson(band_i, band_j), abs=2e-3)
    assert blurred_score(thumbs[0], thumbs[1]) == pytest.approx(
        _pearson(g1 @ thumbs[0] @ g1.T, g1 @ thumbs[1] @ g1.T), abs=2e-3
    )
    flipped = features(thumbs[:, :, ::-1].copy())
    assert np.allclose(mirrored(f), flipped, atol=1e-5)
    assert np.allclose(features(np.full((1, 32, 32), 7.0)), 0)  # flat: agrees with nothing


def test_box_hashes_equal_the_hashes_of_the_box_thumbnails() -> None:
    rng = np.random.default_rng(1)
    works = rng.random((3, 40, 56)).astype(np.float32)
    got = box_hashes(works)
    for i, work in enumerate(works):
        want = [int(phash_of(box_thumb(work, box))) for box in BOXES]
        assert got[i].tolist() == want
        # and box_thumb is an area average: a box of whole pixels of a 2x-upsampled image
        big = np.kron(work, np.ones((2, 2), np.float32))
        assert np.allclose(box_thumb(big, BOXES[5]), box_thumb(work, BOXES[5]), atol=1e-5)


def test_nearest_keeps_each_tests_cap_nearest_as_brute_force_does() -> None:
    rng = np.random.default_rng(2)
    n = 5000
    test = rng.integers(0, 30, n)
    row = rng.integers(0, 200, n)
    dist = rng.integers(0, 13, n)
    extra = rng.integers(0, 4, n)
    t, r, d, e = nearest(test, row, dist, extra, 7)
    want = {}
    for a, b, c, x in zip(test, row, dist, extra, strict=True):
        key = (int(a), int(b))
        want[key] = min(want.get(key, (99, 99)), (int(c), int(x)))
    for a in range(30):
        ranked = sorted((c, b, x) for (t_, b), (c, x) in want.items() if t_ == a)[:7]
        got = [(int(c), int(b), int(x)) for tt, b, c, x in zip(t, r, d, e, strict=True) if tt == a]
        assert got == ranked


def _decide(scores: list[list[float]], twins: list[bool] | None = None) -> tuple[int, float]:
    """decide() on one test image's entries; ``twins``: which are copies of the best."""
    arr = np.array(scores, dtype=np.float64)[:, None, :]
    mask = np.zeros((1, arr.shape[2]), dtype=bool) if twins is None else np.array([twins])
    d = decide(arr, np.ones((1, arr.shape[2]), dtype=bool), lambda best: mask.copy())
    return int(d.best[0]), float(d.distinct[0])


def test_decide_measures_the_best_against_the_nearest_distinct_other() -> None:
    # a copy (1 - s = 0.001) among look-alikes at best 0.95 / 0.90: max(0.05, 0.10) / 0.001
    best, distinct = _decide([[0.95, 0.999, 0.90, 0.5], [0.90, 0.999, 0.85, 0.2]])
    assert best == 1 and distinct == pytest.approx(100)
    # the second copy of a twice-contributed image is no neighbour of the first
    scores = [[0.999, 0.999, 0.90], [0.999, 0.998, 0.85]]
    assert _decide(scores, [True, True, False])[1] == pytest.approx(150)
    assert _decide(scores)[1] < 3  # counted as a neighbour, nothing stands out
    # a look-alike: best 0.98 against 0.96 nearby
    assert _decide([[0.98, 0.96], [0.98, 0.95]]) == (0, pytest.approx(2.5))
    # a perfect copy is counted at FLOOR; alone, its neighbour is agreement 0
    assert _decide([[1.0, 0.5], [1.0, 0.5]])[1] == pytest.approx(0.5 / FLOOR)
    assert _decide([[0.99], [0.98]])[1] == pytest.approx(1 / 0.01)
    # test images without any entry
    d = decide(np.zeros((2, 3, 2)), np.zeros((3, 2), dtype=bool), lambda b: np.zeros((3, 2), bool))
    assert d.distinct.tolist() == [0, 0, 0]


def test_the_tier_needs_distinctness_agreement_and_colour() -> None:
    rule = Rule(margin=10, look=3, threshold=0.5)
    assert tier(10, 0.9, True, rule) == "leak"
    assert tier(9.9, 0.9, True, rule) == "look-alike"
    assert tier(2.9, 0.9, True, rule) is None
    assert tier(100, 0.4, True, rule) is None
    assert tier(100, 0.9, False, rule) is None


def test_colours_agree_up_to_brightness() -> None:
    red = np.array([0.6, 0.2, 0.2])
    assert colour_agrees(red, red * 0.8) and colour_agrees(red, red * 1.25)
    assert not colour_agrees(red, np.array([0.2, 0.6, 0.2]))  # same brightness, other hue
    assert not colour_agrees(red, red * 3)  # not a brightness change ±20 %
    assert colour_agrees(np.array([0.01, 0.0, 0.02]), np.array([0.0, 0.02, 0.0]))  # dark


def test_rule_values_are_checked() -> None:
    with pytest.raises(ValueError, match="margin"):
        normstat.api.CheckOptions(margin=0.5)
    with pytest.raises(ValueError, match="look-alike"):
        normstat.api.CheckOptions(look=0.5)
    assert normstat.api.CheckOptions(margin=3).look == 3  # a lower margin lowers it too
    with pytest.raises(ValueError, match="fail-on"):
        normstat.api.CheckOptions(fail_on="warning")


# --------------------------------------------------------------------------------------------
# end to end


def stroke(rng: np.random.Generator) -> Image.Image:
    """A thin, bent, slanted "1" as in handwritten digits: many look alike, none is a copy."""
    big = Image.new("L", (56, 56), 0)
    draw = ImageDraw.Draw(big)
    cx, lean, bend = 28 + rng.uniform(-7, 7), rng.uniform(-6, 6), rng.uniform(-3, 3)
    top, bottom = rng.uniform(6, 16), rng.uniform(40, 50)
    mid = ((2 * cx + bend) / 2, (top + bottom) / 2)
    ink, width = int(rng.integers(150, 256)), int(rng.integers(2, 6))
    draw.line([(cx + lean, top), mid, (cx - lean, bottom)], fill=ink, width=width)
    if rng.random() < 0.6:
        flag = rng.uniform(4, 10)
        draw.line([(cx + lean, top), (cx + lean - flag, top + flag * 0.7)], fill=ink, width=width)
    big = big.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 1.5))))
    return big.resize((28, 28), Image.Resampling.BOX)


def _strokes(folder: Path, n: int, rng: np.random.Generator) -> Path:
    """``folder`` made and filled with ``n`` strokes."""
    folder.mkdir()
    for i in range(n):
        stroke(rng).save(folder / f"{i:04d}.png")
    return folder


@pytest.fixture(scope="module")
def strokes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """Disjoint train and test splits of look-alike strokes, and the train manifest."""
    base = tmp_path_factory.mktemp("strokes")
    rng = np.random.default_rng(20)
    train, test = _strokes(base / "train", 500, rng), _strokes(base / "test", 60, rng)
    manifest = base / "stats.json"
    normstat.compute(train, workers=1).save(str(manifest))
    return train, test, manifest


def test_look_alike_strokes_are_not_leaks(strokes: tuple[Path, Path, Path]) -> None:
    _, test, manifest = strokes
    report = normstat.check(test, manifest, workers=1)
    assert report.leaked == [], [(x.test, x.distinct) for x in report.leaked]
    assert report.clean
    for x in report.look_alikes:  # listed for review, below the margin
        assert x.kind == "look-alike" and x.distinct is not None
        assert normstat.api.DEFAULT_LOOK_ALIKE <= x.distinct < normstat.api.DEFAULT_MARGIN


def test_copy_of_an_image_train_holds_twice_is_found(tmp_path: Path) -> None:
    rng = np.random.default_rng(21)
    train, test = _strokes(tmp_path / "train", 300, rng), _strokes(tmp_path / "test", 0, rng)
    original = stroke(rng)
    original.save(train / "twice_a.png")
    original.save(train / "twice_b.bmp")
    original.save(test / "copy.jpg", quality=90)
    manifest = tmp_path / "stats.json"
    normstat.compute(train, workers=1).save(str(manifest))
    report = normstat.check(test, manifest, workers=1)
    assert [(Path(x.test).name, x.kind) for x in report.leaked] == [("copy.jpg", "near")]
    assert Path(report.leaked[0].train).name in {"twice_a.png", "twice_b.bmp"}


def test_fail_on_look_alike_fails_the_gate(strokes: tuple[Path, Path, Path]) -> None:
    _, test, manifest = strokes
    lenient = normstat.check(test, manifest, workers=1, margin=4.0, look_alike=1.5)
    assert lenient.look_alikes or lenient.leaked, "no look-alike above 1.5 among 60 strokes"
    assert normstat.check(test, manifest, workers=1, look_alike=1.5).clean
    strict = normstat.check(test, manifest, workers=1, look_alike=1.5, fail_on="look-alike")
    assert not strict.clean and strict.leaked == []
    args = ("check", test, "--stats", manifest, "-w", "1", "--look-alike", "1.5")
    result = invoke(*args, "--fail-on", "look-alike", "--json", "-")
    assert result.exit_code == 1, describe(result)
    assert json.loads(result.stdout)["look_alikes"]
    assert invoke(*args).exit_code == 0
    bad = invoke("check", test, "--stats", manifest, "--fail-on", "everything")
    assert bad.exit_code == 2 and "fail-on" in bad.stderr


def test_report_is_the_same_for_any_number_of_workers(strokes: tuple[Path, Path, Path]) -> None:
    train, test, manifest = strokes
    work = test.parent / "mixed"
    work.mkdir(exist_ok=True)
    for p in sorted(test.iterdir())[:20]:
        (work / p.name).write_bytes(p.read_bytes())
    Image.open(train / "0007.png").save(work / "leak_jpeg.jpg", quality=80)
    Image.open(train / "0009.png").transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(
        work / "leak_mirror.png"
    )
    one = normstat.check(work, manifest, workers=1).to_json()
    two = normstat.check(work, manifest, workers=2).to_json()
    assert one == two
    assert {Path(x["test"]).name for x in one["leaked"]} == {"leak_jpeg.jpg", "leak_mirror.png"}


def test_small_images_are_also_hashed_as_their_resized_copies_would_be() -> None:
    """The 2× and 0.5× thumbnails of small images, made by two linear maps per size, are
    those Pillow makes of the resized image (within the rounding of 8-bit resampling)."""
    from normstat.verbs.check.queries import _rescaled

    rng = np.random.default_rng(3)
    images = [stroke(rng) for _ in range(8)]
    works = np.stack([np.asarray(im, np.float32) / 255 for im in images])
    got = _rescaled(works)
    for i, im in enumerate(images):
        for k, scale in enumerate((2.0, 0.5)):
            side = round(28 * scale)
            want = thumbnail(im.resize((side, side), Image.Resampling.BILINEAR)) / 255
            assert np.abs(got[i, k] - want).max() < 0.02
            assert bin(int(phash_of(want)) ^ int(phash_of(got[i, k]))).count("1") <= 4
