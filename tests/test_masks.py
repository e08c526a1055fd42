"""Validity masks (--nodata, --alpha mask): every statistic over valid pixels only, per channel,
checked against NumPy on the true arrays with boolean masks and Python Fractions; exact for any
--workers and through merge; schema @2 manifests validated, @1 ones still written without masks."""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from helpers import invoke
from PIL import Image

import normstat
from normstat.errors import DeviceError, InputError, ManifestError


def _reference(arrays: list[np.ndarray], nodata: list[float | None], opaque=None) -> dict:  # type: ignore[no-untyped-def]
    """Exact statistics of H×W×C arrays over each channel's valid pixels (NumPy masks,
    Fractions); a channel with no valid pixel in an image adds nothing to its per-image std."""
    channels = arrays[0].shape[2]
    out: dict = {k: [] for k in ("count", "mean", "var", "min", "max", "std_img", "images")}
    for c in range(channels):
        values, stds = [], []
        for k, a in enumerate(arrays):
            x = a[..., c]
            v = nodata[c]
            valid = (
                ~np.isnan(x)
                if v is not None and math.isnan(v)
                else (np.ones(x.shape, bool) if v is None else x != v)
            )
            if opaque is not None:
                valid &= opaque[k]
            kept = x[valid].astype(np.float64)
            if kept.size:
                values.append(kept)
                f = [Fraction(float(t)) for t in kept]
                m = sum(f, Fraction(0)) / len(f)
                stds.append(math.sqrt(sum(((t - m) ** 2 for t in f), Fraction(0)) / len(f)))
        allv = np.concatenate(values)
        fr = [Fraction(float(t)) for t in allv]
        n = len(fr)
        mean = sum(fr, Fraction(0)) / n
        var = sum(((t - mean) ** 2 for t in fr), Fraction(0)) / n
        out["count"].append(n)
        out["mean"].append(float(mean))
        out["var"].append(float(var))
        out["min"].append(float(allv.min()))
        out["max"].append(float(allv.max()))
        out["std_img"].append(sum(stds) / len(stds))
        out["images"].append(len(stds))
        out.setdefault("values", []).append(allv)
    return out


def _assert_matches(stats: normstat.Stats, ref: dict, integer: bool = True) -> None:
    d = stats.data
    assert d["schema"] == "normstat/stats@2"
    assert d["pixels_valid"] == ref["count"]
    assert d["state"]["counts"] == ref["count"]
    assert d["images_valid"] == ref["images"]
    raw = d["raw"]
    if integer:
        assert raw["mean"] == ref["mean"]  # exact rationals rounded once
        assert raw["var"] == ref["var"]
    else:
        np.testing.assert_allclose(raw["mean"], ref["mean"], rtol=1e-12)
        np.testing.assert_allclose(raw["var"], ref["var"], rtol=1e-10)
    assert raw["min"] == ref["min"] and raw["max"] == ref["max"]
    np.testing.assert_allclose(raw["std_per_image_mean"], ref["std_img"], rtol=1e-12)
    if integer:
        for key, got in raw["percentiles"].items():
            want = [
                float(np.percentile(v, float(key), method="inverted_cdf")) for v in ref["values"]
            ]
            assert got == want, key


def test_rasterio_example_half_nodata(tmp_path: Path) -> None:
    """rasterio's stats(): half the pixels at nodata 0, the rest 1..150: mean 75.5, not 37.75."""
    px = np.concatenate([np.arange(1, 151), np.zeros(150)]).astype(np.uint8).reshape(15, 20)
    Image.fromarray(px).save(tmp_path / "a.png")
    masked = normstat.compute(str(tmp_path), nodata=0, workers=1)
    assert masked.data["raw"]["mean"] == [75.5]
    assert masked.data["pixels"] == 300 and masked.data["pixels_valid"] == [150]
    assert normstat.compute(str(tmp_path), workers=1).data["raw"]["mean"] == [37.75]


def _rgb_data(folder: Path) -> list[np.ndarray]:
    """Adversarial RGB images: lots of 0 and 255, one image whose B is all 255 (no valid B
    pixel), one image all nodata in every channel."""
    rng = np.random.default_rng(7)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = []
    for i in range(7):
        a = rng.choice([0, 1, 17, 128, 254, 255], size=(6 + i, 5, 3)).astype(np.uint8)
        if i == 2:
            a[..., 2] = 255
        if i == 4:
            a[..., :2], a[..., 2] = 0, 255
        arrays.append(a)
        Image.fromarray(a).save(folder / f"im{i}.png")
    return arrays


