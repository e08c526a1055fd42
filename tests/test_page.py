"""The leak page (``check --report``): every reported pair shown with its pictures, hostile names
only escaped, the crop box drawn, placeholders for images that cannot be read now, manifests
without stored references, the bound on pairs, and the CLI's refusal to replace other files."""

from __future__ import annotations

import base64
import html
import io
import os
import re
import shutil
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import describe, invoke
from PIL import Image, ImageOps

import normstat
from normstat import Stats
from normstat.api import write_leak_page
from normstat.verbs.check import LeakReport, page
from normstat.verbs.check.leakage import Leak

PER_PAIR = 3  # pictures a pair shows: the test image, the contributor, the test's thumbnail
HOSTILE = 'a<script>"x.png'
BAD_BYTES = b"bad\xff\x1b.png"  # not UTF-8, and a control character


def blobs(rng: np.random.Generator, w: int = 64, h: int = 48) -> Image.Image:
    """A smooth RGB picture of a few coloured blobs."""
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w, 3), np.float32) + rng.uniform(0, 80, 3)
    for _ in range(6):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(4, 18)
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
        img += blob[..., None] * rng.uniform(0, 180, 3)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """30 train images and their manifest; a test split with copies of several of them."""
    base = tmp_path_factory.mktemp("page")
    train, test = base / "train", base / "test"
    train.mkdir()
    test.mkdir()
    rng = np.random.default_rng(5)
    ims = [blobs(rng) for _ in range(30)]
    for i, im in enumerate(ims):
        im.save(train / f"t{i:02d}.png")
    ims[0].save(test / "exact.png")
    ims[1].save(test / "jpeg.jpg", quality=80)
    ims[2].resize((32, 24), Image.Resampling.LANCZOS).save(test / "half.png")
    ImageOps.mirror(ims[3]).save(test / "mirror.png")
    ims[4].crop((3, 2, 61, 46)).save(test / "crop.png")
    ims[5].save(test / HOSTILE)
    ims[6].save(os.path.join(os.fsencode(test), BAD_BYTES), format="PNG")
    for i in range(4):
        blobs(rng).save(test / f"other{i}.png")
    manifest = base / "m.json"
    normstat.compute(train, workers=1).save(str(manifest))
    report = normstat.check(test, manifest, workers=1)
    return SimpleNamespace(base=base, train=train, test=test, manifest=manifest, report=report)


def pairs(report: LeakReport) -> list[Leak]:
    return [*report.leaked, *report.look_alikes]


def pictures(text: str) -> list[Image.Image]:
    """The page's inlined PNGs, in order."""
    found = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    return [Image.open(io.BytesIO(base64.b64decode(b))) for b in found]


def written(report: LeakReport, path: Path, test: Path, stats: Stats | Path) -> str:
    write_leak_page(report, path, test, stats)
    raw = path.read_bytes()
    assert page.is_page(raw[:512]) and raw.startswith(page.MARK)
    return raw.decode("utf-8")  # whatever the names held, the page is valid UTF-8


def test_every_pair_shown_and_names_escaped(data: SimpleNamespace, tmp_path: Path) -> None:
    report = data.report
    by_test = {os.path.basename(leak.test): leak for leak in pairs(report)}
    exact = by_test["exact.png"]
    assert exact.kind == "exact" and exact.train.endswith("t00.png")
    assert by_test[HOSTILE].kind == "exact"
    text = written(report, tmp_path / "leaks.html", data.test, data.manifest)
    for leak in pairs(report):
        assert page._text(leak.test) in text and page._text(leak.train) in text
    assert text.count("<img") == PER_PAIR * len(pairs(report)) == len(pictures(text))
    assert html.escape(HOSTILE, quote=True) in text
    assert "&lt;script&gt;&quot;x.png" in text
    assert "<script" not in text.lower() and HOSTILE not in text
    assert "bad\\udcff\\x1b.png" in text and "\x1b" not in text  # undecodable and control bytes
    assert "failed" in text and f"{len(report.leaked)}" in text
    mirrored = [leak for leak in pairs(report) if leak.mirrored]
    if mirrored:  # the contributor is turned back to line up with the test image
        assert "mirrored back" in text
    cropped = [leak for leak in pairs(report) if (leak.transform or {}).get("crop")]
    if cropped:
        assert "cropped" in text and "the box: the part found" in text


