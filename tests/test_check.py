"""``normstat check``: test images whose decoded pixels equal a train image's, whatever the file
format or name; the report (API, CLI exit codes, JSON); root-overlap warnings; sidecar integrity."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import describe, invoke
from PIL import Image, ImageOps

import normstat

REPORT_LEAK_KEYS = {"test", "train", "kind", "score"}


def rand_rgb(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def same(a: str | Path, b: str | Path) -> bool:
    return os.path.samefile(a, b)


@pytest.fixture(scope="module")
def train(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """8 RGB PNGs and one grayscale PNG (the manifest is RGB), and their manifest."""
    base = tmp_path_factory.mktemp("check_train")
    src = base / "train"
    (src / "sub").mkdir(parents=True)
    rng = np.random.default_rng(31)
    arrays: dict[str, np.ndarray] = {}
    for i in range(8):
        rel = f"sub/t{i}.png" if i % 2 else f"t{i}.png"
        arr = rand_rgb(rng, 12 + i, 17)
        Image.fromarray(arr).save(src / rel)
        arrays[rel] = arr
    gray = rng.integers(0, 256, size=(14, 11), dtype=np.uint8)
    Image.fromarray(gray).save(src / "gray.png")
    assert Image.open(src / "gray.png").mode == "L"
    stats = base / "stats" / "stats.json"
    stats.parent.mkdir()
    normstat.compute(src, workers=1).save(str(stats))
    assert json.loads(stats.read_text())["mode"] == "RGB"
    return SimpleNamespace(base=base, src=src, arrays=arrays, gray=gray, stats=stats, rng=rng)


def fresh_images(folder: Path, n: int, seed: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        p = folder / f"fresh{i}.png"
        Image.fromarray(rand_rgb(rng, 12 + i, 17)).save(p)  # same sizes as train, other pixels
        paths.append(p)
    return paths


# --------------------------------------------------------------------------------------------
# exact leaks


@pytest.mark.parametrize("fmt", ["bmp", "tiff", "png"])
def test_exact_leak_through_other_format_and_name(
    train: SimpleNamespace, tmp_path: Path, fmt: str
) -> None:
    test = tmp_path / "test"
    fresh_images(test, 2, seed=1)
    original = train.src / "sub" / "t3.png"
    copy = test / "deeper" / f"renamed_copy.{fmt}"
    copy.parent.mkdir()
    Image.open(original).save(copy)
    np.testing.assert_array_equal(np.asarray(Image.open(copy)), train.arrays["sub/t3.png"])

    report = normstat.check(test, train.stats, workers=1)
    assert report.checked == 3
    assert not report.clean
    assert len(report.leaked) == 1
    leak = report.leaked[0]
    assert same(leak.test, copy)
    assert same(leak.train, original)
    assert (leak.kind, leak.score) == ("exact", 1.0)


@pytest.fixture(scope="module")
def leaky_test(train: SimpleNamespace) -> SimpleNamespace:
    """A test folder: two fresh images and three renamed copies of train images."""
    test = train.base / "leaky_test"
    fresh_images(test, 2, seed=2)
    pairs = {
        test / "x_copy.bmp": train.src / "t0.png",
        test / "y_copy.tif": train.src / "sub" / "t1.png",
        test / "z_copy.png": train.src / "t6.png",
    }
    for copy, original in pairs.items():
        Image.open(original).save(copy)
    return SimpleNamespace(folder=test, pairs=pairs)


def _assert_report(report: dict, leaky_test: SimpleNamespace) -> None:
    assert report["checked"] == 5
    assert report["clean"] is False
    assert len(report["leaked"]) == 3
    for item in report["leaked"]:
        assert set(item) >= REPORT_LEAK_KEYS
        assert (item["kind"], item["score"]) == ("exact", 1.0)
        matches = [c for c in leaky_test.pairs if same(item["test"], c)]
        assert len(matches) == 1, item
        assert same(item["train"], leaky_test.pairs[matches[0]]), item


def test_cli_leak_exit_1_and_json_file(
    train: SimpleNamespace, leaky_test: SimpleNamespace, tmp_path: Path
) -> None:
    report_path = tmp_path / "report.json"
    result = invoke(
        "check", leaky_test.folder, "--stats", train.stats, "-w", "1", "--json", report_path
    )
    assert result.exit_code == 1, describe(result)
    _assert_report(json.loads(report_path.read_text()), leaky_test)
    assert "LEAKED: 3" in result.stdout


def test_cli_leak_json_to_stdout(train: SimpleNamespace, leaky_test: SimpleNamespace) -> None:
    result = invoke("check", leaky_test.folder, "--stats", train.stats, "-w", "1", "--json", "-")
    assert result.exit_code == 1, describe(result)
    _assert_report(json.loads(result.stdout), leaky_test)  # stdout holds nothing but the JSON


def test_clean_test_set_exit_0(train: SimpleNamespace, tmp_path: Path) -> None:
    test = tmp_path / "test"
    fresh_images(test, 4, seed=3)
    report_path = tmp_path / "report.json"
    result = invoke("check", test, "--stats", train.stats, "-w", "1", "--json", report_path)
    assert result.exit_code == 0, describe(result)
    report = json.loads(report_path.read_text())
    assert report["clean"] is True
    assert report["leaked"] == []
    assert report["checked"] == 4
    result = invoke("check", test, "--stats", train.stats, "-w", "1", "--json", "-")
    assert result.exit_code == 0, describe(result)
    assert json.loads(result.stdout)["clean"] is True
    api = normstat.check(test, train.stats, workers=1)
    assert api.clean and api.checked == 4 and api.leaked == []


def test_jpeg_reencode_is_a_near_not_an_exact_leak(train: SimpleNamespace, tmp_path: Path) -> None:
    """A JPEG copy has other pixels: not exact, but found as a verified near-duplicate."""
    test = tmp_path / "test"
    test.mkdir()
    jpeg = test / "t2_copy.jpg"
    Image.open(train.src / "t2.png").save(jpeg, quality=95)
    decoded = np.asarray(Image.open(jpeg).convert("RGB"))
    assert decoded.shape == train.arrays["t2.png"].shape
    assert np.any(decoded != train.arrays["t2.png"])  # guard: the pixels really differ
    report = normstat.check(test, train.stats, workers=1)
    assert report.checked == 1
    assert [(x.kind, Path(x.train).name) for x in report.leaked] == [("near", "t2.png")]
    assert 0.95 <= report.leaked[0].score < 1


def test_png_copy_of_decoded_jpeg_train_image_is_exact(tmp_path: Path) -> None:
    """Pixels are compared after decoding: a lossless copy of a JPEG's pixels is a leak."""
    src = tmp_path / "train"
    src.mkdir()
    rng = np.random.default_rng(8)
    for i in range(3):
        Image.fromarray(rand_rgb(rng, 16, 16)).save(src / f"j{i}.jpg", quality=80)
    stats = tmp_path / "stats.json"
    normstat.compute(src, workers=1).save(str(stats))
    test = tmp_path / "test"
    test.mkdir()
    Image.fromarray(np.asarray(Image.open(src / "j1.jpg").convert("RGB"))).save(test / "c.png")
    report = normstat.check(test, stats, workers=1)
    assert [(Path(x.test).name, Path(x.train).name) for x in report.leaked] == [("c.png", "j1.jpg")]


