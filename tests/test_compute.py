"""compute against exact references: Python integers and Fractions over the generated pixels."""

from __future__ import annotations

import io
import json
import math
import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import png  # pypng
import pytest
from PIL import Image
from typer.testing import CliRunner

import normstat
from normstat.cli import app

PERCENTILES = (0.5, 1.0, 5.0, 50.0, 95.0, 99.0, 99.5)
ODD_IMAGES = Path(__file__).resolve().parents[1].parent / "shared/corpora/odd-images"


@pytest.fixture(autouse=True)
def _restore_pillow_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """compute() may change Pillow's global limit (see test_compute_leaves_pillow_limit_alone);
    keep that from leaking into the fixtures of later tests."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)


# ---------------------------------------------------------------- exact references


def _channel_ref(values: list[np.ndarray]) -> dict[str, object]:
    """Exact statistics of one channel, given each image's values of that channel."""
    per_image_std = []
    total = total_sq = count = 0
    for v in values:
        ints = [int(x) for x in v.ravel()]
        s, ss, n = sum(ints), sum(x * x for x in ints), len(ints)
        per_image_std.append(math.sqrt(Fraction(n * ss - s * s, n * n)))
        total, total_sq, count = total + s, total_sq + ss, count + n
    allv = np.sort(np.concatenate([v.ravel() for v in values]).astype(np.int64))
    ranks = {q: max(1, math.ceil(Fraction(str(q)) * count / 100)) for q in PERCENTILES}
    return {
        "count": count,
        "sum": total,
        "mean": Fraction(total, count),
        "var": Fraction(count * total_sq - total * total, count * count),
        "per_image_std_mean": math.fsum(per_image_std) / len(values),
        "min": int(allv[0]),
        "max": int(allv[-1]),
        "pct_exact": {q: int(allv[r - 1]) for q, r in ranks.items()},
        "pct_numpy": {q: int(np.percentile(allv, q, method="inverted_cdf")) for q in PERCENTILES},
    }


def _assert_matches_reference(data: dict, arrays: list[np.ndarray], scale: int) -> None:
    """Every number of the manifest against the exact reference of ``arrays`` (H×W×C)."""
    channels = arrays[0].shape[2]
    assert data["images"] == len(arrays)
    assert data["max_value"] == scale
    raw = data["raw"]
    for c in range(channels):
        ref = _channel_ref([a[..., c] for a in arrays])
        assert data["pixels"] == ref["count"]
        assert data["state"]["sum"][c] == ref["sum"]
        # the raw and the scaled mean are the correctly rounded rationals: exact equality
        assert raw["mean"][c] == float(ref["mean"])
        assert data["mean"][c] == float(ref["mean"] / scale)
        assert raw["var"][c] == pytest.approx(float(ref["var"]), rel=1e-12)
        assert raw["std"][c] == pytest.approx(math.sqrt(ref["var"]), rel=1e-12)
        assert data["std"][c] == pytest.approx(math.sqrt(ref["var"] / scale**2), rel=1e-12)
        assert raw["std_per_image_mean"][c] == pytest.approx(ref["per_image_std_mean"], rel=1e-12)
        assert data["std_per_image_mean"][c] == pytest.approx(
            ref["per_image_std_mean"] / scale, rel=1e-12
        )
        assert raw["min"][c] == ref["min"] and raw["max"][c] == ref["max"]
        assert data["min"][c] == pytest.approx(ref["min"] / scale, rel=1e-15)
        assert data["max"][c] == pytest.approx(ref["max"] / scale, rel=1e-15)
        for q in PERCENTILES:
            got = raw["percentiles"][f"{q:g}"][c]
            assert got == ref["pct_exact"][q], (c, q)
            assert got == ref["pct_numpy"][q], (c, q)


def _write_png16_rgb(path: Path, arr: np.ndarray) -> None:
    h, w, _ = arr.shape
    with open(path, "wb") as fh:
        png.Writer(w, h, greyscale=False, bitdepth=16).write(fh, arr.reshape(h, w * 3).tolist())


def _cli_compute(*args: str) -> dict:
    result = CliRunner().invoke(app, ["compute", *args, "--workers", "1"])
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    out = args[args.index("-o") + 1]
    with open(out, encoding="utf-8") as fh:
        return json.load(fh)


# ---------------------------------------------------------------- random datasets, exact oracle


