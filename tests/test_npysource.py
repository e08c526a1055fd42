""".npy sources: shapes and layouts, dtypes and modes, bad files, and compute over them against
exact references and against the same pixels saved as image files."""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from helpers import decode, describe, invoke, is_npy, probe_array
from PIL import Image

import normstat
from normstat.modes import MODES
from normstat.readers import Skipped
from normstat.readers.convert import convert as convert_batch
from normstat.readers.npy import ArrayProbe, read_batch
from normstat.verbs.compute import arrays as batches

RNG = np.random.default_rng(7)


def _save(path: Path, arr: np.ndarray) -> Path:
    np.save(path, arr)
    return path


# ---------------------------------------------------------------- probing


@pytest.mark.parametrize(
    ("shape", "layout", "expect"),
    [
        ((20, 30), "auto", (1, 20, 30, 1, False)),
        ((20, 30, 3), "auto", (1, 20, 30, 3, False)),
        ((20, 30, 1), "auto", (1, 20, 30, 1, False)),
        ((10, 28, 28), "auto", (10, 28, 28, 1, True)),  # last axis > 4: a grayscale stack
        ((10, 28, 3), "nhw", (10, 28, 3, 1, True)),  # ambiguous: the option decides
        ((10, 28, 28), "hwc", None),  # 28 channels
        ((5, 8, 9, 3), "auto", (5, 8, 9, 3, True)),
        ((5, 8, 9, 4), "auto", (5, 8, 9, 4, True)),
    ],
)
def test_shapes_and_layouts(
    tmp_path: Path, shape: tuple[int, ...], layout: str, expect: tuple | None
) -> None:
    path = _save(tmp_path / "a.npy", np.zeros(shape, np.uint8))
    p = probe_array(str(path), keep_alpha=False, max_pixels=None, layout=layout)
    if expect is None:
        assert isinstance(p, Skipped) and "channels" in p.reason
        return
    assert isinstance(p, ArrayProbe), p
    assert (p.count, p.height, p.width, p.channels, p.stacked) == expect


@pytest.mark.parametrize(
    ("dtype", "channels", "native", "canonical"),
    [
        ("uint8", 1, "L", "L"),
        ("uint8", 2, "LA", "L"),
        ("uint8", 3, "RGB", "RGB"),
        ("uint8", 4, "RGBA", "RGB"),
        ("uint16", 1, "I;16", "I;16"),
        ("uint16", 3, "RGB;16", "RGB;16"),
        ("uint16", 4, "RGBA;16", "RGB;16"),
        (">u2", 1, "I;16", "I;16"),
        ("float32", 1, "F", "F"),
        ("float64", 3, "RGB;F", "RGB;F"),
        ("float16", 4, "RGBA;F", "RGB;F"),
    ],
)
def test_dtypes_map_to_modes(
    tmp_path: Path, dtype: str, channels: int, native: str, canonical: str
) -> None:
    path = _save(tmp_path / "a.npy", np.zeros((2, 4, 5, channels), dtype))
    p = probe_array(str(path), keep_alpha=False, max_pixels=None)
    assert isinstance(p, ArrayProbe)
    assert (p.native, p.canonical) == (native, canonical)
    assert canonical in MODES


def test_alpha_kept_for_8_bit_only(tmp_path: Path) -> None:
    rgba = _save(tmp_path / "a.npy", np.zeros((4, 5, 4), np.uint8))
    p = probe_array(str(rgba), keep_alpha=True, max_pixels=None)
    assert isinstance(p, ArrayProbe) and p.canonical == "RGBA"