def test_crop_box_drawn(data: SimpleNamespace, tmp_path: Path) -> None:
    """A pair whose transform holds a crop box: the rectangle is drawn on the test image."""
    base = next(leak for leak in data.report.leaked if leak.test.endswith("exact.png"))
    transform = {"crop": [0.25, 0.25, 0.75, 0.75], "scale": 1.0, "gain": 1.0, "mirrored": False}
    leak = replace(base, kind="near", transform={**transform, "changes": ["cropped"]})
    report = LeakReport([leak], 1, manifest=str(data.manifest))
    text = written(report, tmp_path / "crop.html", data.test, data.manifest)
    shown = np.asarray(pictures(text)[0].convert("RGB"))
    h, w = shown.shape[:2]
    assert tuple(shown[h // 4 + 1, w // 2]) == page.BOX  # the top edge
    assert tuple(shown[h // 2, w // 4 + 1]) == page.BOX  # the left edge
    assert tuple(shown[h // 2, w // 2]) != page.BOX  # inside: the picture
    assert "cropped" in text


def test_missing_and_broken_test_images_get_placeholders(
    data: SimpleNamespace, tmp_path: Path
) -> None:
    test = tmp_path / "test"
    shutil.copytree(data.test, test)
    report = normstat.check(test, data.manifest, workers=1)
    (test / "exact.png").unlink()  # gone between check and page
    (test / "jpeg.jpg").write_bytes(b"\xff\xd8\xff not a JPEG any more")
    text = written(report, tmp_path / "leaks.html", test, data.manifest)
    gone = [leak for leak in pairs(report) if leak.test.endswith(("exact.png", "jpeg.jpg"))]
    assert len(gone) in (1, 2)  # the exact copy, and the re-encoded one when detected
    assert "no longer in the test source" in text
    assert text.count("<img") == PER_PAIR * len(pairs(report)) - 2 * len(gone)


def test_clean_check_says_so(data: SimpleNamespace, tmp_path: Path) -> None:
    test = tmp_path / "fresh"
    test.mkdir()
    rng = np.random.default_rng(99)
    for i in range(3):
        blobs(rng).save(test / f"new{i}.png")
    report = normstat.check(test, data.manifest, workers=1)
    assert report.clean and not report.leaked
    text = written(report, tmp_path / "clean.html", test, data.manifest)
    assert '<b class="clean">clean</b>' in text and "<img" not in text
    assert "3 test images" in text


def test_manifest_without_references_reads_train_files(
    data: SimpleNamespace, tmp_path: Path
) -> None:
    """Older sidecars store no thumbnails: the contributor is read from its file, or a
    placeholder says it cannot be read (never whether it exists)."""
    stats = Stats.load(str(data.manifest))
    assert stats.fingerprints is not None
    stats.fingerprints = replace(stats.fingerprints, thumb=None, thumb_range=None)
    exact = [leak for leak in data.report.leaked if leak.test.endswith("exact.png")]
    report = LeakReport(exact, 1, manifest=str(data.manifest))
    text = written(report, tmp_path / "old.html", data.test, stats)
    assert "read from its file" in text and text.count("<img") == PER_PAIR
    train = tmp_path / "train"
    shutil.copytree(data.train, train)
    stats.fingerprints.roots[:] = [str(train)]
    (train / "t00.png").unlink()
    text = written(report, tmp_path / "old.html", data.test, stats)
    assert "cannot be read now" in text and text.count("<img") == PER_PAIR - 1


def test_pairs_shown_are_bounded(
    data: SimpleNamespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(page, "MAX_PAIRS", 2)
    report = data.report
    text = written(report, tmp_path / "few.html", data.test, data.manifest)
    assert text.count("<img") == 2 * PER_PAIR
    assert f"{len(pairs(report)) - 2} more pairs not shown" in text


def test_escaping_of_untrusted_text() -> None:
    got = page._text("x\udcff\x00\x1b[31m\u202e<b>\"&'\n")
    assert got == "x\\udcff\\x00\\x1b[31m\\u202e&lt;b&gt;&quot;&amp;&#x27;\\x0a"
    got.encode("utf-8")


def test_cli_writes_the_page_and_replaces_only_its_own(
    data: SimpleNamespace, tmp_path: Path
) -> None:
    out = tmp_path / "page.html"
    result = invoke("check", data.test, "--stats", data.manifest, "--report", out, "--quiet")
    assert result.exit_code == 1, describe(result)
    assert out.read_bytes().startswith(page.MARK)
    result = invoke("check", data.test, "--stats", data.manifest, "--report", out, "--quiet")
    assert result.exit_code == 1, describe(result)  # its own page: replaced
    readme = tmp_path / "README.html"
    readme.write_text("<html>mine</html>")
    result = invoke("check", data.test, "--stats", data.manifest, "--report", readme)
    assert result.exit_code == 2, describe(result)
    assert readme.read_text() == "<html>mine</html>"