def test_per_channel_nodata_rgb(tmp_path: Path) -> None:
    arrays = _rgb_data(tmp_path / "d")
    stats = normstat.compute(str(tmp_path / "d"), nodata="0,0,255", workers=1)
    ref = _reference(arrays, [0, 0, 255])
    assert ref["images"] == [6, 6, 5]  # image 4 has nothing valid, image 2 no valid B
    _assert_matches(stats, ref)
    assert stats.images == 7  # an image with no valid pixel still contributed (fingerprinted)
    assert stats.data["options"]["nodata"] == [0.0, 0.0, 255.0]


@pytest.mark.parametrize("workers", [1, 2])
def test_workers_and_merge_identical(tmp_path: Path, workers: int) -> None:
    arrays = _rgb_data(tmp_path / "d")
    (tmp_path / "d" / "sub").mkdir()
    np.save(tmp_path / "d" / "sub" / "stack.npy", np.stack(arrays[:1] * 3))
    one = normstat.compute(str(tmp_path / "d"), nodata="0,0,255", workers=workers)
    base = normstat.compute(str(tmp_path / "d"), nodata="0,0,255", workers=1)
    one.save(str(tmp_path / "one.json"))
    base.save(str(tmp_path / "base.json"))
    a = json.loads((tmp_path / "one.json").read_text())
    b = json.loads((tmp_path / "base.json").read_text())
    a.pop("created"), b.pop("created")
    a.pop("sidecar"), b.pop("sidecar")
    assert a == b
    # merge of two parts == one pass (merge verb's own byte comparison helper is in test_merge)
    parts = []
    for k, names in enumerate([["im0.png", "im2.png", "im4.png"], ["im1.png", "im3.png"]]):
        srcs = [str(tmp_path / "d" / n) for n in names]
        out = tmp_path / f"p{k}.json"
        normstat.compute(srcs, nodata="0,0,255", workers=workers).save(str(out))
        parts.append(out)
    union = [
        str(tmp_path / "d" / n) for n in ["im0.png", "im1.png", "im2.png", "im3.png", "im4.png"]
    ]
    whole = normstat.compute(union, nodata="0,0,255", workers=1)
    merged = normstat.merge([normstat.Stats.load(str(p)) for p in parts])
    for key in ("pixels", "pixels_valid", "images_valid", "mean", "std", "raw", "state"):
        assert merged.data[key] == whole.data[key], key


def test_merge_refuses_masked_with_unmasked(tmp_path: Path) -> None:
    arrays = _rgb_data(tmp_path / "d")
    del arrays
    normstat.compute(str(tmp_path / "d" / "im0.png"), nodata=0, workers=1).save(
        str(tmp_path / "a.json")
    )
    normstat.compute(str(tmp_path / "d" / "im1.png"), workers=1).save(str(tmp_path / "b.json"))
    normstat.compute(str(tmp_path / "d" / "im3.png"), nodata=1, workers=1).save(
        str(tmp_path / "c.json")
    )
    for other in ("b.json", "c.json"):
        result = invoke("merge", tmp_path / "a.json", tmp_path / other, "-o", tmp_path / "m.json")
        assert result.exit_code == 2
        assert "options.nodata" in result.stderr
        assert not (tmp_path / "m.json").exists()


