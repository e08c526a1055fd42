"""decode/probe: exact pixels for every source kind and target mode, Skipped (never a raise) for
bad files. Fixtures are generated here from arrays we build, so every expected pixel is known."""

from __future__ import annotations

import io
import re
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import png  # pypng: the only easy writer of 16-bit colour PNGs
import pytest
from helpers import decode, probe
from PIL import Image, ImageOps

from normstat.api import DEFAULT_MAX_PIXELS
from normstat.modes import MODES
from normstat.readers import Decoded, Probe, Skipped

ODD_IMAGES = Path(__file__).parents[1] / "../shared/corpora/odd-images"
KNOWN_BAD = (
    "truncated_jpeg.jpg",
    "truncated_image.png",
    "broken.png",
    "decompression_bomb.gif",
    "broken_data_stream.png",
)
PALETTE = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]], dtype=np.uint8)


@pytest.fixture(autouse=True)
def _keep_pillow_limit():
    """decode() assigns Image.MAX_IMAGE_PIXELS; keep that from leaking between tests."""
    saved = Image.MAX_IMAGE_PIXELS
    yield
    Image.MAX_IMAGE_PIXELS = saved


# ---------------------------------------------------------------- independent references


def to8(a: np.ndarray) -> np.ndarray:
    """16 → 8 bits, exactly rounded: round(v·255/65535) = round(v/257) (never a tie)."""
    return np.array([round(Fraction(int(v), 257)) for v in a.ravel()], dtype=np.uint8).reshape(
        a.shape
    )


def to16(a: np.ndarray) -> np.ndarray:
    """8 → 16 bits: v·257 maps 0..255 onto 0..65535."""
    return (a.astype(np.uint32) * 257).astype(np.uint16)


