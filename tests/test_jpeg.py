"""The JPEG fast path gives exactly Pillow's pixels, or steps aside: every layout it takes is
compared with a pure-Pillow reference, and every layout it must refuse is checked to go through
Pillow (with Pillow's skip reasons)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from normstat import jpeg
from normstat.decode import Decoded, Probe, Skipped, decode, load
from normstat.modes import MODES


def photo(h: int = 61, w: int = 83, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 3, y * 4, (x + y) * 2], axis=2) + rng.normal(0, 25, (h, w, 3))
    return Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")


def pillow_reference(path: Path, mode: str) -> np.ndarray:
    with Image.open(path) as im:
        arr = np.asarray(ImageOps.exif_transpose(im).convert(mode))
    return arr[..., None] if arr.ndim == 2 else arr


def save(path: Path, image: Image.Image, **kwargs) -> Path:
    image.save(path, "JPEG", **kwargs)
    return path


def took_fast_path(path: Path, target: str) -> bool:
    with open(path, "rb") as fh:
        return jpeg.read(fh, target, None) is not None


LAYOUTS = {
    "420": {"subsampling": 2},
    "422": {"subsampling": 1},
    "444": {"subsampling": 0, "quality": 97},
    "progressive": {"progressive": True},
    "optimized-q60": {"optimize": True, "quality": 60},
}


@pytest.mark.parametrize("target", ["RGB", "L"])
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("size", [(61, 83), (1, 1), (17, 2), (256, 9)])
def test_fast_path_matches_pillow(tmp_path: Path, layout: str, size: tuple[int, int], target: str):
    path = save(tmp_path / "a.jpg", photo(*size), **LAYOUTS[layout])
    assert took_fast_path(path, target)
    dec = decode(str(path), MODES[target], None)
    assert isinstance(dec, Decoded) and dec.native == "RGB"
    np.testing.assert_array_equal(dec.pixels, pillow_reference(path, target))
    assert dec.image is not None and np.array_equal(
        np.asarray(dec.image).reshape(dec.pixels.shape), dec.pixels
    )


@pytest.mark.parametrize("target", ["RGB", "L"])
def test_grayscale_jpeg_matches_pillow(tmp_path: Path, target: str) -> None:
    path = save(tmp_path / "g.jpg", photo().convert("L"), quality=90)
    assert took_fast_path(path, target)
    dec = decode(str(path), MODES[target], None)
    assert isinstance(dec, Decoded) and dec.native == "L"
    np.testing.assert_array_equal(dec.pixels, pillow_reference(path, target))
    assert load(str(path), None, None, False)[0] == Probe("L", "L")


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_pillow_does(tmp_path: Path, orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "normstat"  # a second tag, so the block is more than orientation alone
    path = save(tmp_path / "o.jpg", photo(), exif=exif.tobytes())
    assert took_fast_path(path, "RGB")
    dec = decode(str(path), MODES["RGB"], None)
    assert isinstance(dec, Decoded)
    np.testing.assert_array_equal(dec.pixels, pillow_reference(path, "RGB"))


def with_segment(data: bytes, marker: int, payload: bytes) -> bytes:
    segment = bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload
    return data[:2] + segment + data[2:]


def test_xmp_segment_goes_through_pillow(tmp_path: Path) -> None:
    """Pillow may take orientation from XMP; the fast path does not read XMP, so it steps aside."""
    buf = io.BytesIO()
    photo().save(buf, "JPEG")
    xmp = b'http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta><rdf:Description tiff:Orientation="6"/>'
    path = tmp_path / "x.jpg"
    path.write_bytes(with_segment(buf.getvalue(), 0xE1, xmp + b"</x:xmpmeta>"))
    assert not took_fast_path(path, "RGB")
    dec = decode(str(path), MODES["RGB"], None)
    assert isinstance(dec, Decoded)
    np.testing.assert_array_equal(dec.pixels, pillow_reference(path, "RGB"))


def test_cmyk_goes_through_pillow(tmp_path: Path) -> None:
    path = save(tmp_path / "c.jpg", photo().convert("CMYK"))
    assert not took_fast_path(path, "RGB")
    dec = decode(str(path), MODES["RGB"], None)
    assert isinstance(dec, Decoded) and dec.native == "CMYK"
    np.testing.assert_array_equal(dec.pixels, pillow_reference(path, "RGB"))


@pytest.mark.parametrize("target", ["RGBA", "LA", "RGB;16", "I;16", "F"])
def test_other_targets_go_through_pillow(tmp_path: Path, target: str) -> None:
    path = save(tmp_path / "a.jpg", photo())
    assert not took_fast_path(path, target)


def test_truncated_jpeg_gets_pillows_reason(tmp_path: Path) -> None:
    buf = io.BytesIO()
    photo().save(buf, "JPEG")
    path = tmp_path / "t.jpg"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    assert not took_fast_path(path, "RGB")
    dec = decode(str(path), MODES["RGB"], None)
    assert isinstance(dec, Skipped) and "image file is truncated" in dec.reason


def test_bomb_limit_applies_to_fast_path(tmp_path: Path) -> None:
    path = save(tmp_path / "big.jpg", photo(40, 50))
    dec = decode(str(path), MODES["RGB"], 1000)
    assert isinstance(dec, Skipped) and dec.reason.startswith("decompression bomb: 2000 pixels")


def test_a_decoder_that_disagrees_turns_the_fast_path_off(tmp_path, monkeypatch) -> None:
    sj = jpeg._simplejpeg()
    real = sj.decode_jpeg

    def off_by_one(data, **kwargs):
        out = real(data, **kwargs).copy()
        out[0, 0, 0] ^= 1
        return out

    monkeypatch.setattr(sj, "decode_jpeg", off_by_one)
    jpeg.available.cache_clear()
    try:
        assert not jpeg.available()
        path = save(tmp_path / "a.jpg", photo())
        assert not took_fast_path(path, "RGB")
        dec = decode(str(path), MODES["RGB"], None)
        assert isinstance(dec, Decoded)
        np.testing.assert_array_equal(dec.pixels, pillow_reference(path, "RGB"))
    finally:
        monkeypatch.undo()
        jpeg.available.cache_clear()
    assert jpeg.available()
