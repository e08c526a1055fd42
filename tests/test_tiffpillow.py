"""TIFFs on an install without the ``formats`` extra (tifffile made unimportable): those Pillow
reads exactly are read, with the written arrays' pixels and the TIFF reader's, the others are
skipped with the pip install that reads them."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from normstat.modes import get_mode
from normstat.options import ReadOptions
from normstat.readers import Decoded, Skipped, reader_for, registry

tifffile = pytest.importorskip("tifffile", reason="pip install 'normstat[formats]'")

OPTS = ReadOptions()
HINT = "tiff files need tifffile; pip install 'normstat[formats]'"
RNG = np.random.default_rng(99)


def _tiff(arr: np.ndarray, **kw: Any) -> bytes:
    buf = io.BytesIO()
    tifffile.imwrite(buf, arr, **kw)
    return buf.getvalue()


def _u8(*shape: int) -> np.ndarray:
    arr = RNG.integers(0, 256, shape, dtype=np.uint8)
    arr.reshape(-1)[:2] = (0, 255)
    return arr


def _read(data: bytes, mode: str) -> Decoded | Skipped:
    reader = reader_for(data[:16])
    assert reader.name == "tiff"
    probe = reader.probe(io.BytesIO(data), "x.tif", OPTS)
    if isinstance(probe, Skipped):
        return probe
    (out,) = reader.read(io.BytesIO(data), "x.tif", get_mode(mode), OPTS)
    return out


@pytest.fixture
def core_install(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(sys.modules, "tifffile", None)  # import tifffile fails
    monkeypatch.delitem(sys.modules, "normstat.readers.tiff", raising=False)
    monkeypatch.delitem(registry._loaded, "tiff", raising=False)
    yield
    registry._loaded.pop("tiff", None)


RGB = _u8(5, 7, 3)
GREY = _u8(6, 4)
RGBA = _u8(3, 5, 4)
GREY16 = RNG.integers(0, 65536, (4, 9), dtype=np.uint16)
GREY16.reshape(-1)[:3] = (0, 65535, 256)

READ = {  # name: (file, dataset mode, expected pixels H×W×C)
    "rgb": (_tiff(RGB), "RGB", RGB),
    "rgb_lzw_planar": (
        _tiff(np.moveaxis(RGB, 2, 0), photometric="rgb", planarconfig="separate",
              compression="lzw"),
        "RGB", RGB,
    ),
    "rgb_big_endian": (_tiff(RGB, byteorder=">"), "RGB", RGB),
    "rgb_bigtiff": (_tiff(RGB, bigtiff=True), "RGB", RGB),
    "grey": (_tiff(GREY), "L", GREY[..., None]),
    "rgba": (_tiff(RGBA, extrasamples=["unassalpha"]), "RGBA", RGBA),
    "grey16": (_tiff(GREY16), "I;16", GREY16[..., None]),
    "grey16_deflate": (_tiff(GREY16, compression="zlib", predictor=True), "I;16",
                       GREY16[..., None]),
    "rgb_orientation_6": (
        _tiff(RGB, extratags=[(274, "H", 1, 6, True)]), "RGB", np.rot90(RGB, k=-1)
    ),
}  # fmt: skip

REFUSED = {  # name: (file, what the reason names before the hint)
    "five_bands": (
        _tiff(_u8(4, 4, 5), photometric="minisblack", planarconfig="contig"),
        "TIFF of 5 8-bit unsigned samples per pixel",
    ),
    "rgb16": (_tiff(RNG.integers(0, 65536, (4, 4, 3), dtype=np.uint16)),
              "TIFF of 3 16-bit unsigned samples per pixel"),
    "pages": (_tiff(_u8(3, 4, 5), photometric="minisblack"), "TIFF of several pages"),
    "float": (_tiff(np.ones((4, 4), np.float32)), "TIFF of 1 32-bit float samples per pixel"),
    "int16": (_tiff(np.ones((4, 4), np.int16)), "TIFF of 1 16-bit signed samples per pixel"),
    "rgb_unspecified_extra": (
        _tiff(_u8(4, 4, 4), photometric="rgb", extrasamples=["unspecified"]),
        "TIFF of 4 8-bit unsigned samples per pixel",
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(READ))
def test_pillow_reads_the_exact_kinds(name: str, core_install: None) -> None:
    data, mode, want = READ[name]
    out = _read(data, mode)
    assert isinstance(out, Decoded), out
    np.testing.assert_array_equal(out.pixels, want)


@pytest.mark.parametrize("name", sorted(READ))
def test_the_tiff_reader_gives_the_same_pixels(name: str) -> None:
    data, mode, want = READ[name]
    out = _read(data, mode)
    assert isinstance(out, Decoded), out
    np.testing.assert_array_equal(out.pixels, want)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_other_kinds_are_skipped_with_the_pip_hint(name: str, core_install: None) -> None:
    data, what = REFUSED[name]
    reader = reader_for(data[:16])
    assert reader.probe(io.BytesIO(data), "x.tif", OPTS) == Skipped("x.tif", f"{what}: {HINT}")
    for mode in ("RGB", "L", "I;16"):
        assert _read(data, mode) == Skipped("x.tif", f"{what}: {HINT}")
        pair = reader.load(io.BytesIO(data), "x.tif", get_mode(mode), OPTS)
        assert pair == (Skipped("x.tif", f"{what}: {HINT}"),) * 2


def test_bomb_limit_still_applies(core_install: None) -> None:
    data = READ["rgb"][0]
    reader = reader_for(data[:16])
    skip = reader.probe(io.BytesIO(data), "x.tif", ReadOptions(max_pixels=34))
    assert isinstance(skip, Skipped) and "decompression bomb" in skip.reason