def luma_exact(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601-2 luma (Pillow's documented L = R·299/1000 + G·587/1000 + B·114/1000) as
    exact rationals, H×W."""
    flat = rgb.reshape(-1, 3).tolist()
    vals = [Fraction(299 * r + 587 * g + 114 * b, 1000) for r, g, b in flat]
    return np.array(vals, dtype=object).reshape(rgb.shape[:2])


def round_half_up(x: np.ndarray) -> np.ndarray:
    return np.array([int(v + Fraction(1, 2)) for v in x.ravel()], dtype=np.int64).reshape(x.shape)


def pil_array(arr: np.ndarray, mode: str | None = None, convert: str | None = None) -> np.ndarray:
    im = Image.fromarray(arr, mode) if mode else Image.fromarray(arr)
    out = np.asarray(im.convert(convert) if convert else im)
    return out[..., None] if out.ndim == 2 else out


def save_png16(path: Path, arr: np.ndarray, mode: str, exif_orientation: int | None = None) -> None:
    """Write an H×W×C uint16 array with pypng (``mode`` e.g. 'RGB;16'); optionally an eXIf chunk."""
    h = arr.shape[0]
    buf = io.BytesIO()
    png.from_array(arr.reshape(h, -1).tolist(), mode).write(buf)
    if exif_orientation is None:
        path.write_bytes(buf.getvalue())
        return
    exif = Image.Exif()
    exif[0x0112] = exif_orientation
    payload = exif.tobytes()
    payload = payload[6:] if payload.startswith(b"Exif\x00\x00") else payload
    chunks = []
    for kind, data in png.Reader(bytes=buf.getvalue()).chunks():
        if kind == b"IDAT" and not any(k == b"eXIf" for k, _ in chunks):
            chunks.append((b"eXIf", payload))
        chunks.append((kind, data))
    with open(path, "wb") as fh:
        png.write_chunks(fh, chunks)


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Every fixture file and the array it was made from (non-square, to catch transposes)."""
    d = tmp_path_factory.mktemp("decode")
    rng = np.random.default_rng(2024)
    f: dict = {"dir": d}

    rgb = rng.integers(0, 256, (7, 5, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(d / "rgb.png")
    f["rgb"] = rgb

    gray = rng.integers(0, 256, (6, 9), dtype=np.uint8)
    Image.fromarray(gray).save(d / "gray.png")
    f["gray"] = gray[..., None]

    idx = rng.integers(0, 4, (5, 8), dtype=np.uint8)
    idx[0, 0], idx[-1, -1] = 2, 0  # both the transparent entry and an opaque one occur
    pal = Image.fromarray(idx, "P")
    pal.putpalette(PALETTE.ravel().tolist())
    pal.save(d / "palette.png", transparency=2)
    f["palette_idx"] = idx

    rgba = rng.integers(0, 256, (4, 6, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(d / "rgba.png")
    f["rgba"] = rgba

    cmyk = rng.integers(0, 256, (16, 12, 4), dtype=np.uint8)
    Image.fromarray(cmyk, "CMYK").save(d / "cmyk.jpg", quality=95)

    g16 = rng.integers(0, 65536, (6, 4), dtype=np.uint16)
    g16[0, 0], g16[0, 1] = 0, 65535
    Image.fromarray(g16).save(d / "gray16.png")
    f["gray16"] = g16[..., None]

    rgb16 = rng.integers(0, 65536, (5, 3, 3), dtype=np.uint16)
    rgb16[0, 0] = (0, 65535, 257)
    rgb16[0, 1] = (1, 255, 256)  # values that only differ in the low byte
    save_png16(d / "rgb16.png", rgb16, "RGB;16")
    f["rgb16"] = rgb16

    rgba16 = rng.integers(0, 65536, (3, 4, 4), dtype=np.uint16)
    save_png16(d / "rgba16.png", rgba16, "RGBA;16")
    f["rgba16"] = rgba16

    la16 = rng.integers(0, 65536, (4, 3, 2), dtype=np.uint16)
    save_png16(d / "la16.png", la16, "LA;16")
    f["la16"] = la16

    ffloat = rng.random((5, 7), dtype=np.float32)
    Image.fromarray(ffloat, "F").save(d / "float.tif")
    f["float"] = ffloat[..., None]
    fnan = ffloat.copy()
    fnan[2, 3] = np.nan
    Image.fromarray(fnan, "F").save(d / "float_nan.tif")

    i32 = rng.integers(0, 65536, (4, 5)).astype(np.int32)
    Image.fromarray(i32, "I").save(d / "int32.tif")
    f["int32"] = i32[..., None]
    Image.fromarray(np.array([[0, 70000]], dtype=np.int32), "I").save(d / "int32_wide.tif")

    Image.fromarray(rgb).save(d / "good.jpg", quality=90)
    data = (d / "good.jpg").read_bytes()
    (d / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (d / "x.png").write_bytes(b"")
    (d / "notes.png").write_text("these are not pixels\n")
    (d / "labels.csv").write_text("file,label\na.png,cat\n")
    Image.fromarray(np.full((100, 100), 7, dtype=np.uint8)).save(d / "big.png")
    Image.fromarray(np.full((40, 40), 7, dtype=np.uint8)).save(d / "mid.png")
    return f


def dec(fx: dict, name: str, mode: str, max_pixels: int | None = None) -> np.ndarray:
    out = decode(str(fx["dir"] / name), MODES[mode], max_pixels)
    assert isinstance(out, Decoded), out
    assert out.pixels.dtype == np.dtype(MODES[mode].dtype)
    assert out.pixels.ndim == 3
    return out.pixels


def skipped(fx: dict, name: str, mode: str = "RGB", max_pixels: int | None = None) -> Skipped:
    path = str(fx["dir"] / name)
    out = decode(path, MODES[mode], max_pixels)
    assert isinstance(out, Skipped), out
    assert out.path == path
    assert out.reason
    return out


# ---------------------------------------------------------------- 8-bit sources


def test_rgb_png_to_every_rgb_mode(fx: dict) -> None:
    rgb = fx["rgb"]
    out = decode(str(fx["dir"] / "rgb.png"), MODES["RGB"], None)
    assert isinstance(out, Decoded)
    assert out.native == "RGB"
    np.testing.assert_array_equal(out.pixels, rgb)
    np.testing.assert_array_equal(dec(fx, "rgb.png", "RGB;16"), to16(rgb))
    alpha = np.full((*rgb.shape[:2], 1), 255, dtype=np.uint8)
    np.testing.assert_array_equal(dec(fx, "rgb.png", "RGBA"), np.concatenate([rgb, alpha], 2))


def test_rgb_png_to_gray_modes_uses_pillow_luma(fx: dict) -> None:
    luma = pil_array(fx["rgb"], convert="L")  # torchvision's loader converts with Pillow
    np.testing.assert_array_equal(dec(fx, "rgb.png", "L"), luma)
    np.testing.assert_array_equal(dec(fx, "rgb.png", "I;16"), to16(luma))
    got = dec(fx, "rgb.png", "F")
    np.testing.assert_allclose(got, luma.astype(np.float64) / 255, rtol=1e-7, atol=0)


def test_gray_png_replicates_into_rgb(fx: dict) -> None:
    g = fx["gray"]
    np.testing.assert_array_equal(dec(fx, "gray.png", "L"), g)
    np.testing.assert_array_equal(dec(fx, "gray.png", "RGB"), np.repeat(g, 3, axis=2))
    np.testing.assert_array_equal(dec(fx, "gray.png", "I;16"), to16(g))
    np.testing.assert_array_equal(dec(fx, "gray.png", "RGB;16"), to16(np.repeat(g, 3, axis=2)))
    np.testing.assert_allclose(dec(fx, "gray.png", "F"), g / 255.0, rtol=1e-7, atol=0)
    assert probe(str(fx["dir"] / "gray.png"), None, False) == Probe("L", "L")


def test_palette_png_with_transparency(fx: dict) -> None:
    idx = fx["palette_idx"]
    out = decode(str(fx["dir"] / "palette.png"), MODES["RGB"], None)
    assert isinstance(out, Decoded)
    assert out.native == "P"
    np.testing.assert_array_equal(out.pixels, PALETTE[idx])
    rgba = dec(fx, "palette.png", "RGBA")
    np.testing.assert_array_equal(rgba[..., :3], PALETTE[idx])
    np.testing.assert_array_equal(rgba[..., 3], np.where(idx == 2, 0, 255))
    path = str(fx["dir"] / "palette.png")
    assert probe(path, None, keep_alpha=False) == Probe("P", "RGB")
    assert probe(path, None, keep_alpha=True) == Probe("P", "RGBA")


def test_rgba_png_drops_or_keeps_alpha(fx: dict) -> None:
    rgba = fx["rgba"]
    np.testing.assert_array_equal(dec(fx, "rgba.png", "RGB"), rgba[..., :3])
    np.testing.assert_array_equal(dec(fx, "rgba.png", "RGBA"), rgba)
    np.testing.assert_array_equal(dec(fx, "rgba.png", "RGB;16"), to16(rgba[..., :3]))
    path = str(fx["dir"] / "rgba.png")
    assert probe(path, None, keep_alpha=False) == Probe("RGBA", "RGB")
    assert probe(path, None, keep_alpha=True) == Probe("RGBA", "RGBA")


def test_cmyk_jpeg_is_converted_like_pillow(fx: dict) -> None:
    path = fx["dir"] / "cmyk.jpg"
    out = decode(str(path), MODES["RGB"], None)
    assert isinstance(out, Decoded)
    assert out.native == "CMYK"
    with Image.open(path) as im:
        expected = np.asarray(im.convert("RGB"))
    np.testing.assert_array_equal(out.pixels, expected)
    assert out.pixels.shape == (16, 12, 3)
    assert probe(str(path), None, False) == Probe("CMYK", "RGB")


# ---------------------------------------------------------------- 16-bit sources


def test_gray16_png_exact_and_rounded(fx: dict) -> None:
    g = fx["gray16"]
    out = decode(str(fx["dir"] / "gray16.png"), MODES["I;16"], None)
    assert isinstance(out, Decoded)
    assert out.native.startswith("I;16")
    np.testing.assert_array_equal(out.pixels, g)
    np.testing.assert_array_equal(dec(fx, "gray16.png", "RGB;16"), np.repeat(g, 3, axis=2))
    np.testing.assert_array_equal(dec(fx, "gray16.png", "L"), to8(g))
    np.testing.assert_array_equal(dec(fx, "gray16.png", "RGB"), np.repeat(to8(g), 3, axis=2))
    np.testing.assert_allclose(dec(fx, "gray16.png", "F"), g / 65535.0, rtol=1e-7, atol=0)
    assert probe(str(fx["dir"] / "gray16.png"), None, False).canonical == "I;16"


def test_rgb16_png_round_trips_every_16_bit_value(fx: dict) -> None:
    a = fx["rgb16"]
    out = decode(str(fx["dir"] / "rgb16.png"), MODES["RGB;16"], None)
    assert isinstance(out, Decoded)
    np.testing.assert_array_equal(out.pixels, a)
    assert (out.pixels & 0xFF).any()  # not the high byte repeated: no truncation to 8 bits
    assert out.pixels[0, 1].tolist() == [1, 255, 256]
    assert probe(str(fx["dir"] / "rgb16.png"), None, False) == Probe("RGB", "RGB;16")


def test_rgb16_png_to_8_bit_rounds(fx: dict) -> None:
    a = fx["rgb16"]
    np.testing.assert_array_equal(dec(fx, "rgb16.png", "RGB"), to8(a))
    # (v·255 + 32767) // 65535, the documented formula, agrees with exact rounding.
    assert to8(np.array([0, 128, 129, 385, 386, 65535], dtype=np.uint16)).tolist() == [
        (v * 255 + 32767) // 65535 for v in (0, 128, 129, 385, 386, 65535)
    ]


def test_rgb16_png_to_gray_modes_uses_exact_luma(fx: dict) -> None:
    a = fx["rgb16"]
    luma = luma_exact(a)
    np.testing.assert_array_equal(dec(fx, "rgb16.png", "I;16")[..., 0], round_half_up(luma))
    as8 = dec(fx, "rgb16.png", "L")[..., 0].astype(np.int64)
    exact8 = round_half_up(luma / 257)
    assert np.abs(as8 - exact8).max() <= 1  # one rounding to 16 bits, one to 8
    f = dec(fx, "rgb16.png", "F")[..., 0].astype(np.float64)
    np.testing.assert_allclose(f, (luma / 65535).astype(np.float64), rtol=0, atol=1e-5)


def test_rgba16_png_keeps_colour_exactly(fx: dict) -> None:
    a = fx["rgba16"]
    np.testing.assert_array_equal(dec(fx, "rgba16.png", "RGB;16"), a[..., :3])
    np.testing.assert_array_equal(dec(fx, "rgba16.png", "RGB"), to8(a[..., :3]))
    assert probe(str(fx["dir"] / "rgba16.png"), None, False).canonical == "RGB;16"


def test_gray_alpha16_png_reads_the_gray_plane(fx: dict) -> None:
    a = fx["la16"]
    np.testing.assert_array_equal(dec(fx, "la16.png", "I;16"), a[..., :1])
    np.testing.assert_array_equal(dec(fx, "la16.png", "L"), to8(a[..., :1]))


def test_gray_alpha16_png_probes_as_gray(fx: dict) -> None:
    """A 16-bit grey+alpha PNG (Pillow opens it as mode 'RGBA', rawmode 'LA;16B') holds one grey
    plane: its lossless dataset mode is I;16, not RGB;16 (three copies of one channel)."""
    result = probe(str(fx["dir"] / "la16.png"), None, False)
    assert isinstance(result, Probe)
    assert result.canonical == "I;16"


def test_float_tiff(fx: dict) -> None:
    np.testing.assert_array_equal(dec(fx, "float.tif", "F"), fx["float"])
    head = probe(str(fx["dir"] / "float.tif"), None, False)
    assert (head.native, head.canonical) == ("F", "F")
    assert "float" in skipped(fx, "float.tif", "RGB").reason
    assert "non-finite" in skipped(fx, "float_nan.tif", "F").reason


def test_int32_tiff(fx: dict) -> None:
    """32-bit integer TIFFs are float data held exactly (float64), whatever their range: not
    16-bit images (the TIFF reader; Pillow read them as I;16 when they fitted)."""
    out = decode(str(fx["dir"] / "int32_wide.tif"), MODES["F"], None)
    assert isinstance(out, Decoded) and out.pixels.dtype == np.float64
    assert out.pixels[..., 0].tolist() == [[0.0, 70000.0]]
    head = probe(str(fx["dir"] / "int32.tif"), None, False)
    assert (head.native, head.canonical) == ("F(int32)", "F")
    assert "float" in skipped(fx, "int32.tif", "I;16").reason


# ---------------------------------------------------------------- the contract for every target


CASES = [
    "rgb.png",
    "gray.png",
    "palette.png",
    "rgba.png",
    "cmyk.jpg",
    "gray16.png",
    "rgb16.png",
    "rgba16.png",
    "la16.png",
]  # int32.tif is float data now (test_int32_tiff): no integer targets


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("name", CASES)
def test_decoded_matches_target_dtype_and_channels(fx: dict, name: str, mode: str) -> None:
    """Whatever the source, a Decoded array has the target's dtype and one plane per channel."""
    out = decode(str(fx["dir"] / name), MODES[mode], None)
    assert isinstance(out, Decoded), out
    assert out.pixels.dtype == np.dtype(MODES[mode].dtype)
    assert out.pixels.shape[2] == len(MODES[mode].channels), out.pixels.shape


def test_alpha_targets_from_16_bit_sources(fx: dict) -> None:
    """RGBA/LA datasets (--alpha keep) fed a 16-bit PNG: the alpha plane must be there, kept
    (rounded to 8 bits) when the source has one, opaque (255) when it has none."""
    rgba16 = fx["rgba16"]
    np.testing.assert_array_equal(dec(fx, "rgba16.png", "RGBA"), to8(rgba16))
    la16 = fx["la16"]
    np.testing.assert_array_equal(dec(fx, "la16.png", "LA"), to8(la16))
    g = fx["gray16"]
    opaque = np.full(g.shape, 255, dtype=np.uint8)
    np.testing.assert_array_equal(
        dec(fx, "gray16.png", "RGBA"), np.concatenate([np.repeat(to8(g), 3, axis=2), opaque], 2)
    )


# ---------------------------------------------------------------- bad files


def test_truncated_jpeg_is_skipped(fx: dict) -> None:
    for mode in ("RGB", "L", "I;16", "F"):
        reason = skipped(fx, "truncated.jpg", mode).reason
        assert reason.startswith("unreadable")
        assert "truncated" in reason.lower()


@pytest.mark.parametrize("name", ["x.png", "notes.png"])
def test_non_image_named_like_an_image_is_skipped(fx: dict, name: str) -> None:
    path = str(fx["dir"] / name)
    result = probe(path, None, False)
    assert isinstance(result, Skipped)
    assert result.path == path
    assert "not an image" in result.reason
    assert "not an image" in skipped(fx, name).reason


def test_non_image_without_image_extension_is_ignored_by_probe(fx: dict) -> None:
    assert probe(str(fx["dir"] / "labels.csv"), None, False) is None
    assert probe(str(fx["dir"] / "labels.csv"), None, True) is None


def test_missing_file_and_directory_are_skipped_not_raised(fx: dict) -> None:
    for path in (fx["dir"] / "absent.png", fx["dir"]):
        out = decode(str(path), MODES["RGB"], None)
        assert isinstance(out, Skipped)
        assert out.reason.startswith("unreadable")
        assert isinstance(probe(str(path), None, False), Skipped)


@pytest.mark.parametrize(("name", "pixels"), [("big.png", 10_000), ("mid.png", 1_600)])
def test_decompression_bomb_is_skipped(fx: dict, name: str, pixels: int) -> None:
    """Over the limit (1 000 px) is skipped whether or not Pillow's own 2x error threshold is
    reached; the reason names the image's size and the configured limit (not Pillow's 2x)."""
    path = str(fx["dir"] / name)
    reasons = [skipped(fx, name, mode, max_pixels=1000).reason for mode in ("L", "RGB", "I;16")]
    result = probe(path, 1000, False)
    assert isinstance(result, Skipped)
    for reason in [*reasons, result.reason]:
        assert "decompression bomb" in reason
        numbers = re.findall(r"\d+", reason)
        assert str(pixels) in numbers
        assert "1000" in numbers
        assert "2000" not in numbers


def test_images_under_the_limit_or_without_one_decode(fx: dict) -> None:
    np.testing.assert_array_equal(
        dec(fx, "big.png", "L", max_pixels=20_000), np.full((100, 100, 1), 7)
    )
    np.testing.assert_array_equal(
        dec(fx, "big.png", "L", max_pixels=None), np.full((100, 100, 1), 7)
    )
    assert probe(str(fx["dir"] / "big.png"), 20_000, False) == Probe("L", "L")


def test_decode_leaves_pillows_global_limit_alone(fx: dict) -> None:
    """A library call must not change process-wide Pillow state: after decode(max_pixels=None)
    every other Image.open in the process would run without decompression-bomb protection."""
    before = Image.MAX_IMAGE_PIXELS
    decode(str(fx["dir"] / "rgb.png"), MODES["RGB"], None)
    probe(str(fx["dir"] / "rgb.png"), 1000, False)
    decode(str(fx["dir"] / "rgb.png"), MODES["RGB"], 1000)
    assert before == Image.MAX_IMAGE_PIXELS


# ---------------------------------------------------------------- EXIF orientation


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_png(tmp_path: Path, orientation: int) -> None:
    base = np.random.default_rng(orientation).integers(0, 256, (3, 5, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.png"
    Image.fromarray(base).save(path, exif=exif)
    out = decode(str(path), MODES["RGB"], None)
    assert isinstance(out, Decoded)
    with Image.open(path) as im:
        expected = np.asarray(ImageOps.exif_transpose(im))
    assert out.pixels.shape == expected.shape
    np.testing.assert_array_equal(out.pixels, expected)


def test_exif_orientation_6_jpeg(tmp_path: Path) -> None:
    base = np.random.default_rng(6).integers(0, 256, (8, 16, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "o6.jpg"
    Image.fromarray(base).save(path, exif=exif, quality=95)
    out = decode(str(path), MODES["RGB"], None)
    assert isinstance(out, Decoded)
    with Image.open(path) as im:
        expected = np.asarray(ImageOps.exif_transpose(im))
    assert out.pixels.shape == (16, 8, 3)
    np.testing.assert_array_equal(out.pixels, expected)


def test_exif_orientation_16_bit_gray_png(tmp_path: Path) -> None:
    g = np.random.default_rng(16).integers(0, 65536, (3, 5), dtype=np.uint16)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "g16o6.png"
    Image.fromarray(g).save(path, exif=exif)
    out = decode(str(path), MODES["I;16"], None)
    assert isinstance(out, Decoded)
    np.testing.assert_array_equal(out.pixels[..., 0], np.rot90(g, -1))  # 6: 90° clockwise


def test_exif_orientation_16_bit_rgb_png(tmp_path: Path) -> None:
    """The exact 16-bit reader must apply the orientation too."""
    a = np.random.default_rng(61).integers(0, 65536, (3, 5, 3), dtype=np.uint16)
    path = tmp_path / "rgb16o6.png"
    save_png16(path, a, "RGB;16", exif_orientation=6)
    out = decode(str(path), MODES["RGB;16"], None)
    assert isinstance(out, Decoded)
    np.testing.assert_array_equal(out.pixels, np.rot90(a, -1))
    with Image.open(path) as im:  # Pillow's own (8-bit, high byte) view, oriented by Pillow
        high = np.asarray(ImageOps.exif_transpose(im))
    np.testing.assert_array_equal(out.pixels >> 8, high)


# ---------------------------------------------------------------- the odd-images corpus

needs_corpus = pytest.mark.skipif(not ODD_IMAGES.is_dir(), reason="odd-images corpus absent")


@needs_corpus
def test_odd_images_never_raise() -> None:
    files = sorted(p for p in ODD_IMAGES.iterdir() if p.is_file())
    assert files
    for path in files:
        for keep_alpha in (False, True):
            t0 = time.perf_counter()
            result = probe(str(path), DEFAULT_MAX_PIXELS, keep_alpha)
            assert time.perf_counter() - t0 < 5, path.name
            assert result is None or isinstance(result, Probe | Skipped), path.name
        for mode in ("RGB", "L", "I;16", "F"):
            target = MODES[mode]
            t0 = time.perf_counter()
            out = decode(str(path), target, DEFAULT_MAX_PIXELS)
            assert time.perf_counter() - t0 < 5, (path.name, mode)
            assert isinstance(out, Decoded | Skipped), (path.name, mode)
            if isinstance(out, Decoded):
                assert out.pixels.dtype == np.dtype(target.dtype), (path.name, mode)
                assert out.pixels.ndim == 3
                assert out.pixels.shape[2] == len(target.channels), (path.name, mode)
                assert out.pixels.size > 0
            else:
                assert out.path == str(path)
                assert out.reason


@needs_corpus
@pytest.mark.parametrize("name", KNOWN_BAD)
def test_known_bad_corpus_files_are_skipped(name: str) -> None:
    path = ODD_IMAGES / name
    if not path.exists():
        pytest.skip(f"{name} not in corpus")
    for mode in ("RGB", "L", "I;16", "F"):
        out = decode(str(path), MODES[mode], DEFAULT_MAX_PIXELS)
        assert isinstance(out, Skipped), (name, mode)
    if name == "decompression_bomb.gif":
        assert "decompression bomb" in out.reason


@needs_corpus
@pytest.mark.parametrize(
    "name", ["hopper_orientation_6.jpg", "exif_imagemagick_orientation.png", "hopper.png"]
)
def test_corpus_orientation_matches_exif_transpose(name: str) -> None:
    path = ODD_IMAGES / name
    if not path.exists():
        pytest.skip(f"{name} not in corpus")
    out = decode(str(path), MODES["RGB"], DEFAULT_MAX_PIXELS)
    assert isinstance(out, Decoded)
    with Image.open(path) as im:
        expected = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    np.testing.assert_array_equal(out.pixels, expected)