# --------------------------------------------------------------------------------------------
# grayscale in an RGB manifest


@pytest.mark.parametrize("fmt", ["bmp", "tiff"])
def test_grayscale_copy_of_grayscale_train_image_leaks(
    train: SimpleNamespace, tmp_path: Path, fmt: str
) -> None:
    test = tmp_path / "test"
    fresh_images(test, 1, seed=4)
    copy = test / f"gray_again.{fmt}"
    Image.fromarray(train.gray).save(copy)
    assert Image.open(copy).mode == "L"
    report = normstat.check(test, train.stats, workers=1)
    assert report.checked == 2
    assert len(report.leaked) == 1
    assert same(report.leaked[0].test, copy)
    assert same(report.leaked[0].train, train.src / "gray.png")
    assert report.leaked[0].kind == "exact"


# --------------------------------------------------------------------------------------------
# EXIF orientation: the pixels compared are the upright ones


def test_exif_oriented_train_images_match_upright_copies(tmp_path: Path) -> None:
    src = tmp_path / "train"
    src.mkdir()
    test = tmp_path / "test"
    test.mkdir()
    rng = np.random.default_rng(13)
    raw_copies = tmp_path / "raw"
    raw_copies.mkdir()
    for orientation in range(1, 9):
        arr = rand_rgb(rng, 6, 9)  # not square: a wrong rotation changes the shape
        exif = Image.Exif()
        exif[0x0112] = orientation
        Image.fromarray(arr).save(src / f"o{orientation}.png", exif=exif.tobytes())
        upright = ImageOps.exif_transpose(Image.open(src / f"o{orientation}.png"))
        Image.fromarray(np.asarray(upright)).save(test / f"up{orientation}.bmp")
        Image.fromarray(arr).save(raw_copies / f"raw{orientation}.bmp")
    stats = tmp_path / "stats.json"
    normstat.compute(src, workers=1).save(str(stats))

    report = normstat.check(test, stats, workers=1)
    pairs = sorted((Path(x.test).name, Path(x.train).name) for x in report.leaked)
    assert pairs == [(f"up{k}.bmp", f"o{k}.png") for k in range(1, 9)]

    # The pixels as stored (ignoring the tag) equal the upright ones only without rotation; with
    # orientation 2 (a mirror) they are the upright image's mirror image: a near leak.
    report = normstat.check(raw_copies, stats, workers=1)
    found = [(Path(x.test).name, x.kind, x.mirrored) for x in report.leaked]
    assert found == [("raw1.bmp", "exact", False), ("raw2.bmp", "near", True)]