def _truncated(tmp_path: Path) -> Path:
    good = _save(tmp_path / "good.npy", np.zeros((10, 8, 8, 3), np.uint8))
    bad = tmp_path / "truncated.npy"
    bad.write_bytes(good.read_bytes()[:300])
    return bad


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (_truncated, "unreadable .npy file: file holds 300 bytes, its header declares 2048"),
        (
            lambda d: (
                np.save(d / "o.npy", np.array([1, None], dtype=object), allow_pickle=True),
                d / "o.npy",
            )[1],
            "unreadable .npy file: array of Python objects (never unpickled)",
        ),
        (lambda d: _save(d / "v.npy", np.zeros(5, np.uint8)), "is neither an image"),
        (lambda d: _save(d / "v.npy", np.zeros((1, 2, 3, 4, 1), np.uint8)), "is neither an"),
        (lambda d: _save(d / "i.npy", np.zeros((4, 4), np.int32)), "unsupported array dtype"),
        (lambda d: _save(d / "b.npy", np.zeros((4, 4), bool)), "unsupported array dtype"),
        (lambda d: _save(d / "e.npy", np.zeros((0, 4, 4, 3), np.uint8)), "holds no pixels"),
        (lambda d: _save(d / "c.npy", np.zeros((2, 4, 4, 5), np.uint8)), "5 channels"),
        (lambda d: _save(d / "big.npy", np.zeros((30, 40), np.uint8)), "over the limit of 1000"),
    ],
)
def test_bad_arrays_are_skipped_with_reason(tmp_path: Path, make, reason: str) -> None:  # type: ignore[no-untyped-def]
    path = make(tmp_path)
    assert is_npy(str(path))
    p = probe_array(str(path), keep_alpha=False, max_pixels=1000)
    assert isinstance(p, Skipped), p
    assert reason in p.reason


def test_not_npy_by_content(tmp_path: Path) -> None:
    fake = tmp_path / "x.npy"
    fake.write_text("not an array")
    assert not is_npy(str(fake))
    with open(tmp_path / "data", "wb") as fh:  # no extension: recognized by its magic
        np.save(fh, np.zeros((3, 3), np.uint8))
    assert is_npy(str(tmp_path / "data"))


# ---------------------------------------------------------------- conversion


def test_conversions_match_decoding_the_same_pixels_from_image_files(tmp_path: Path) -> None:
    """An RGB array converted to L, I;16 and RGB;F equals decoding the same pixels from a PNG."""
    rgb = RNG.integers(0, 256, (2, 9, 11, 3), dtype=np.uint8)
    probe = ArrayProbe("RGB", "RGB", 2, 9, 11, 3, "uint8", True)
    for i in range(2):
        Image.fromarray(rgb[i]).save(tmp_path / f"{i}.png")
    for name in ("L", "LA", "RGBA", "I;16", "RGB;16", "F", "RGB;F"):
        mode = MODES[name]
        got = convert_batch(rgb, mode)
        assert not isinstance(got, str)
        for i in range(2):
            dec = decode(str(tmp_path / f"{i}.png"), mode, None)
            assert not isinstance(dec, Skipped)
            assert got[i].dtype == dec.pixels.dtype, name
            assert np.array_equal(got[i], dec.pixels), name
    assert read_batch(rgb, probe, 1, 2).shape == (1, 9, 11, 3)


def test_float_conversions_keep_float64_and_refuse_integer_targets() -> None:
    x = RNG.standard_normal((2, 3, 4, 1))
    rgb = convert_batch(x, MODES["RGB;F"])
    assert not isinstance(rgb, str) and rgb.dtype == np.float64 and rgb.shape == (2, 3, 4, 3)
    assert np.array_equal(rgb[..., 2], x[..., 0])
    assert convert_batch(x, MODES["L"]) == "float array has no range to map to L"


# ---------------------------------------------------------------- compute over arrays


def _exact(values: np.ndarray) -> tuple[Fraction, Fraction]:
    ints = [Fraction(int(v)) if values.dtype.kind == "u" else Fraction(float(v)) for v in values]
    mean = sum(ints) / len(ints)
    return mean, sum((v - mean) ** 2 for v in ints) / len(ints)


