"""compute/apply --color lab: the CIELAB conversion against scikit-image's rgb2lab (1e-3, on
random and on the values that matter), and the statistics against numpy/fsum references of the
conversion applied to the true pixels (1e-12), separately; routes (PNG files, 8- and 16-bit,
.npy stacks), --workers, partials, merge, check, apply (per-file and --stack), refusals."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
from helpers import invoke
from PIL import Image

import normstat
from normstat.api import Partials
from normstat.cli.snippets import snippet
from normstat.errors import DeviceError, InputError, ManifestError
from normstat.manifest.validate import validate
from normstat.reduce.color import rgb_to_lab

skcolor = pytest.importorskip("skimage.color", reason="pip install scikit-image")


def _skimage(px: np.ndarray) -> np.ndarray:
    return skcolor.rgb2lab(px.astype(np.float64) / (255.0 if px.dtype == np.uint8 else 65535.0))


def _special(top: int) -> np.ndarray:
    """Black, white, primaries, secondaries, greys, values around the sRGB linear threshold
    0.04045 and greys whose luminance brackets the Lab threshold (6/29)^3."""
    values = [0, 1, 2, top // 2, top - 1, top]
    around = int(0.04045 * top)
    values += list(range(around - 3, around + 4))
    lin = np.arange(top + 1) / top
    lin = np.where(lin > 0.04045, ((lin + 0.055) / 1.055) ** 2.4, lin / 12.92)
    k = int(np.searchsorted(lin, (6 / 29) ** 3))
    values += list(range(max(0, k - 3), min(top, k + 3) + 1))
    rows = [(v, v, v) for v in values]
    for r in (0, top):
        for g in (0, top):
            for b in (0, top):
                rows.append((r, g, b))
    rows += [(v, 0, 0) for v in values] + [(0, v, 0) for v in values] + [(0, 0, v) for v in values]
    return np.array(rows, dtype=np.uint8 if top == 255 else np.uint16)[None]


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_conversion_matches_skimage(dtype: type) -> None:
    top = int(np.iinfo(dtype).max)
    rng = np.random.default_rng(3)
    for px in (rng.integers(0, top + 1, (37, 53, 3)).astype(dtype), _special(top)):
        got = rgb_to_lab(px)
        assert got.shape == px.shape and got.dtype == np.float64
        assert np.abs(got - _skimage(px)).max() < 1e-3
    white = rgb_to_lab(np.full((1, 1, 3), top, dtype))[0, 0]
    assert white[0] == pytest.approx(100.0, abs=1e-3) and np.abs(white[1:]).max() < 1e-2
    assert np.array_equal(rgb_to_lab(np.zeros((1, 1, 3), dtype)), np.zeros((1, 1, 3)))


def test_conversion_batch_is_per_image() -> None:
    x = np.random.default_rng(4).integers(0, 256, (5, 6, 7, 3), dtype=np.uint8)
    batch = rgb_to_lab(x)
    for i in range(len(x)):
        assert np.array_equal(batch[i], rgb_to_lab(x[i]))
    with pytest.raises(ValueError, match="8- or 16-bit RGB"):
        rgb_to_lab(x.astype(np.float32))


def _photos(folder: Path, rng: np.random.Generator, dtype: type = np.uint8) -> list[np.ndarray]:
    """Adversarial little RGB images (flat, dark around the thresholds, saturated, noisy),
    and a grey one that compute replicates to RGB; returns the pixels as compute sees them."""
    folder.mkdir(parents=True, exist_ok=True)
    top = int(np.iinfo(dtype).max)
    out = []
    images = [
        np.full((5, 6, 3), top, dtype),
        rng.integers(0, max(2, top // 20), (7, 5, 3)).astype(dtype),
        np.broadcast_to(_special(top), (3, *_special(top).shape[1:])).astype(dtype),
        *[rng.integers(0, top + 1, (6 + i, 9, 3)).astype(dtype) for i in range(4)],
    ]
    for i, px in enumerate(images):
        mode = "RGB" if dtype == np.uint8 else None
        if mode:
            Image.fromarray(np.ascontiguousarray(px), mode).save(folder / f"img{i}.png")
        else:
            _png16(folder / f"img{i}.png", px)
        out.append(np.ascontiguousarray(px))
    if dtype == np.uint8:
        grey = rng.integers(0, 256, (4, 4), dtype=np.uint8)
        Image.fromarray(grey).save(folder / "zgrey.png")
        out.append(np.repeat(grey[..., None], 3, axis=2))
    return out


def _png16(path: Path, px: np.ndarray) -> None:
    import png  # pypng, the exact 16-bit reader's package

    h, w, _ = px.shape
    png.Writer(w, h, greyscale=False, bitdepth=16).write(
        path.open("wb"), px.reshape(h, w * 3).tolist()
    )


def _reference(pixels: list[np.ndarray]) -> dict[str, list[float]]:
    """Pooled statistics of our conversion of the true pixels, with fsum (no shared code)."""
    labs = [rgb_to_lab(p).reshape(-1, 3) for p in pixels]
    allv = np.concatenate(labs)
    n = len(allv)
    mean = [math.fsum(allv[:, c]) / n for c in range(3)]
    var = [math.fsum((allv[:, c] - mean[c]) ** 2) / n for c in range(3)]
    per_image = [math.fsum(float(lab[:, c].std()) for lab in labs) / len(labs) for c in range(3)]
    return {
        "mean": mean,
        "std": [math.sqrt(v) for v in var],
        "std_per_image_mean": per_image,
        "min": [float(allv[:, c].min()) for c in range(3)],
        "max": [float(allv[:, c].max()) for c in range(3)],
    }


def _assert_stats(data: dict, ref: dict[str, list[float]]) -> None:
    for key in ("mean", "std", "min", "max"):
        assert data[key] == pytest.approx(ref[key], rel=1e-12, abs=1e-10), key
        assert data["raw"][key] == data[key]  # max_value 1: raw units are the stable ones
    assert data["std_per_image_mean"] == pytest.approx(ref["std_per_image_mean"], rel=1e-9)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_compute_folder_against_reference(tmp_path: Path, dtype: type) -> None:
    pixels = _photos(tmp_path / "train", np.random.default_rng(5), dtype)
    stats = normstat.compute(tmp_path / "train", workers=1, color="lab")
    data = stats.data
    assert (data["mode"], data["channels"], data["dtype"]) == ("LAB;F", ["L", "a", "b"], "float32")
    assert data["max_value"] == 1.0 and data["options"]["color"] == "lab"
    assert data["color"]["from"] == ("RGB" if dtype == np.uint8 else "RGB;16")
    assert "percentiles" not in data["raw"]
    _assert_stats(data, _reference(pixels))
    # the same statistics as skimage's conversion, to its 1e-3
    sk = np.concatenate([_skimage(p).reshape(-1, 3) for p in pixels])
    assert np.abs(np.array(data["mean"]) - sk.mean(axis=0)).max() < 1e-3
    out = tmp_path / "s.json"
    stats.save(str(out))
    assert normstat.Stats.load(str(out)).read_mode().name == data["color"]["from"]


def _without_created(path: Path) -> dict:
    data = json.loads(path.read_text())
    data.pop("created")
    data["sidecar"].pop("path")  # named after the manifest; its sha256 stays compared
    return data


def test_workers_and_partials_byte_identical(tmp_path: Path) -> None:
    _photos(tmp_path / "train", np.random.default_rng(6))
    for i, extra in enumerate(([], ["--workers", "2"])):
        r = invoke("compute", tmp_path / "train", "-o", tmp_path / f"w{i}.json", "--color", "lab",
                   "--workers", "1", *extra, "--quiet")  # fmt: skip
        assert r.exit_code == 0, r.output
    assert _without_created(tmp_path / "w0.json") == _without_created(tmp_path / "w1.json")
    # RGB partials are never reused for a LAB run
    parts = Partials(str(tmp_path / "parts"))
    rgb = normstat.compute(tmp_path / "train", workers=1, partials_dir=parts)
    assert rgb.mode == "RGB" and parts.made > 0
    parts = Partials(str(tmp_path / "parts"))
    lab = normstat.compute(tmp_path / "train", workers=1, partials_dir=parts, color="lab")
    assert parts.kept == 0 and parts.made > 0
    parts = Partials(str(tmp_path / "parts"))
    again = normstat.compute(tmp_path / "train", workers=1, partials_dir=parts, color="lab")
    assert parts.kept > 0 and parts.made == 0
    assert again.data["state"] == lab.data["state"] and again.mean == lab.mean


def test_npy_stack_and_covariance(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    stack = rng.integers(0, 256, (9, 6, 5, 3), dtype=np.uint8)
    (tmp_path / "d").mkdir()
    np.save(tmp_path / "d" / "s.npy", stack)
    stats = normstat.compute(tmp_path / "d", workers=1, color="lab", covariance=True)
    assert stats.images == 9
    _assert_stats(stats.data, _reference(list(stack)))
    lab = rgb_to_lab(stack).reshape(-1, 3)
    cov = np.cov(lab, rowvar=False, bias=True)
    assert np.allclose(stats.data["raw"]["covariance"], cov, rtol=1e-9, atol=1e-9)
    # the same images as files give the same statistics
    (tmp_path / "f").mkdir()
    for i, px in enumerate(stack):
        Image.fromarray(px).save(tmp_path / "f" / f"{i}.png")
    files = normstat.compute(tmp_path / "f", workers=1, color="lab", covariance=True)
    assert files.mean == pytest.approx(stats.mean, rel=1e-12, abs=1e-12)
    assert np.allclose(files.data["raw"]["covariance"], cov, rtol=1e-9, atol=1e-9)


def test_apply_per_file_and_stack(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    (tmp_path / "train").mkdir()
    (tmp_path / "val").mkdir()
    val = []
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)).save(
            tmp_path / "train" / f"{i}.png"
        )
        px = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
        Image.fromarray(px).save(tmp_path / "val" / f"{i}.png")
        val.append(px)
    stats_path = tmp_path / "s.json"
    normstat.compute(tmp_path / "train", workers=1, color="lab").save(str(stats_path))
    stats = normstat.Stats.load(str(stats_path))
    mean, std = np.array(stats.mean), np.array(stats.std)
    expected = [((_skimage(px) - mean) / std).transpose(2, 0, 1) for px in val]
    r = invoke("apply", tmp_path / "val", "--stats", stats_path, "-o", tmp_path / "out",
               "--color", "lab", "--workers", "1")  # fmt: skip
    assert r.exit_code == 0, r.output
    for i, ref in enumerate(expected):
        got = np.load(tmp_path / "out" / f"{i}.png.npy")
        assert got.dtype == np.float32 and got.shape == (3, 5, 7)
        assert np.allclose(got, ref, rtol=1e-4, atol=1e-4)  # float32 output, skimage's 1e-3
        exact = ((rgb_to_lab(val[i]) - mean) / std).transpose(2, 0, 1)
        assert np.allclose(got, exact, rtol=1e-5, atol=1e-5)
    r = invoke("apply", tmp_path / "val", "--stats", stats_path, "-o", tmp_path / "st",
               "--stack", "--workers", "1")  # fmt: skip
    assert r.exit_code == 0, r.output
    rows = np.load(tmp_path / "st" / "stack.npy")
    for i in range(4):
        assert np.array_equal(rows[i], np.load(tmp_path / "out" / f"{i}.png.npy"))
    provenance = json.loads((tmp_path / "out" / "normstat-apply.json").read_text())
    assert provenance["options"]["color"] == "lab"


def _one_line_error(r, *words: str) -> None:  # type: ignore[no-untyped-def]
    assert r.exit_code == 2, r.output
    line = r.output.strip()
    assert "\n" not in line and "Traceback" not in line, r.output
    for w in words:
        assert w in line, line


def test_refusals(tmp_path: Path) -> None:
    _photos(tmp_path / "train", np.random.default_rng(9))
    out = tmp_path / "s.json"
    base = ("compute", tmp_path / "train", "-o", out, "--color", "lab", "--workers", "1")
    _one_line_error(invoke(*base, "--mode", "L"), "--color lab", "not mode L")
    _one_line_error(invoke(*base, "--mode", "RGBA"), "--color lab", "RGBA")
    _one_line_error(invoke(*base, "--device", "gpu"), "--device gpu", "CPU")
    _one_line_error(invoke(*base, "--nodata", "0"), "masks")
    _one_line_error(invoke(*base, "--alpha", "mask"), "masks")
    _one_line_error(invoke(*base[:4], "--mode", "LAB;F"), "--color lab")
    assert not out.exists()
    grey = tmp_path / "grey"
    grey.mkdir()
    Image.fromarray(np.zeros((3, 3), np.uint8)).save(grey / "g.png")
    r = invoke("compute", grey, "-o", out, "--color", "lab")
    _one_line_error(r, "not mode L", "--mode RGB")
    with pytest.raises(DeviceError):
        normstat.compute(tmp_path / "train", color="lab", device="gpu")
    with pytest.raises(ValueError, match="color must be one of lab"):
        normstat.compute(tmp_path / "train", color="hsv")
    with pytest.raises(InputError, match="needs an 8- or 16-bit RGB"):
        normstat.compute(tmp_path / "train", mode="L", color="lab", workers=1)
    # --device auto stays on the CPU
    assert normstat.compute(tmp_path / "train", color="lab", device="auto", workers=1).images
    # apply: --color lab needs a LAB manifest; unit/symmetric scales need a [0, max] range
    normstat.compute(tmp_path / "train", workers=1).save(str(tmp_path / "rgb.json"))
    normstat.compute(tmp_path / "train", workers=1, color="lab").save(str(out))
    r = invoke("apply", tmp_path / "train", "--stats", tmp_path / "rgb.json", "-o",
               tmp_path / "o1", "--color", "lab")  # fmt: skip
    _one_line_error(r, "rgb.json", "without --color lab")
    r = invoke("apply", tmp_path / "train", "--stats", "imagenet", "-o", tmp_path / "o1",
               "--color", "lab")  # fmt: skip
    _one_line_error(r, "without --color lab")
    for scale in ("unit", "symmetric"):
        r = invoke("apply", tmp_path / "train", "--stats", out, "-o", tmp_path / "o2",
                   "--scale", scale)  # fmt: skip
        _one_line_error(r, "CIELAB", scale)
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def test_merge_and_check(tmp_path: Path) -> None:
    rng = np.random.default_rng(10)
    for part in ("a", "b"):
        (tmp_path / "train" / part).mkdir(parents=True)
        for i in range(3):
            px = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
            Image.fromarray(px).save(tmp_path / "train" / part / f"{i}.png")
    whole = normstat.compute(tmp_path / "train", workers=1, color="lab")
    whole.save(str(tmp_path / "all.json"))
    a = normstat.compute(tmp_path / "train" / "a", workers=1, color="lab")
    b = normstat.compute(tmp_path / "train" / "b", workers=1, color="lab")
    rgb_b = normstat.compute(tmp_path / "train" / "b", workers=1)
    a.save(str(tmp_path / "a.json"))
    b.save(str(tmp_path / "b.json"))
    rgb_b.save(str(tmp_path / "rgb_b.json"))
    merged = normstat.merge([str(tmp_path / "a.json"), str(tmp_path / "b.json")])
    assert merged.mean == whole.mean and merged.std == whole.std
    assert merged.data["color"] == whole.data["color"]
    with pytest.raises(ManifestError, match="cannot merge"):
        normstat.merge([str(tmp_path / "a.json"), str(tmp_path / "rgb_b.json")])
    # check finds an exact copy (re-encoded losslessly, renamed) against the LAB manifest
    (tmp_path / "test").mkdir()
    Image.open(tmp_path / "train" / "a" / "1.png").save(tmp_path / "test" / "copy.bmp")
    Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).save(
        tmp_path / "test" / "new.png"
    )
    report = normstat.check(tmp_path / "test", str(tmp_path / "all.json"), workers=1)
    exact = [(leak.test, leak.kind) for leak in report.leaked]
    assert len(exact) == 1 and exact[0][0].endswith("copy.bmp") and exact[0][1] == "exact"


def test_validation_and_snippets(tmp_path: Path) -> None:
    _photos(tmp_path / "train", np.random.default_rng(11))
    stats = normstat.compute(tmp_path / "train", workers=1, color="lab")
    stats.save(str(tmp_path / "s.json"))
    data = json.loads((tmp_path / "s.json").read_text())
    validate(data, "s.json")
    for change in (
        lambda d: d["options"].pop("color"),
        lambda d: d.pop("color"),
        lambda d: d["color"].update({"from": "L"}),
        lambda d: d["color"].update({"illuminant": "D50"}),
        lambda d: d["options"].update({"color": "hsv"}),
        lambda d: d.update({"channels": ["R", "G", "B"]}),
    ):
        bad = copy.deepcopy(data)
        change(bad)
        with pytest.raises(ManifestError):
            validate(bad, "s.json")
    rgb = normstat.compute(tmp_path / "train", workers=1).data
    assert "color" not in rgb and "color" not in rgb["options"]
    bad = copy.deepcopy(rgb)
    bad["options"]["color"] = "lab"
    with pytest.raises(ManifestError, match="go together"):
        validate(bad, "rgb.json")
    loaded = normstat.Stats.load(str(tmp_path / "s.json"))
    text = snippet(loaded, "torchvision")
    assert "kornia.color.rgb_to_lab" in text and repr(loaded.mean[0]) in text
    assert "CIELAB" in snippet(loaded, "albumentations") and "CIELAB" in snippet(loaded, "keras")


def test_lab_with_a_range_has_exact_float_percentiles(tmp_path: Path) -> None:
    """--range applies to the values reduced, L*, a*, b*: files and a .npy stack alike."""
    from test_range import _assert_percentiles

    pixels = _photos(tmp_path / "png", np.random.default_rng(11))
    stats = normstat.compute(tmp_path / "png", color="lab", value_range=(-60, 110), workers=1)
    lab = [np.concatenate([rgb_to_lab(p)[..., c].ravel() for p in pixels]) for c in range(3)]
    _assert_percentiles(stats, lab, -60.0, 110.0)
    (tmp_path / "npy").mkdir()
    same = [p for p in pixels if p.shape == pixels[0].shape]
    np.save(tmp_path / "npy" / "s.npy", np.stack(same))
    stack = normstat.compute(tmp_path / "npy", color="lab", value_range=(-60, 110), workers=1)
    lab = [np.concatenate([rgb_to_lab(p)[..., c].ravel() for p in same]) for c in range(3)]
    _assert_percentiles(stack, lab, -60.0, 110.0)


def test_stack_converted_in_parts_gives_the_files_statistics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stack's CIELAB moments, --range histogram and cross products come from one conversion
    of each part: any part size gives the same manifest, and the files route's statistics."""
    from normstat.verbs.compute import arrays

    stack = np.random.default_rng(13).integers(0, 256, (7, 6, 5, 3), dtype=np.uint8)
    stack[2], stack[3] = 0, 255
    (tmp_path / "d").mkdir()
    (tmp_path / "f").mkdir()
    np.save(tmp_path / "d" / "s.npy", stack)
    for i, px in enumerate(stack):
        Image.fromarray(px).save(tmp_path / "f" / f"{i}.png")
    kw: dict = dict(workers=1, color="lab", covariance=True, value_range=(-60, 110))
    files = normstat.compute(tmp_path / "f", **kw).data
    got = []
    for part in (1, 61, 1 << 20):  # one image per part, two, the whole batch
        monkeypatch.setattr(arrays, "LAB_BATCH_PIXELS", part)
        data = normstat.compute(tmp_path / "d", **kw).data
        got.append({k: v for k, v in data.items() if k != "created"})
    assert got[0] == got[1] == got[2]
    for key in ("mean", "std", "min", "max", "raw", "range", "correlation", "pca", "pixels"):
        assert got[0][key] == files[key], key
