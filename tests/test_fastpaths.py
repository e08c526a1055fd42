"""The JPEG and PNG fast paths give exactly Pillow's pixels, or step aside: every layout they
take is compared with a pure-Pillow reference, every layout they must refuse is checked to go
through Pillow (with Pillow's skip reasons), and the odd-images corpus gives the same outcome
for every file with and without them."""

from __future__ import annotations

import io
import zlib
from pathlib import Path

import numpy as np
import pytest
from helpers import decode, load
from PIL import Image, ImageOps

from normstat.modes import MODES
from normstat.readers import Decoded, Probe, Skipped, jpeg, png
from normstat.readers import pillow as decode_module


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
    return jpeg.read(path.read_bytes(), target, None) is not None


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


# ---------------------------------------------------------------- PNG


def png_bytes(arr: np.ndarray, **kwargs) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG", **kwargs)
    return buf.getvalue()


def png_took_fast_path(path: Path, target: str) -> bool:
    return png.read(path.read_bytes(), target, None) is not None


def with_chunk(data: bytes, kind: bytes, payload: bytes) -> bytes:
    """``data`` with a chunk inserted right after IHDR (8-byte signature + 25-byte IHDR)."""
    chunk = len(payload).to_bytes(4, "big") + kind + payload
    chunk += zlib.crc32(kind + payload).to_bytes(4, "big")
    return data[:33] + chunk + data[33:]


PLAIN_PNGS = {
    "rgb": (np.uint8, (23, 17, 3), ("RGB", "L")),
    "gray": (np.uint8, (9, 31), ("L", "RGB")),
    "gray16": (np.uint16, (12, 5), ("I;16",)),
}


@pytest.mark.parametrize("kind", sorted(PLAIN_PNGS))
def test_plain_pngs_match_pillow(tmp_path: Path, kind: str) -> None:
    dtype, shape, targets = PLAIN_PNGS[kind]
    rng = np.random.default_rng(3)
    arr = rng.integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)
    path = tmp_path / "p.png"
    path.write_bytes(png_bytes(arr))
    for target in targets:
        assert png_took_fast_path(path, target)
        dec = decode(str(path), MODES[target], None)
        assert isinstance(dec, Decoded)
        with Image.open(path) as im:
            assert dec.native == im.mode
            want = np.asarray(im if target == "I;16" else im.convert(target))
        np.testing.assert_array_equal(dec.pixels, want.reshape(dec.pixels.shape))
        assert dec.pixels.dtype == want.dtype


def test_gamma_chunk_does_not_change_samples(tmp_path: Path) -> None:
    arr = np.random.default_rng(4).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    path = tmp_path / "g.png"
    path.write_bytes(with_chunk(png_bytes(arr), b"gAMA", (100000).to_bytes(4, "big")))
    assert png_took_fast_path(path, "RGB")
    dec = decode(str(path), MODES["RGB"], None)
    assert isinstance(dec, Decoded)
    np.testing.assert_array_equal(dec.pixels, arr)


REFUSED = {
    "palette": lambda a: Image.fromarray(a).convert("P"),
    "rgba": lambda a: Image.fromarray(a).convert("RGBA"),
    "gray-alpha": lambda a: Image.fromarray(a).convert("LA"),
    "1-bit": lambda a: Image.fromarray(a).convert("1"),
}


@pytest.mark.parametrize("kind", sorted(REFUSED))
def test_other_png_layouts_go_through_pillow(tmp_path: Path, kind: str) -> None:
    arr = np.random.default_rng(5).integers(0, 256, (10, 12, 3), dtype=np.uint8)
    path = tmp_path / "r.png"
    REFUSED[kind](arr).save(path)
    assert not png_took_fast_path(path, "RGB")


@pytest.mark.parametrize("chunk", [b"tRNS", b"tEXt", b"eXIf"])
def test_pngs_with_chunks_pillow_interprets_go_through_pillow(tmp_path: Path, chunk: bytes):
    arr = np.random.default_rng(6).integers(0, 256, (10, 12), dtype=np.uint8)
    payload = {
        b"tRNS": (7).to_bytes(2, "big"),
        b"tEXt": b"Comment\x00hello",
        b"eXIf": b"MM\x00*\x00\x00\x00\x08\x00\x00",
    }[chunk]
    path = tmp_path / "c.png"
    path.write_bytes(with_chunk(png_bytes(arr), chunk, payload))
    assert not png_took_fast_path(path, "L")
    assert isinstance(decode(str(path), MODES["L"], None), Decoded)


def test_truncated_png_gets_pillows_reason(tmp_path: Path) -> None:
    arr = np.random.default_rng(7).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    data = png_bytes(arr)
    path = tmp_path / "t.png"
    path.write_bytes(data[: len(data) // 2])
    assert not png_took_fast_path(path, "RGB")
    dec = decode(str(path), MODES["RGB"], None)
    assert isinstance(dec, Skipped)
    with pytest.raises(OSError) as pillow:
        Image.open(path).load()
    assert str(pillow.value) in dec.reason


ODD_IMAGES = Path(__file__).resolve().parents[1].parent / "shared/corpora/odd-images"


@pytest.mark.skipif(not ODD_IMAGES.is_dir(), reason="shared/corpora/odd-images is not present")
@pytest.mark.parametrize("target", ["RGB", "L"])
def test_odd_images_same_outcome_with_and_without_fast_paths(monkeypatch, target: str) -> None:
    files = sorted(p for p in ODD_IMAGES.iterdir() if p.is_file())

    def outcomes() -> list[object]:
        out: list[object] = []
        for f in files:
            head, dec = load(str(f), MODES[target], 10_000_000, False)
            pixels = dec.pixels.tobytes() if isinstance(dec, Decoded) else dec
            out.append((head, pixels, getattr(dec, "native", None)))
        return out

    fast = outcomes()
    monkeypatch.setattr(decode_module, "_FAST", {})
    assert outcomes() == fast