@pytest.fixture(scope="module")
def rgb8_dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[np.ndarray]]:
    root = tmp_path_factory.mktemp("rgb8")
    (root / "nested" / "deeper").mkdir(parents=True)
    rng = np.random.default_rng(20240601)
    arrays = []
    for i in range(20):
        h, w = (int(x) for x in rng.integers(1, 41, size=2))
        lo = int(rng.integers(0, 200))
        hi = int(rng.integers(lo + 1, 256))
        arr = rng.integers(lo, hi + 1, size=(h, w, 3), dtype=np.uint8)
        arrays.append(arr)
        folder = root if i < 8 else root / "nested" if i < 15 else root / "nested" / "deeper"
        Image.fromarray(arr, "RGB").save(folder / f"img{i:02d}.png")
    return root, arrays


def test_exact_oracle_rgb8(rgb8_dataset: tuple[Path, list[np.ndarray]]) -> None:
    root, arrays = rgb8_dataset
    stats = normstat.compute(root, workers=1)
    assert stats.mode == "RGB" and stats.channels == ["R", "G", "B"]
    assert stats.skipped == []
    _assert_matches_reference(stats.data, arrays, 255)


@pytest.fixture(scope="module")
def gray16_dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[np.ndarray]]:
    root = tmp_path_factory.mktemp("gray16")
    rng = np.random.default_rng(7)
    arrays = []
    for i in range(10):
        h, w = (int(x) for x in rng.integers(2, 31, size=2))
        arr = rng.integers(0, 65536, size=(h, w), dtype=np.uint16)
        if i == 3:
            arr[0, 0], arr[-1, -1] = 0, 65535  # both ends of the range
        im = Image.fromarray(arr)
        assert im.mode == "I;16"
        im.save(root / f"g{i}.png")
        arrays.append(arr[..., None])
    return root, arrays


def test_exact_oracle_gray16(gray16_dataset: tuple[Path, list[np.ndarray]]) -> None:
    root, arrays = gray16_dataset
    stats = normstat.compute(root, workers=1)
    assert stats.mode == "I;16" and stats.channels == ["L"]
    assert stats.data["raw"]["min"] == [0] and stats.data["raw"]["max"] == [65535]
    _assert_matches_reference(stats.data, arrays, 65535)


# ---------------------------------------------------------------- closed forms, through the CLI


def test_closed_form_black_and_white(tmp_path: Path) -> None:
    src = tmp_path / "bw"
    src.mkdir()
    for i in range(6):
        value = 0 if i % 2 else 255
        Image.new("RGB", (13, 7), (value, value, value)).save(src / f"{i}.png")
    data = _cli_compute(str(src), "-o", str(tmp_path / "stats.json"))
    assert data["channels"] == ["R", "G", "B"]
    assert data["mean"] == [0.5, 0.5, 0.5]
    assert data["std"] == [0.5, 0.5, 0.5]
    assert data["std_per_image_mean"] == [0.0, 0.0, 0.0]
    assert data["min"] == [0.0] * 3 and data["max"] == [1.0] * 3
    assert data["images"] == 6 and data["pixels"] == 6 * 13 * 7


def test_closed_form_permutations(tmp_path: Path) -> None:
    """R and B hold a permutation of 0..255 per image, G is constant 100."""
    src = tmp_path / "perm"
    src.mkdir()
    rng = np.random.default_rng(3)
    k = 5
    for i in range(k):
        arr = np.empty((16, 16, 3), dtype=np.uint8)
        arr[..., 0] = rng.permutation(256).astype(np.uint8).reshape(16, 16)
        arr[..., 1] = 100
        arr[..., 2] = rng.permutation(256).astype(np.uint8).reshape(16, 16)
        Image.fromarray(arr, "RGB").save(src / f"p{i}.png")
    data = _cli_compute(str(src), "-o", str(tmp_path / "stats.json"))
    perm_mean = float(Fraction(255, 2) / 255)  # 127.5 / 255
    perm_std = math.sqrt(float(Fraction(256**2 - 1, 12) / 255**2))
    assert data["mean"][0] == perm_mean and data["mean"][2] == perm_mean
    assert data["mean"][1] == float(Fraction(100, 255))
    assert data["std"][0] == pytest.approx(perm_std, rel=1e-12)
    assert data["std"][2] == pytest.approx(perm_std, rel=1e-12)
    assert data["std"][1] == 0.0
    # every image is a full permutation, so its own std is the pooled one
    assert data["std_per_image_mean"][0] == pytest.approx(perm_std, rel=1e-12)
    assert data["raw"]["var"][0] == pytest.approx((256**2 - 1) / 12, rel=1e-12)
    assert data["raw"]["percentiles"]["50"][0] == 127  # rank ceil(N/2) of 0..255 repeated k times
    assert data["pixels"] == 256 * k