def test_nodata_16bit(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    arrays = []
    for i in range(3):
        a = rng.integers(60000, 65536, (9, 8), dtype=np.uint16)
        a[: i + 2] = 65535
        arrays.append(a[..., None])
        Image.fromarray(a).save(tmp_path / f"g{i}.png")
    stats = normstat.compute(str(tmp_path), nodata=65535, workers=1)
    assert stats.mode == "I;16"
    _assert_matches(stats, _reference(arrays, [65535]))


def test_nodata_only_value_is_an_error(tmp_path: Path) -> None:
    Image.fromarray(np.full((4, 4), 9, np.uint8)).save(tmp_path / "a.png")
    with pytest.raises(InputError, match="no valid pixel"):
        normstat.compute(str(tmp_path), nodata=9, workers=1)
    result = invoke("compute", tmp_path, "-o", tmp_path / "s.json", "--nodata", "9")
    assert result.exit_code == 2 and "channel L has no valid pixel" in result.stderr
    assert not (tmp_path / "s.json").exists()


@pytest.mark.parametrize(
    ("nodata", "why"),
    [
        ("300", "no pixel value"),
        ("1.5", "no pixel value"),
        ("1,2", "one per channel"),
        ("nan", "no pixel value"),
    ],
)
def test_nodata_that_cannot_apply(tmp_path: Path, nodata: str, why: str) -> None:
    Image.fromarray(np.full((4, 4), 9, np.uint8)).save(tmp_path / "a.png")
    result = invoke("compute", tmp_path, "-o", tmp_path / "s.json", "--nodata", nodata)
    assert result.exit_code == 2 and why in result.stderr, result.stderr


def test_alpha_mask(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    arrays, opaque = [], []
    for i in range(4):
        a = rng.integers(0, 256, (7, 6, 4), dtype=np.uint8)
        a[..., 3] = np.where(rng.random((7, 6)) < 0.4, 0, rng.integers(1, 256, (7, 6)))
        if i == 1:
            a[..., 3] = 0  # wholly transparent: contributes nothing
        arrays.append(a[..., :3])
        opaque.append(a[..., 3] > 0)
        Image.fromarray(a, "RGBA").save(tmp_path / f"t{i}.png")
    stats = normstat.compute(str(tmp_path), alpha="mask", workers=1)
    assert stats.mode == "RGB" and stats.channels == ["R", "G", "B"]
    _assert_matches(stats, _reference(arrays, [None] * 3, opaque))
    # the fingerprints are the RGB pixels', so check finds an RGB copy of a masked image
    stats.save(str(tmp_path / "o" / "s.json"))
    test = tmp_path / "test"
    test.mkdir()
    Image.open(tmp_path / "t2.png").convert("RGB").save(test / "copy.png")
    report = normstat.check(str(test), str(tmp_path / "o" / "s.json"))
    assert [x.kind for x in report.leaked] == ["exact"]


def test_alpha_mask_and_nodata_together(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    a = rng.choice([0, 5, 200], size=(8, 8, 4)).astype(np.uint8)
    Image.fromarray(a, "RGBA").save(tmp_path / "t.png")
    stats = normstat.compute(str(tmp_path), alpha="mask", nodata=5, workers=1)
    _assert_matches(stats, _reference([a[..., :3]], [5, 5, 5], [a[..., 3] > 0]))


def test_alpha_mask_needs_an_8bit_mode(tmp_path: Path) -> None:
    Image.fromarray(np.arange(16, dtype=np.uint16).reshape(4, 4) * 999).save(tmp_path / "a.png")
    with pytest.raises(InputError, match="alpha mask needs an 8-bit mode"):
        normstat.compute(str(tmp_path), alpha="mask", workers=1)


def test_float_nan_nodata(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    a = rng.standard_normal((2, 6, 5, 3)) * 1e-3 + 1e8
    a[0, :2, :, 0] = np.nan
    a[1, ..., 1] = np.nan  # a channel of one image all NaN
    a[1, 0, 0, 2] = np.nan
    np.save(tmp_path / "f.npy", a)
    # today's behaviour without --nodata nan is kept: an image holding NaN is skipped
    plain = invoke("compute", tmp_path, "-o", tmp_path / "p.json")
    assert plain.exit_code == 2 and "no image could be read" in plain.stderr
    stats = normstat.compute(str(tmp_path), nodata="nan", workers=1)
    _assert_matches(stats, _reference(list(a), [math.nan] * 3), integer=False)
    assert stats.data["options"]["nodata"] == ["nan"]


def test_float_nan_left_in_a_channel_without_nan_nodata_is_skipped(tmp_path: Path) -> None:
    a = np.ones((2, 4, 4, 3)) * np.arange(16).reshape(1, 4, 4, 1)
    a[0, 0, 0, 1] = np.nan  # nodata of G is 0, so this NaN is no nodata
    a[1, 0, 0, 0] = np.nan
    np.save(tmp_path / "f.npy", a)
    stats = normstat.compute(str(tmp_path), nodata="nan,0,0", workers=1)
    assert stats.images == 1
    assert stats.skipped == [
        {"path": str(tmp_path / "f.npy[0]"), "reason": "non-finite pixel values (NaN or infinity)"}
    ]
    _assert_matches(stats, _reference([a[1]], [math.nan, 0, 0]), integer=False)


def test_float_file_nodata(tmp_path: Path) -> None:
    arrays = []
    for i in range(2):
        a = np.full((5, 6), -9999.0, np.float32)
        a[i:, 1:] = np.arange(30 - 5 - i * 5, dtype=np.float32).reshape(5 - i, 5) / 7
        Image.fromarray(a, "F").save(tmp_path / f"f{i}.tif")
        arrays.append(a[..., None])
    stats = normstat.compute(str(tmp_path), nodata=-9999, workers=1)
    _assert_matches(stats, _reference(arrays, [-9999.0]), integer=False)


def test_device_gpu_with_masks_is_refused(tmp_path: Path) -> None:
    Image.fromarray(np.full((4, 4), 9, np.uint8)).save(tmp_path / "a.png")
    with pytest.raises(DeviceError, match="CPU"):
        normstat.compute(str(tmp_path), nodata=0, device="gpu")
    result = invoke(
        "compute", tmp_path, "-o", tmp_path / "s.json", "--nodata", "0", "--device", "gpu"
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: --device gpu: masks")


def test_unmasked_manifests_stay_schema_1(tmp_path: Path) -> None:
    _rgb_data(tmp_path / "d")
    stats = normstat.compute(str(tmp_path / "d"), workers=1)
    assert stats.data["schema"] == "normstat/stats@1"
    assert "pixels_valid" not in stats.data and "counts" not in stats.data["state"]


def test_masked_manifest_validates_and_refuses_tampering(tmp_path: Path) -> None:
    _rgb_data(tmp_path / "d")
    path = tmp_path / "o" / "s.json"
    normstat.compute(str(tmp_path / "d"), nodata="0,0,255", workers=1).save(str(path))
    loaded = normstat.Stats.load(str(path))
    assert loaded.partial().images_valid == [6, 6, 5]
    text = path.read_text()
    for edit in (
        lambda d: d["pixels_valid"].__setitem__(0, d["pixels_valid"][0] + 1),
        lambda d: d["state"]["counts"].__setitem__(2, 1),
        lambda d: d["images_valid"].__setitem__(2, 6),
        lambda d: d.pop("pixels_valid"),
    ):
        data = json.loads(text)
        edit(data)
        path.write_text(json.dumps(data))
        with pytest.raises(ManifestError):
            normstat.Stats.load(str(path))


def test_show_prints_a_masked_manifest(tmp_path: Path) -> None:
    _rgb_data(tmp_path / "d")
    path = tmp_path / "s.json"
    assert invoke("compute", tmp_path / "d", "-o", path, "--nodata", "0").exit_code == 0
    result = invoke("show", path)
    assert result.exit_code == 0, result.stderr


# ---------------------------------------------------------------- apply


def _expected_output(x: np.ndarray, valid: np.ndarray, mean, std, fill: float) -> np.ndarray:  # type: ignore[no-untyped-def]
    """NumPy reference: (x/max - mean)/std on valid pixels, ``fill`` elsewhere, CHW."""
    y = (x.astype(np.float64) / 255 - np.asarray(mean)) / np.asarray(std)
    y[~valid] = fill
    return np.moveaxis(y, 2, 0)


@pytest.mark.parametrize("invalid", ["zero", "nan"])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_apply_masks_like_compute(tmp_path: Path, invalid: str, dtype: str) -> None:
    arrays = _rgb_data(tmp_path / "d")
    stats_path = tmp_path / "s" / "stats.json"
    stats = normstat.compute(str(tmp_path / "d"), nodata="0,0,255", workers=1)
    stats.save(str(stats_path))
    result = invoke(
        "apply",
        tmp_path / "d",
        "--stats",
        stats_path,
        "-o",
        tmp_path / "out",
        "--invalid",
        invalid,
        "--dtype",
        dtype,
    )
    assert result.exit_code == 0, result.stderr
    fill = 0.0 if invalid == "zero" else math.nan
    for i, x in enumerate(arrays):
        got = np.load(tmp_path / "out" / f"im{i}.png.npy")
        assert got.dtype == np.dtype(dtype)
        valid = x != np.array([0, 0, 255], dtype=np.uint8)
        want = _expected_output(x, valid, stats.mean, stats.std, fill)
        rtol = 1e-6 if dtype == "float32" else 2e-3
        np.testing.assert_allclose(got.astype(np.float64), want, rtol=rtol, atol=rtol)
        assert np.array_equal(np.isnan(got), np.isnan(want))


def test_apply_alpha_mask(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, (6, 5, 4), dtype=np.uint8)
    a[:2, :, 3] = 0
    (tmp_path / "in").mkdir()
    Image.fromarray(a, "RGBA").save(tmp_path / "in" / "t.png")
    (tmp_path / "s").mkdir()
    stats = normstat.compute(str(tmp_path / "in" / "t.png"), alpha="mask", workers=1)
    stats.save(str(tmp_path / "s" / "stats.json"))
    normstat.apply(
        str(tmp_path / "in" / "t.png"),
        str(tmp_path / "s" / "stats.json"),
        tmp_path / "out",
        invalid="nan",
        layout="hwc",
    )
    got = np.load(tmp_path / "out" / "t.png.npy")
    assert got.shape == (6, 5, 3)
    valid = np.repeat((a[..., 3] > 0)[..., None], 3, axis=2)
    want = np.moveaxis(_expected_output(a[..., :3], valid, stats.mean, stats.std, math.nan), 0, 2)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    assert np.isnan(got[:2]).all() and not np.isnan(got[2:]).any()


def test_apply_nan_nodata_float_stack(tmp_path: Path) -> None:
    a = np.arange(2 * 4 * 6, dtype=np.float32).reshape(2, 4, 6) / 10
    a[0, 0] = np.nan
    (tmp_path / "in").mkdir()
    np.save(tmp_path / "in" / "f.npy", a)
    (tmp_path / "s").mkdir()
    stats = normstat.compute(str(tmp_path / "in" / "f.npy"), nodata="nan", workers=1)
    stats.save(str(tmp_path / "s" / "stats.json"))
    normstat.apply(
        str(tmp_path / "in" / "f.npy"), str(tmp_path / "s" / "stats.json"), tmp_path / "out"
    )
    got = np.load(tmp_path / "out" / "f.npy[0].npy")[0]
    valid = ~np.isnan(a[0])
    want = (a[0].astype(np.float64) - stats.mean[0]) / stats.std[0]
    np.testing.assert_allclose(got[valid], want[valid], rtol=1e-6, atol=1e-6)
    assert (got[~valid] == 0).all()


def test_apply_and_compute_share_the_validity_rule() -> None:
    """apply's valid pixels are those compute reduces: per channel, not its nodata (NaN matches
    NaN, and masks nothing in integer pixels) and opaque, whatever the dtype."""
    from normstat.options import MaskOptions
    from normstat.readers import Decoded
    from normstat.verbs.apply.masking import valid_pixels

    rng = np.random.default_rng(3)
    rgba = rng.integers(0, 4, (5, 6, 4), dtype=np.uint8)
    floats = rng.integers(0, 4, (5, 6, 3)).astype(np.float32)
    floats[rng.random((5, 6, 3)) < 0.3] = np.nan
    cases = [
        (rgba, MaskOptions((1.0, math.nan, 3.0), True), [1.0, math.nan, 3.0], True),
        (rgba[..., :3], MaskOptions((math.nan,)), None, False),
        (floats, MaskOptions((math.nan, 2.0, math.nan)), [math.nan, 2.0, math.nan], False),
    ]
    for px, mask, nodata, alpha in cases:
        colour, valid = valid_pixels(Decoded(px, "x"), mask)
        assert np.array_equal(colour, px[..., :3], equal_nan=px.dtype.kind == "f")
        if nodata is None:  # NaN nodata masks nothing in integer pixels
            assert valid is not None and valid.all()
            continue
        want = np.stack(
            [
                np.isnan(px[..., c]) if math.isnan(v) else px[..., c] == v
                for c, v in enumerate(nodata)
            ],
            axis=-1,
        )
        want = ~want & (px[..., 3:] > 0 if alpha else True)
        assert valid is not None and np.array_equal(valid, want)