# --------------------------------------------------------------------------------------------
# test folder inside the statistics' source


@pytest.fixture(scope="module")
def overlapping(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("overlap") / "root"
    rng = np.random.default_rng(21)
    (root / "train").mkdir(parents=True)
    for i in range(3):
        Image.fromarray(rand_rgb(rng, 10, 10 + i)).save(root / "train" / f"r{i}.png")
    stats = root.parent / "stats.json"
    normstat.compute(root, workers=1).save(str(stats))
    # Made after compute: inside the root, but not among the contributors.
    fresh_images(root / "sub_clean", 2, seed=22)
    (root / "sub_leak").mkdir()
    Image.open(root / "train" / "r1.png").save(root / "sub_leak" / "again.bmp")
    outside = root.parent / "outside"
    fresh_images(outside, 2, seed=23)
    return SimpleNamespace(root=root, stats=stats, outside=outside)


@pytest.mark.parametrize(("sub", "code"), [("sub_clean", 0), ("sub_leak", 1)])
def test_warns_when_test_folder_inside_source(
    overlapping: SimpleNamespace, sub: str, code: int
) -> None:
    folder = overlapping.root / sub
    result = invoke("check", folder, "--stats", overlapping.stats, "-w", "1")
    assert result.exit_code == code, describe(result)
    assert "Warning" in result.stderr
    assert "inside" in result.stderr
    assert str(overlapping.root) in result.stderr
    assert "Warning" not in result.stdout
    report = normstat.check(folder, overlapping.stats, workers=1)
    assert report.warnings and str(overlapping.root) in report.warnings[0]
    assert report.clean is (code == 0)


def test_no_warning_for_separate_test_folder(overlapping: SimpleNamespace) -> None:
    result = invoke("check", overlapping.outside, "--stats", overlapping.stats, "-w", "1")
    assert result.exit_code == 0, describe(result)
    assert "Warning" not in result.stderr
    assert normstat.check(overlapping.outside, overlapping.stats, workers=1).warnings == []


# --------------------------------------------------------------------------------------------
# sidecar integrity


def test_tampered_sidecar_is_refused(train: SimpleNamespace, tmp_path: Path) -> None:
    copy = tmp_path / "stats"
    shutil.copytree(train.stats.parent, copy)
    sidecar = copy / json.loads((copy / "stats.json").read_text())["sidecar"]["path"]
    assert sidecar.name.endswith(".fingerprints.npz")
    data = bytearray(sidecar.read_bytes())
    data[len(data) // 2] ^= 0x01
    sidecar.write_bytes(bytes(data))

    test = tmp_path / "test"
    fresh_images(test, 1, seed=5)
    result = invoke("check", test, "--stats", copy / "stats.json", "-w", "1")
    assert result.exit_code == 2, describe(result)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error:")
    assert "sha256" in lines[0]
    assert "Traceback" not in result.stdout + result.stderr
    with pytest.raises(normstat.ManifestError, match="sha256"):
        normstat.check(test, copy / "stats.json", workers=1)
    # The untouched manifest still works.
    assert normstat.check(test, train.stats, workers=1).clean


def test_non_utf8_file_names_round_trip(tmp_path: Path) -> None:
    """POSIX names need not be UTF-8: such a file contributes, its name survives the sidecar,
    and check still names it."""
    train, test = tmp_path / "train", tmp_path / "test"
    train.mkdir()
    test.mkdir()
    odd = os.fsdecode(b"caf\xe9.png")  # Latin-1 byte: a lone surrogate in Python
    pixels = np.random.default_rng(3).integers(0, 256, (9, 11, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(train / odd)
    Image.fromarray(pixels).save(test / "copy.bmp")
    stats = normstat.compute(train, workers=1)
    stats.save(str(tmp_path / "stats.json"))
    loaded = normstat.Stats.load(str(tmp_path / "stats.json"))
    assert loaded.fingerprints is not None and loaded.fingerprints.paths == [odd]
    report = normstat.check(test, str(tmp_path / "stats.json"), workers=1)
    assert [leak.train for leak in report.leaked] == [str(train / odd)]


def test_manifest_with_an_unknown_mode_is_a_one_line_error(
    train: SimpleNamespace, tmp_path: Path
) -> None:
    """0.2.0 ended in "unexpected ValueError" here; the mode is read through the manifest."""
    copy = tmp_path / "stats"
    shutil.copytree(train.stats.parent, copy)
    data = json.loads((copy / "stats.json").read_text())
    data["mode"] = "CMYK;32"
    (copy / "stats.json").write_text(json.dumps(data))
    test = tmp_path / "test"
    fresh_images(test, 1, seed=6)
    for verb in (["check", test], ["apply", test, "-o", tmp_path / "out"]):
        result = invoke(*verb, "--stats", copy / "stats.json", "-w", "1")
        assert result.exit_code == 2, describe(result)
        assert result.stderr == f"Error: {copy / 'stats.json'}: unknown mode 'CMYK;32'; " + (
            "choose from L, LA, RGB, RGBA, I;16, RGB;16, F, RGB;F, "
            "B<n>, B<n>;16, B<n>;F (n bands)\n"
        )


@pytest.mark.parametrize("ext", ["npy", "tif"])
def test_exact_copy_of_a_nan_holding_float_image_under_nan_nodata_leaks(
    tmp_path: Path, ext: str
) -> None:
    """With ``--nodata nan`` compute counts NaN pixels as nodata, so check must read them the same
    way: a copy of such an image is a leak, not a file skipped for non-finite values."""
    train, test = tmp_path / "train", tmp_path / "test"
    train.mkdir()
    test.mkdir()
    rng = np.random.default_rng(17)
    shape = (9, 11, 3) if ext == "npy" else (9, 11)  # RGB;F arrays, F TIFFs

    def save(path: Path, a: np.ndarray) -> None:
        np.save(path, a) if ext == "npy" else Image.fromarray(a, "F").save(path)

    arrays = [rng.standard_normal(shape).astype(np.float32) for _ in range(3)]
    arrays[1][:3, :, ...] = np.nan
    arrays[1][4, 5, ...] = np.nan
    for i, a in enumerate(arrays):
        save(train / f"f{i}.{ext}", a)
    stats = tmp_path / "stats.json"
    normstat.compute(train, nodata="nan", workers=1).save(str(stats))
    assert json.loads(stats.read_text())["images"] == 3
    save(test / f"copy.{ext}", arrays[1])
    save(test / f"fresh.{ext}", rng.standard_normal(shape).astype(np.float32))
    report = normstat.check(test, stats, workers=1)
    assert report.skipped == []
    assert report.checked == 2
    assert [(Path(x.test).name, Path(x.train).name, x.kind) for x in report.leaked] == [
        (f"copy.{ext}", f"f1.{ext}", "exact")
    ]