# ---------------------------------------------------------------- determinism over --workers


@pytest.fixture(scope="module")
def mixed_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mixed")
    rng = np.random.default_rng(11)
    for i in range(36):
        folder = root / f"part{i % 3}" / ("sub" if i % 2 else "")
        folder.mkdir(parents=True, exist_ok=True)
        h, w = (int(x) for x in rng.integers(4, 24, size=2))
        kind = i % 4
        if kind == 0:
            im = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")
        elif kind == 1:
            im = Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8), "L")
        elif kind == 2:
            im = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")
            im = im.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
        else:
            im = Image.fromarray(rng.integers(0, 256, (h, w, 4), dtype=np.uint8), "RGBA")
        im.save(folder / f"im{i:02d}.png")
    (root / "part1" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    return root


def test_workers_give_bit_identical_outputs(mixed_dataset: Path, tmp_path: Path) -> None:
    manifests, sidecars = [], []
    for workers in (1, 2, 3):
        out = tmp_path / f"w{workers}"
        out.mkdir()
        args = ["compute", str(mixed_dataset), "-o", str(out / "stats.json")]
        result = CliRunner().invoke(app, [*args, "--workers", str(workers)])
        assert result.exit_code == 0, (result.stderr, result.exception)
        data = json.loads((out / "stats.json").read_text(encoding="utf-8"))
        assert data.pop("created")
        manifests.append(data)
        sidecar = json.loads((out / "stats.json").read_text())["sidecar"]["path"]
        sidecars.append((out / sidecar).read_bytes())
    first = manifests[0]
    assert first["images"] == 36
    assert first["modes"] == {"L": 9, "P": 9, "RGB": 9, "RGBA": 9}
    assert [s["path"] for s in first["skipped"]] == [str(mixed_dataset / "part1" / "corrupt.png")]
    for other, side in zip(manifests[1:], sidecars[1:], strict=True):
        assert other == first  # floats compare bit for bit
        assert side == sidecars[0]
        assert other["sidecar"] == first["sidecar"]


# ---------------------------------------------------------------- mode policy


def _luma(rgb: np.ndarray) -> np.ndarray:
    """Pillow's RGB → L conversion, done by Pillow itself (not by normstat)."""
    return np.asarray(Image.fromarray(rgb, "RGB").convert("L"))


@pytest.fixture(scope="module")
def l_majority(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list, list]:
    root = tmp_path_factory.mktemp("lmajority")
    rng = np.random.default_rng(5)
    grays = [rng.integers(0, 256, (9, 10), dtype=np.uint8) for _ in range(3)]
    colours = [rng.integers(0, 256, (8, 6, 3), dtype=np.uint8) for _ in range(2)]
    for i, g in enumerate(grays):
        Image.fromarray(g, "L").save(root / f"gray{i}.png")
    for i, c in enumerate(colours):
        Image.fromarray(c, "RGB").save(root / f"colour{i}.png")
    return root, grays, colours


def test_majority_mode_is_chosen(l_majority: tuple[Path, list, list]) -> None:
    root, grays, colours = l_majority
    stats = normstat.compute(root, workers=1)
    assert stats.mode == "L" and stats.channels == ["L"]
    assert stats.data["modes"] == {"L": 3, "RGB": 2}
    assert stats.data["converted"] == {"RGB": 2}
    arrays = [g[..., None] for g in grays] + [_luma(c)[..., None] for c in colours]
    _assert_matches_reference(stats.data, arrays, 255)


def test_mode_option_overrides_majority(
    l_majority: tuple[Path, list, list], tmp_path: Path
) -> None:
    root, grays, colours = l_majority
    data = _cli_compute(str(root), "-o", str(tmp_path / "s.json"), "--mode", "RGB")
    assert data["mode"] == "RGB" and data["channels"] == ["R", "G", "B"]
    assert data["modes"] == {"L": 3, "RGB": 2}
    assert data["converted"] == {"L": 3}
    arrays = [np.repeat(g[..., None], 3, axis=2) for g in grays] + colours
    _assert_matches_reference(data, arrays, 255)


@pytest.fixture(scope="module")
def rgba_majority(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list, list]:
    root = tmp_path_factory.mktemp("rgba")
    rng = np.random.default_rng(9)
    rgbas = [rng.integers(0, 256, (7, 5, 4), dtype=np.uint8) for _ in range(3)]
    rgbs = [rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)]
    for i, a in enumerate(rgbas):
        Image.fromarray(a, "RGBA").save(root / f"a{i}.png")
    Image.fromarray(rgbs[0], "RGB").save(root / "rgb.png")
    return root, rgbas, rgbs


