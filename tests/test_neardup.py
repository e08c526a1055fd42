"""Near-duplicate leaks: the hash index against brute force, the pHash, each planted
transformation found and verified, flat / two-tone / unrelated images not flagged, old sidecars
without pHashes, warnings for duplicates inside the test split and among contributors, and
candidates that can no longer be verified."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import brute_force, describe, invoke, without_references
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

import normstat
from normstat.fileops import sha256_file
from normstat.fingerprints import phash_of, thumbnail
from normstat.manifest.sidecar import write_sidecar
from normstat.verbs.check.hamming import HammingIndex, guaranteed_radius
from normstat.verbs.check.run import LEGACY, NO_PHASH

# --------------------------------------------------------------------------------------------
# the index


@st.composite
def codes_and_queries(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """Codes, and queries made by flipping a few bits of some codes (so that near pairs
    exist at every distance) plus unrelated ones."""
    words = st.integers(0, 2**64 - 1)
    codes = draw(st.lists(words, min_size=1, max_size=60))
    queries = draw(st.lists(words, max_size=10))
    for base in draw(st.lists(st.sampled_from(codes), max_size=20)):
        bits = draw(st.lists(st.integers(0, 63), max_size=9))
        for b in bits:
            base ^= 1 << b
        queries.append(base)
    return np.array(codes, dtype=np.uint64), np.array(queries, dtype=np.uint64)


@settings(max_examples=150, deadline=None)
@given(codes_and_queries(), st.integers(0, 1), st.data())
def test_index_equals_brute_force(
    data: tuple[np.ndarray, np.ndarray], probe: int, choose: st.DataObject
) -> None:
    codes, queries = data
    radius = choose.draw(st.integers(0, guaranteed_radius(probe)))
    got = HammingIndex(codes).search(queries, radius, probe=probe, batch=7)
    want = brute_force(codes, queries, radius)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


def test_index_beyond_guarantee_finds_a_subset() -> None:
    """16 bits apart, all in two of the four substrings (bit i goes to substring i mod 4):
    found through the two intact ones."""
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 2**63, 3000, dtype=np.uint64)
    two_substrings = sum((1 << (4 * j)) | (1 << (4 * j + 1)) for j in range(8))
    queries = codes[:200] ^ np.uint64(two_substrings)
    qi, ti, dist = HammingIndex(codes).search(queries, 20, probe=0)
    bq, bt, _ = brute_force(codes, queries, 20)
    found = set(zip(qi.tolist(), ti.tolist(), strict=True))
    assert found <= set(zip(bq.tolist(), bt.tolist(), strict=True))
    assert {(i, i) for i in range(200)} <= found
    assert (dist[qi == ti] == 16).all()


# --------------------------------------------------------------------------------------------
# the hash


def scene(rng: np.random.Generator, w: int = 160, h: int = 120) -> Image.Image:
    """A photo-like RGB image: a smooth random field with a few shapes."""
    field = rng.normal(size=(6, 8, 3))
    base = Image.fromarray(((field - field.min()) / np.ptp(field) * 255).astype(np.uint8))
    im = base.resize((w, h), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(im)
    for _ in range(6):
        x, y, r = int(rng.integers(0, w)), int(rng.integers(0, h)), int(rng.integers(6, 30))
        draw.ellipse(
            (x - r, y - r, x + r, y + r), fill=tuple(int(v) for v in rng.integers(0, 256, 3))
        )
    return im


def test_phash_is_balanced_and_mirror_is_a_sign_flip() -> None:
    rng = np.random.default_rng(1)
    for _ in range(5):
        im = scene(rng).convert("L")
        h = int(phash_of(thumbnail(im)))
        assert bin(h).count("1") == 32
        mirrored = int(phash_of(thumbnail(im.transpose(Image.Transpose.FLIP_LEFT_RIGHT))))
        assert bin(mirrored ^ int(phash_of(thumbnail(im), mirrored=True))).count("1") <= 4
        assert bin(mirrored ^ h).count("1") >= 12  # the mirror is a different hash


# --------------------------------------------------------------------------------------------
# planted transformations


def _jpeg(im: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def _bright(im: Image.Image, factor: float) -> Image.Image:
    arr = np.clip(np.asarray(im, dtype=np.float32) * factor, 0, 255)
    return Image.fromarray(np.rint(arr).astype(np.uint8))


TRANSFORMS = {
    "jpeg": lambda im: _jpeg(im, 75),
    "half": lambda im: im.resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS),
    "double": lambda im: im.resize((im.width * 2, im.height * 2), Image.Resampling.BICUBIC),
    "crop": lambda im: im.crop((10, 0, im.width - 4, im.height - 9)),  # 8.75 % and 7.5 %
    "brighter": lambda im: _bright(im, 1.2),
    "darker": lambda im: _bright(im, 0.8),
    "mirror": lambda im: im.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
}


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """One test image per transformation, its transformed copy in train, plus unrelated train
    images; the manifest."""
    base = tmp_path_factory.mktemp("neardup")
    train, test = base / "train", base / "test"
    (train / "other").mkdir(parents=True)
    test.mkdir()
    rng = np.random.default_rng(7)
    pairs = {}
    for kind, transform in TRANSFORMS.items():
        original = scene(rng)
        original.save(test / f"{kind}.png")
        transform(original).save(train / f"copy_{kind}.png")
        pairs[f"{kind}.png"] = f"copy_{kind}.png"
    scene(rng).save(test / "fresh.png")
    for i in range(20):
        scene(rng, 120 + i, 100).save(train / "other" / f"o{i}.png")
    stats = base / "stats.json"
    normstat.compute(train, workers=1).save(str(stats))
    return SimpleNamespace(base=base, train=train, test=test, pairs=pairs, stats=stats)


CHANGES = {  # the transformation check reports for each planted one
    "jpeg.png": "re-encoded",
    "half.png": "resized",
    "double.png": "resized",
    "crop.png": "cropped",
    "brighter.png": "brighter",
    "darker.png": "darker",
    "mirror.png": "mirrored",
}


def test_every_planted_transformation_is_found(planted: SimpleNamespace) -> None:
    report = normstat.check(planted.test, planted.stats, workers=1)
    found = {Path(x.test).name: x for x in report.leaked}
    assert set(found) == set(planted.pairs), found  # and "fresh.png" is not flagged
    for test, leak in found.items():
        assert Path(leak.train).name == planted.pairs[test]
        assert leak.kind == "near"
        assert normstat.api.DEFAULT_THRESHOLD <= leak.score <= 1
        assert leak.distinct is not None and leak.distinct >= normstat.api.DEFAULT_MARGIN
        assert leak.distance is not None and 0 <= leak.distance <= 12
        assert leak.mirrored is (test == "mirror.png")
        assert leak.transform is not None and CHANGES[test] in leak.transform["changes"], leak
    crop = found["crop.png"].transform
    assert crop is not None and crop["scale"] == 1.0
    w, h = Image.open(planted.test / "crop.png").size
    assert crop["crop"] == pytest.approx([10 / w, 0, (w - 4) / w, (h - 9) / h])  # the planted box
    assert found["half.png"].transform["scale"] == pytest.approx(0.5)  # type: ignore[index]
    assert report.look_alikes == []
    assert report.checked == len(TRANSFORMS) + 1
    assert report.threshold == normstat.api.DEFAULT_THRESHOLD


def test_cli_reports_near_leaks_in_table_and_json(planted: SimpleNamespace) -> None:
    result = invoke("check", planted.test, "--stats", planted.stats, "-w", "1", "--json", "-")
    assert result.exit_code == 1, describe(result)
    report = json.loads(result.stdout)
    assert report["schema"] == "normstat/leak-report@1"
    assert report["threshold"] == normstat.api.DEFAULT_THRESHOLD
    assert report["margin"] == normstat.api.DEFAULT_MARGIN
    assert report["fail_on"] == "leak" and report["look_alikes"] == []
    assert report["verification"] == "stored"
    fields = {"test", "train", "kind", "score", "distance", "mirrored", "distinct", "transform"}
    for item in report["leaked"]:
        assert set(item) == fields | {"row"}
        assert item["kind"] == "near"
        assert {"mirrored", "crop", "scale", "gain", "changes"} <= set(item["transform"])
    result = invoke("check", planted.test, "--stats", planted.stats, "-w", "1")
    assert result.exit_code == 1, describe(result)
    assert "near, mirrored" in result.stdout
    assert "near, cropped" in result.stdout
    assert f"LEAKED: {len(TRANSFORMS)}" in result.stdout


def test_threshold_one_reports_only_perfect_agreement(planted: SimpleNamespace) -> None:
    report = normstat.check(planted.test, planted.stats, workers=1, threshold=1.0)
    assert all(x.score >= 1.0 for x in report.leaked)
    assert len(report.leaked) < len(TRANSFORMS)


def test_a_higher_margin_moves_weaker_copies_to_the_look_alikes(planted: SimpleNamespace) -> None:
    everything = normstat.check(planted.test, planted.stats, workers=1)
    weakest = min(x.distinct for x in everything.leaked if x.distinct is not None)
    report = normstat.check(planted.test, planted.stats, workers=1, margin=weakest * 1.01)
    assert len(report.leaked) == len(everything.leaked) - 1
    assert [x.distinct for x in report.look_alikes] == [weakest]
    assert report.look_alikes[0].kind == "look-alike"
    assert not report.clean  # the others still leak


def test_threshold_out_of_range_is_a_usage_error(planted: SimpleNamespace) -> None:
    result = invoke("check", planted.test, "--stats", planted.stats, "--threshold", "0.2")
    assert result.exit_code == 2, describe(result)
    with pytest.raises(ValueError, match="threshold"):
        normstat.check(planted.test, planted.stats, workers=1, threshold=0)


# --------------------------------------------------------------------------------------------
# what must not be flagged


def two_tone(size: tuple[int, int], split: float, a: tuple, b: tuple, vertical: bool = True):
    im = Image.new("RGB", size, a)
    w, h = size
    im.paste(b, (0, 0, int(split * w), h) if vertical else (0, 0, w, int(split * h)))
    return im


def test_flat_two_tone_and_unrelated_images_are_not_flagged(tmp_path: Path) -> None:
    train, test = tmp_path / "train", tmp_path / "test"
    train.mkdir()
    test.mkdir()
    Image.new("RGB", (64, 48), (128, 128, 128)).save(train / "grey.png")
    Image.new("RGB", (64, 48), (20, 90, 200)).save(train / "blue.png")
    two_tone((64, 48), 0.5, (0, 0, 0), (255, 255, 255)).save(train / "bw_split.png")
    two_tone((80, 60), 0.3, (200, 30, 30), (30, 30, 200), vertical=False).save(train / "rb.png")
    rng = np.random.default_rng(5)
    for i in range(5):
        scene(rng).save(train / f"scene{i}.png")
    # Flat images of other colours; the same layouts in other colours; a different scene.
    Image.new("RGB", (64, 48), (131, 131, 131)).save(test / "grey_too.png")
    Image.new("RGB", (50, 50), (30, 200, 90)).save(test / "green.png")
    two_tone((64, 48), 0.5, (250, 0, 0), (0, 0, 250)).save(test / "rb_split.png")
    two_tone((80, 60), 0.3, (0, 0, 0), (255, 255, 255), vertical=False).save(test / "bw.png")
    scene(rng).save(test / "other_scene.png")
    stats = tmp_path / "stats.json"
    normstat.compute(train, workers=1).save(str(stats))

    report = normstat.check(test, stats, workers=1, threshold=0.5)  # even at a low threshold
    assert report.leaked == [], report.leaked
    assert report.checked == 5
    # A real copy of a flat image is still found, as an exact copy.
    shutil.copy(train / "grey.png", test / "grey_copy.png")
    report = normstat.check(test, stats, workers=1)
    found = [(Path(x.test).name, Path(x.train).name, x.kind) for x in report.leaked]
    assert found == [("grey_copy.png", "grey.png", "exact")]


# --------------------------------------------------------------------------------------------
# old manifests, warnings, unverifiable candidates


def test_old_sidecar_without_phash_checks_exact_copies_only(
    planted: SimpleNamespace, tmp_path: Path
) -> None:
    folder = tmp_path / "old"
    shutil.copytree(planted.stats.parent, folder, ignore=shutil.ignore_patterns("train", "test"))
    manifest = folder / "stats.json"
    data = json.loads(manifest.read_text())
    stats = normstat.Stats.load(str(manifest))
    assert stats.fingerprints is not None and stats.fingerprints.phash is not None
    stats.fingerprints.phash = None  # what normstat 0.1 wrote
    stats.fingerprints.thumb = stats.fingerprints.thumb_range = stats.fingerprints.colour = None
    sidecar = folder / data["sidecar"]["path"]
    with open(sidecar, "wb") as fh:
        write_sidecar(stats.fingerprints, fh, stats.histogram)
    data["sidecar"]["sha256"] = sha256_file(str(sidecar))
    manifest.write_text(json.dumps(data))
    with np.load(sidecar) as npz:
        assert "phash" not in npz.files

    test = tmp_path / "test"
    shutil.copytree(planted.test, test)
    shutil.copy(planted.train / "copy_jpeg.png", test / "exact_copy.png")
    report = normstat.check(test, manifest, workers=1)
    assert [(Path(x.test).name, x.kind) for x in report.leaked] == [("exact_copy.png", "exact")]
    assert NO_PHASH in report.warnings
    assert report.to_json()["threshold"] is None
    result = invoke("check", test, "--stats", manifest, "-w", "1")
    assert result.exit_code == 1, describe(result)
    assert "only exact copies are checked" in result.stderr


def test_duplicates_inside_test_split_are_warnings(
    planted: SimpleNamespace, tmp_path: Path
) -> None:
    test = tmp_path / "test"
    test.mkdir()
    rng = np.random.default_rng(11)
    a = scene(rng)
    a.save(test / "a.png")
    a.save(test / "a_twin.bmp")
    _jpeg(a, 80).save(test / "a_jpeg.png")
    scene(rng).save(test / "b.png")
    result = invoke("check", test, "--stats", planted.stats, "-w", "1", "--json", "-")
    assert result.exit_code == 0, describe(result)  # warnings do not change the exit code
    report = json.loads(result.stdout)
    assert report["clean"] is True
    same = [w for w in report["warnings"] if "same pixels" in w]
    assert len(same) == 1 and "a.png" in same[0] and "a_twin.bmp" in same[0]
    near = [w for w in report["warnings"] if "near-duplicates" in w]
    assert near and all("a_jpeg.png" in w for w in near)  # with a.png, and with its twin
    assert not any("b.png" in w for w in report["warnings"])
    assert "near-duplicates" in invoke("check", test, "--stats", planted.stats).stderr


def test_image_contributing_twice_is_a_warning(tmp_path: Path) -> None:
    train, test = tmp_path / "train", tmp_path / "test"
    train.mkdir()
    test.mkdir()
    rng = np.random.default_rng(12)
    im = scene(rng)
    im.save(train / "one.png")
    im.save(train / "two.bmp")
    scene(rng).save(train / "three.png")
    scene(rng).save(test / "t.png")
    normstat.compute(train, workers=1).save(str(tmp_path / "stats.json"))
    report = normstat.check(test, tmp_path / "stats.json", workers=1)
    assert report.clean
    assert len(report.warnings) == 1
    assert "2 times" in report.warnings[0] and "one.png" in report.warnings[0]


def _two_copies(tmp_path: Path) -> tuple[Path, Path, Path]:
    train, test = tmp_path / "train", tmp_path / "test"
    train.mkdir()
    test.mkdir()
    rng = np.random.default_rng(13)
    a, b = scene(rng), scene(rng)
    _jpeg(a, 85).save(train / "a.png")
    _jpeg(b, 85).save(train / "b.png")
    for i in range(3):
        scene(rng).save(train / f"o{i}.png")
    a.save(test / "a.png")
    b.save(test / "b.png")
    normstat.compute(train, workers=1).save(str(tmp_path / "stats.json"))
    return train, test, tmp_path / "stats.json"


def test_no_train_file_is_read_the_references_are_stored(tmp_path: Path) -> None:
    train, test, manifest = _two_copies(tmp_path)
    shutil.rmtree(train)  # the train split is gone (or in object storage)
    report = normstat.check(test, manifest, workers=1)
    assert sorted((Path(x.test).name, x.kind) for x in report.leaked) == [
        ("a.png", "near"),
        ("b.png", "near"),
    ]
    assert report.warnings == [] and report.verification == "stored"


def test_manifest_without_references_reads_the_train_files_and_says_so(tmp_path: Path) -> None:
    train, test, manifest = _two_copies(tmp_path)
    stored = normstat.check(test, manifest, workers=1)
    without_references(manifest)
    report = normstat.check(test, manifest, workers=1)
    assert LEGACY in report.warnings and report.verification == "files"
    assert [(x.test, x.train, x.kind) for x in report.leaked] == [
        (x.test, x.train, x.kind) for x in stored.leaked
    ]
    for old, new in zip(stored.leaked, report.leaked, strict=True):
        assert new.score == pytest.approx(old.score, abs=1e-6)  # the same references, read
    result = invoke("check", test, "--stats", manifest, "-w", "1")
    assert result.exit_code == 1, describe(result)
    assert "predates stored verification data" in result.stderr

    (train / "a.png").unlink()
    scene(np.random.default_rng(99)).save(train / "b.png")  # same name, other pixels
    report = normstat.check(test, manifest, workers=1)
    assert report.leaked == []
    gone = [w for w in report.warnings if "a.png" in w and "cannot verify" in w]
    changed = [w for w in report.warnings if "changed since" in w]
    assert len(gone) == 1 and len(changed) == 1 and "b.png" in changed[0]


def test_every_contributor_gets_a_phash_image_files_and_npy_stacks(tmp_path: Path) -> None:
    """pHashes are computed on every route into the statistics, equal to the function's."""
    from normstat.fingerprints import perceptual

    rng = np.random.default_rng(14)
    stack = np.stack([np.asarray(scene(rng, 40, 30)) for _ in range(3)])
    np.save(tmp_path / "stack.npy", stack)
    Image.fromarray(stack[1]).save(tmp_path / "one.png")
    stats = normstat.compute(tmp_path, workers=1)
    fp = stats.fingerprints
    assert fp is not None and fp.phash is not None and len(fp.phash) == len(fp) == 4
    want = [perceptual(px, 255)[1] for px in stack]
    got = dict(zip(fp.paths, fp.phash.tolist(), strict=True))
    assert got["one.png"] == want[1]
    assert sorted(v for k, v in got.items() if k != "one.png") == sorted(want)


def test_near_copy_of_an_npy_stack_image_is_verified_from_the_stack(tmp_path: Path) -> None:
    train, test = tmp_path / "train", tmp_path / "test"
    train.mkdir()
    test.mkdir()
    rng = np.random.default_rng(15)
    stack = np.stack([np.asarray(scene(rng, 60, 40)) for _ in range(4)])
    np.save(train / "stack.npy", stack)
    Image.fromarray(stack[2]).resize((30, 20), Image.Resampling.LANCZOS).save(test / "small.png")
    scene(rng, 60, 40).save(test / "other.png")
    normstat.compute(train, workers=1).save(str(tmp_path / "stats.json"))
    report = normstat.check(test, tmp_path / "stats.json", workers=1)
    assert report.warnings == []
    assert [(Path(x.test).name, x.train, x.kind) for x in report.leaked] == [
        ("small.png", str(train / "stack.npy[2]"), "near")
    ]