def _manifest(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_stack_equals_the_same_images_as_png_files(tmp_path: Path) -> None:
    """A uint8 N×H×W×3 stack and the same images as PNGs give the same statistics, histogram
    state and pixel hashes; each stack image is named ``stack.npy[i]``."""
    stack = RNG.integers(0, 256, (12, 13, 17, 3), dtype=np.uint8)
    (tmp_path / "arr").mkdir()
    (tmp_path / "png").mkdir()
    _save(tmp_path / "arr" / "stack.npy", stack)
    for i, im in enumerate(stack):
        Image.fromarray(im).save(tmp_path / "png" / f"{i:02d}.png")
    a = normstat.compute(tmp_path / "arr", workers=1)
    b = normstat.compute(tmp_path / "png", workers=1)
    for key in ("mean", "std", "std_per_image_mean", "min", "max", "raw", "pixels", "images"):
        assert a.data[key] == b.data[key], key
    assert a.data["state"] == b.data["state"]
    assert a.data["modes"] == {"RGB": 12}
    assert a.fingerprints is not None and b.fingerprints is not None
    assert np.array_equal(a.fingerprints.pixel_hash, b.fingerprints.pixel_hash)
    assert np.array_equal(a.fingerprints.dhash, b.fingerprints.dhash)
    assert a.fingerprints.paths == [f"stack.npy[{i}]" for i in range(12)]
    for c in range(3):
        mean, var = _exact(stack[..., c].ravel())
        assert a.data["raw"]["mean"][c] == float(mean)
        assert a.data["raw"]["var"][c] == pytest.approx(float(var), rel=1e-12)


def test_streaming_in_small_batches_and_any_workers_give_identical_manifests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches of ~1 image (memory bounded however large the stack) and 1 or 2 workers: the
    manifest and the sidecar are byte-identical."""
    src = tmp_path / "src"
    src.mkdir()
    _save(src / "s16.npy", RNG.integers(0, 65536, (9, 20, 21), dtype=np.uint16))
    _save(src / "t16.npy", RNG.integers(0, 65536, (7, 20, 21, 1), dtype=np.uint16))
    outputs = []
    for batch_bytes, workers in [(1 << 30, 1), (900, 1), (900, 2)]:
        monkeypatch.setattr(batches, "CPU_BATCH_BYTES", batch_bytes)
        (tmp_path / f"{batch_bytes}-{workers}").mkdir()
        out = tmp_path / f"{batch_bytes}-{workers}" / "s.json"
        normstat.compute(src, workers=workers).save(str(out))
        data = _manifest(out)
        data.pop("created")
        side = (out.parent / data["sidecar"]["path"]).read_bytes()
        outputs.append((json.dumps(data, sort_keys=True), side))
    assert len(batches.array_tasks("x", "x", _probe16(), "I;16", reduce=True)) == 16
    assert outputs[0] == outputs[1] == outputs[2]
    data = _manifest(tmp_path / f"{1 << 30}-1" / "s.json")
    assert data["mode"] == "I;16" and data["images"] == 16


def _probe16() -> ArrayProbe:
    return ArrayProbe("I;16", "I;16", 16, 20, 21, 1, "uint16", True)


def test_float_stack_adversarial_exact_and_nan_images_skipped(tmp_path: Path) -> None:
    """Offset 1e8, variance 1e-6, float64 kept: ≤ 1e-12 of exact Fractions; images holding NaN
    or infinity are skipped one by one, with the reason, and --strict refuses them."""
    x = 1e8 + RNG.standard_normal((6, 10, 12)) * 1e-3
    x[2, 3, 4] = np.nan
    x[4, 0, 0] = np.inf
    src = tmp_path / "f"
    src.mkdir()
    _save(src / "f.npy", x)
    stats = normstat.compute(src, workers=1)
    assert stats.data["mode"] == "F" and stats.data["images"] == 4
    assert [s["path"] for s in stats.skipped] == [str(src / "f.npy[2]"), str(src / "f.npy[4]")]
    assert {s["reason"] for s in stats.skipped} == {"non-finite pixel values (NaN or infinity)"}
    good = np.concatenate([x[i].ravel() for i in (0, 1, 3, 5)])
    mean, var = _exact(good)
    assert stats.data["raw"]["mean"][0] == pytest.approx(float(mean), rel=1e-15)
    assert stats.data["raw"]["var"][0] == pytest.approx(float(var), rel=1e-12)
    assert stats.data["raw"]["std"][0] == pytest.approx(math.sqrt(var), rel=1e-12)
    result = invoke("compute", src, "-o", tmp_path / "s.json", "-w", "1", "--strict")
    assert result.exit_code == 2, describe(result)
    assert "f.npy[2]: non-finite pixel values" in result.stderr


def test_mixed_arrays_and_images_follow_the_mode_rules(tmp_path: Path) -> None:
    """Two PNG images (RGB) and a stack of three grayscale arrays (L): L is the majority, the
    PNGs are converted like any image; the results equal the exact reference."""
    src = tmp_path / "mixed"
    src.mkdir()
    gray = RNG.integers(0, 256, (3, 8, 9), dtype=np.uint8)
    _save(src / "b_gray.npy", gray)
    rgbs = [RNG.integers(0, 256, (8, 9, 3), dtype=np.uint8) for _ in range(2)]
    for i, im in enumerate(rgbs):
        Image.fromarray(im).save(src / f"a{i}.png")
    out = tmp_path / "m.json"
    result = invoke("compute", src, "-o", out, "-w", "1")
    assert result.exit_code == 0, describe(result)
    data = _manifest(out)
    assert data["mode"] == "L" and data["images"] == 5
    assert data["modes"] == {"L": 3, "RGB": 2} and data["converted"] == {"RGB": 2}
    lumas = [np.asarray(Image.fromarray(im).convert("L")) for im in rgbs]
    mean, var = _exact(np.concatenate([v.ravel() for v in lumas] + [gray.ravel()]))
    assert data["raw"]["mean"][0] == float(mean)
    assert data["raw"]["var"][0] == pytest.approx(float(var), rel=1e-12)


def test_layout_option_and_bad_files_through_the_cli(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _save(src / "amb.npy", RNG.integers(0, 256, (6, 5, 3), dtype=np.uint8))
    (src / "trunc.npy").write_bytes((_truncated(tmp_path)).read_bytes())
    out = tmp_path / "a.json"
    result = invoke("compute", src, "-o", out, "-w", "1")
    assert result.exit_code == 0, describe(result)
    data = _manifest(out)
    assert (data["images"], data["mode"]) == (1, "RGB")  # auto: one 6×5 RGB image
    assert data["skipped"][0]["path"] == str(src / "trunc.npy")
    assert "its header declares" in data["skipped"][0]["reason"]
    result = invoke("compute", src, "-o", out, "-w", "1", "--npy-layout", "nhw")
    assert result.exit_code == 0, describe(result)
    data = _manifest(out)
    assert (data["images"], data["mode"], data["pixels"]) == (6, "L", 90)
    assert data["options"]["npy_layout"] == "nhw"


def test_big_endian_and_float16_arrays_read_as_their_values(tmp_path: Path) -> None:
    """Byte order and half precision are storage details: the statistics are of the values."""
    x = RNG.integers(0, 65536, (3, 6, 7), dtype=np.uint16)
    for name, stored in [("native", x), ("big", x.astype(">u2"))]:
        (tmp_path / name).mkdir()
        _save(tmp_path / name / "a.npy", stored)
    a = normstat.compute(tmp_path / "native", workers=1)
    b = normstat.compute(tmp_path / "big", workers=1)
    assert a.data["state"] == b.data["state"] and a.data["raw"] == b.data["raw"]
    half = RNG.standard_normal((2, 5, 6)).astype(np.float16)
    (tmp_path / "half").mkdir()
    _save(tmp_path / "half" / "h.npy", half)
    stats = normstat.compute(tmp_path / "half", workers=1)
    mean, _ = _exact(half.astype(np.float64).ravel())
    assert stats.data["raw"]["mean"][0] == pytest.approx(float(mean), rel=1e-12)