def test_alpha_dropped_by_default(rgba_majority: tuple[Path, list, list], tmp_path: Path) -> None:
    root, rgbas, rgbs = rgba_majority
    data = _cli_compute(str(root), "-o", str(tmp_path / "s.json"))
    assert data["mode"] == "RGB" and data["channels"] == ["R", "G", "B"]
    assert data["modes"] == {"RGB": 1, "RGBA": 3}
    _assert_matches_reference(data, [a[..., :3] for a in rgbas] + rgbs, 255)


def test_alpha_keep(rgba_majority: tuple[Path, list, list], tmp_path: Path) -> None:
    root, rgbas, rgbs = rgba_majority
    data = _cli_compute(str(root), "-o", str(tmp_path / "s.json"), "--alpha", "keep")
    assert data["mode"] == "RGBA" and data["channels"] == ["R", "G", "B", "A"]
    assert data["converted"] == {"RGB": 1}
    opaque = np.concatenate([rgbs[0], np.full((6, 6, 1), 255, np.uint8)], axis=2)
    _assert_matches_reference(data, [*rgbas, opaque], 255)


# ---------------------------------------------------------------- skipped files


@pytest.fixture(scope="module")
def dirty_dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[np.ndarray]]:
    root = tmp_path_factory.mktemp("dirty")
    rng = np.random.default_rng(13)
    good = [rng.integers(0, 256, (10, 12, 3), dtype=np.uint8) for _ in range(3)]
    for i, arr in enumerate(good):
        Image.fromarray(arr, "RGB").save(root / f"good{i}.png")
    buf = io.BytesIO()  # under the lowered pixel limit, so truncation is the only defect
    noise = rng.integers(0, 256, (30, 30, 3), dtype=np.uint8)
    Image.fromarray(noise, "RGB").save(buf, "JPEG", quality=95)
    jpeg = buf.getvalue()
    (root / "truncated.jpg").write_bytes(jpeg[: len(jpeg) * 2 // 3])
    (root / "empty.png").write_bytes(b"")
    (root / "text.png").write_text("this is not a picture\n", encoding="utf-8")
    Image.fromarray(rng.integers(0, 256, (100, 100, 3), dtype=np.uint8), "RGB").save(
        root / "huge.png"
    )
    (root / "labels.csv").write_text("file,label\ngood0.png,cat\n", encoding="utf-8")
    (root / "notes.txt").write_text("no images here\n", encoding="utf-8")
    return root, good


def test_skipped_files_listed_with_reasons(
    dirty_dataset: tuple[Path, list[np.ndarray]], tmp_path: Path
) -> None:
    root, good = dirty_dataset
    out = tmp_path / "s.json"
    result = CliRunner().invoke(
        app, ["compute", str(root), "-o", str(out), "-w", "1", "--max-pixels", "1000"]
    )
    assert result.exit_code == 0, (result.stderr, result.exception)
    data = json.loads(out.read_text(encoding="utf-8"))
    reasons = {Path(s["path"]).name: s["reason"] for s in data["skipped"]}
    assert set(reasons) == {"truncated.jpg", "empty.png", "text.png", "huge.png"}
    assert all(r.strip() for r in reasons.values())
    assert "truncated" in reasons["truncated.jpg"]
    assert "not an image" in reasons["text.png"]
    assert "decompression bomb" in reasons["huge.png"]
    assert [s["path"] for s in data["skipped"]] == sorted(s["path"] for s in data["skipped"])
    assert "labels.csv" not in out.read_text(encoding="utf-8")
    assert "notes.txt" not in result.stderr
    for name in reasons:
        assert name in result.stderr  # warned about on stderr too
    _assert_matches_reference(data, good, 255)


def test_bomb_reason_names_the_configured_limit(
    dirty_dataset: tuple[Path, list[np.ndarray]],
) -> None:
    """The user asked for 1000 pixels; the reason must not claim another limit (Pillow's 2×)."""
    root, _ = dirty_dataset
    stats = normstat.compute(root, workers=1, max_pixels=1000)
    reason = next(s["reason"] for s in stats.skipped if s["path"].endswith("huge.png"))
    assert "10000" in reason
    assert "2000" not in reason and "1000 pixels" in reason


def test_compute_leaves_pillow_limit_alone(
    dirty_dataset: tuple[Path, list[np.ndarray]],
) -> None:
    """A library call must not change Pillow's process-wide MAX_IMAGE_PIXELS."""
    root, _ = dirty_dataset
    before = Image.MAX_IMAGE_PIXELS
    normstat.compute(root, workers=1, max_pixels=1000)
    assert before == Image.MAX_IMAGE_PIXELS


# ---------------------------------------------------------------- 16-bit colour PNG


def test_png16_colour_is_exact(tmp_path: Path) -> None:
    src = tmp_path / "c16"
    src.mkdir()
    rng = np.random.default_rng(17)
    arrays = []
    for i in range(3):
        arr = rng.integers(0, 65536, (5 + i, 7, 3), dtype=np.uint16)
        arr[0, 0] = (1, 255, 65534)  # low bytes that a high-byte read would lose
        _write_png16_rgb(src / f"c{i}.png", arr)
        arrays.append(arr)
    truncated = Fraction(
        sum(int(x) >> 8 for a in arrays for x in a[..., 0].ravel()) * 257,
        sum(a[..., 0].size for a in arrays),
    )
    data = _cli_compute(str(src), "-o", str(tmp_path / "s.json"), "--mode", "RGB;16")
    assert data["mode"] == "RGB;16" and data["channels"] == ["R", "G", "B"]
    _assert_matches_reference(data, arrays, 65535)
    assert data["raw"]["mean"][0] != float(truncated)
    # the majority rule picks the same exact mode without being told
    auto = normstat.compute(src, workers=1)
    assert auto.mode == "RGB;16"
    assert auto.data["raw"]["mean"] == data["raw"]["mean"]


# ---------------------------------------------------------------- the odd-images corpus


@pytest.mark.skipif(not ODD_IMAGES.is_dir(), reason="shared/corpora/odd-images is not present")
def test_odd_images_corpus() -> None:
    extensions = {e.lower() for e in Image.registered_extensions()}
    image_files = [
        p for p in ODD_IMAGES.iterdir() if p.is_file() and p.suffix.lower() in extensions
    ]
    stats = normstat.compute(ODD_IMAGES, workers=1)
    assert stats.images > 0
    assert stats.images + len(stats.skipped) == len(image_files)
    for s in stats.skipped:
        assert isinstance(s["reason"], str) and s["reason"].strip(), s
        assert os.path.dirname(s["path"]) == str(ODD_IMAGES)
    assert sum(stats.data["modes"].values()) == stats.images
    assert all(math.isfinite(v) for v in stats.mean + stats.std)


# ---------------------------------------------------------------- float (mode F) images


def test_float_images_exact_and_identical_for_any_workers(tmp_path: Path) -> None:
    """32-bit float TIFFs far from zero with a tiny spread (offset 1000, std 0.01 in float32):
    the shifted Chan merge matches the exact Fraction reference to 1e-12, and every number is
    bit-identical for 1, 2 and 3 workers (the merge runs in file order)."""
    rng = np.random.default_rng(11)
    arrays = []
    for i in range(12):
        shape = (int(rng.integers(5, 40)), int(rng.integers(5, 40)))
        arr = (1000 + rng.normal(0, 0.01, shape) + 0.001 * i).astype(np.float32)
        Image.fromarray(arr).save(tmp_path / f"f{i:02d}.tif")
        arrays.append(arr)
    values = [Fraction(float(x)) for a in arrays for x in a.ravel()]
    n = len(values)
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / n
    naive = float(np.mean(np.concatenate([a.ravel() for a in arrays]) ** 2)) - float(mean) ** 2
    assert abs(Fraction(naive) - var) > var / 100  # float32 E[x²]−E[x]², the tutorial way, fails

    manifests = []
    for workers in (1, 2, 3):
        stats = normstat.compute(tmp_path, workers=workers)
        data = dict(stats.data)
        data.pop("created")
        manifests.append(json.dumps(data, sort_keys=True))
    assert manifests[0] == manifests[1] == manifests[2]
    d = stats.data
    assert d["mode"] == "F" and d["channels"] == ["L"] and d["images"] == 12 and d["pixels"] == n
    assert abs(Fraction(d["raw"]["mean"][0]) - mean) <= abs(mean) * Fraction(1e-12)
    assert abs(Fraction(d["raw"]["var"][0]) - var) <= var * Fraction(1e-12)
    assert d["mean"] == d["raw"]["mean"] and d["std"] == d["raw"]["std"]  # float scale is 1
    assert d["raw"]["min"][0] == float(min(values)) and d["raw"]["max"][0] == float(max(values))
    assert "percentiles" not in d["raw"]


def test_wrong_mode_guess_costs_a_second_pass_not_a_wrong_result(
    l_majority: tuple[Path, list, list], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The header sample sees only colour0.png (RGB); the dataset's majority is L."""
    from normstat.verbs.compute import run as api

    root, grays, colours = l_majority
    passes: list[str] = []
    real = api._reduce_pass

    def counting(ex, source, files, target, *args):
        passes.append(target.name)
        return real(ex, source, files, target, *args)

    monkeypatch.setattr(api, "_GUESS_SAMPLE", 1)
    monkeypatch.setattr(api, "_reduce_pass", counting)
    stats = normstat.compute(root, workers=1)
    assert passes == ["RGB", "L"]
    assert stats.mode == "L" and stats.data["modes"] == {"L": 3, "RGB": 2}
    arrays = [g[..., None] for g in grays] + [_luma(c)[..., None] for c in colours]
    _assert_matches_reference(stats.data, arrays, 255)


def test_jpeg_dataset_matches_pillow_decoded_reference(tmp_path: Path) -> None:
    """Fast-path JPEGs (every subsampling, progressive, gray, EXIF-rotated) and Pillow-path ones
    (CMYK) together give the statistics of Pillow's own decoding, exactly."""
    from PIL import ImageOps

    rng = np.random.default_rng(77)
    variants = [
        ({"subsampling": 2}, "RGB"),
        ({"subsampling": 1}, "RGB"),
        ({"subsampling": 0, "quality": 95}, "RGB"),
        ({"progressive": True}, "RGB"),
        ({"quality": 80}, "L"),
        ({}, "CMYK"),
    ]
    arrays = []
    for i, (kwargs, mode) in enumerate(variants * 2):
        h, w = (int(x) for x in rng.integers(1, 60, size=2))
        im = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB").convert(mode)
        if i == 7:
            exif = Image.Exif()
            exif[0x0112] = 6
            kwargs = {**kwargs, "exif": exif.tobytes()}
        im.save(tmp_path / f"{i:02d}.jpg", "JPEG", **kwargs)
        with Image.open(tmp_path / f"{i:02d}.jpg") as back:
            arrays.append(np.asarray(ImageOps.exif_transpose(back).convert("RGB")))
    for workers in (1, 2):
        stats = normstat.compute(tmp_path, workers=workers)
        assert stats.mode == "RGB" and stats.images == len(arrays)
        _assert_matches_reference(stats.data, arrays, 255)


@pytest.mark.parametrize("mode", ["RGB", "L", "RGB;16", "F"])
def test_chunk_hashing_equals_one_image_at_a_time(
    mixed_dataset: Path, tmp_path: Path, mode: str
) -> None:
    """reduce_chunk hashes a chunk's thumbnails in one stack; each record must equal what the
    one-image path gives, or fingerprints would depend on how files were chunked (--workers)."""
    from helpers import decode, reduce_chunk, reduce_image

    from normstat.modes import MODES

    paths = sorted(str(p) for p in mixed_dataset.rglob("*.png") if p.name != "corrupt.png")
    if mode == "F":  # float pixels in single-image files (PFM: TIFFs are the stack route's)
        rng = np.random.default_rng(2)
        for i in range(5):
            arr = (rng.random((9 + i, 7)) * 1e3).astype(np.float32)
            pfm = b"Pf\n7 %d\n-1.0\n" % (9 + i) + arr[::-1].astype("<f4").tobytes()
            (tmp_path / f"f{i}.pfm").write_bytes(pfm)
        paths = sorted(str(p) for p in tmp_path.glob("f*.pfm"))
    chunk = reduce_chunk((paths, mode, None, False))
    singles = [reduce_image(decode(p, MODES[mode], None), mode)[0] for p in paths]
    assert chunk.outcomes == singles
    assert len({r.phash for r in singles}) == len(singles)  # distinct images, distinct hashes
