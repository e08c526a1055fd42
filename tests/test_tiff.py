"""The TIFF reader: values equal the arrays written (exact), the page rules, band names and
nodata, hostile files, bombs, the missing extra, and compute/apply on multi-band folders
against NumPy references computed here from the arrays written."""

from __future__ import annotations

import io
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

import normstat
from normstat.modes import band_mode, get_mode
from normstat.options import ReadOptions
from normstat.readers import Decoded, Skipped, reader_for, registry

tifffile = pytest.importorskip("tifffile", reason="pip install 'normstat[formats]'")

RNG = np.random.default_rng(42)
OPTS = ReadOptions()


def _tiff(arr: np.ndarray, **kw: Any) -> bytes:
    buf = io.BytesIO()
    tifffile.imwrite(buf, arr, **kw)
    return buf.getvalue()


def _read(data: bytes, mode: str | None = None, opts: ReadOptions = OPTS) -> list[Any]:
    reader = reader_for(data[:16])
    assert reader.name == "tiff"
    probe = reader.probe(io.BytesIO(data), "x.tif", opts)
    if isinstance(probe, Skipped):
        return [probe]
    target = get_mode(mode or probe.canonical)
    return list(reader.read(io.BytesIO(data), "x.tif", target, opts))


def _values(dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    """Adversarial values: the type's extremes and random ones (floats: tiny, huge, negative)."""
    dt = np.dtype(dtype)
    if dt.kind == "f":
        arr = (RNG.standard_normal(shape) * 1e4).astype(dt)
        arr.flat[:3] = [np.finfo(dt).max, np.finfo(dt).tiny, -np.finfo(dt).max]
    else:
        info = np.iinfo(dt)
        arr = RNG.integers(info.min, info.max, shape, dtype=dt, endpoint=True)
        arr.flat[:2] = [info.min, info.max]
    return arr


DTYPES = ["uint8", "int8", "uint16", "int16", "uint32", "int32", "float16", "float32", "float64"]
STORAGE = [
    {"compression": "zlib"},
    {"compression": "lzw", "predictor": True},
    {"compression": "zstd"},
    {"compression": "packbits"},
    {"tile": (16, 16), "compression": "zlib"},
    {"bigtiff": True},
    {"byteorder": ">"},
    {"rowsperstrip": 3},
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("planar", ["contig", "separate"])
@pytest.mark.parametrize("storage", STORAGE, ids=lambda s: "-".join(map(str, s.values())))
def test_every_value_is_the_one_written(dtype: str, planar: str, storage: dict) -> None:
    kw = dict(storage)
    if kw.get("compression") == "packbits" and np.dtype(dtype).itemsize > 1:
        kw["compression"] = "zlib"  # PackBits is for bytes
    if kw.get("predictor") and np.dtype(dtype).kind == "f":
        kw["predictor"] = 3  # floating-point predictor
    arr = _values(dtype, (5, 24, 37) if planar == "separate" else (24, 37, 5))
    data = _tiff(arr, photometric="minisblack", planarconfig=planar, **kw)
    (dec,) = _read(data)
    assert isinstance(dec, Decoded), dec
    want = arr.transpose(1, 2, 0) if planar == "separate" else arr
    exact = {"uint8": "uint8", "uint16": "uint16", "float32": "float32", "float64": "float64"}
    wide = "float64" if dtype in ("int32", "uint32") else "float32"
    assert dec.pixels.dtype == np.dtype(exact.get(dtype, wide))
    # exact: every stored value compared as a Python number, not through the reader's dtype
    assert dec.pixels.tolist() == want.astype(np.float64 if dtype != "uint8" else "u1").tolist()


def test_predictor_3_five_band_float32_is_exact() -> None:
    arr = RNG.standard_normal((31, 29, 5)).astype(np.float32) * np.float32(1e-3) + 1e5
    data = _tiff(arr, photometric="minisblack", compression="zlib", predictor=3)
    (dec,) = _read(data)
    assert dec.native == "B5;F" and np.array_equal(dec.pixels, arr)


def test_jpeg_tiff_values_are_libjpegs() -> None:
    arr = RNG.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    data = _tiff(arr, photometric="rgb", compression="jpeg")
    (dec,) = _read(data)
    assert np.array_equal(dec.pixels, tifffile.imread(io.BytesIO(data)))


# ---------------------------------------------------------------- pages


def test_tifffile_hwc_array_is_one_image_not_a_stack_of_rows() -> None:
    arr = RNG.integers(0, 65536, (64, 64, 5), dtype=np.uint16)
    out = _read(_tiff(arr))  # no photometric: tifffile writes 64 pages of 64×5
    assert len(out) == 1 and out[0].pixels.shape == (64, 64, 5)
    assert np.array_equal(out[0].pixels, arr)


def test_pages_of_one_shape_are_a_stack_named_by_index() -> None:
    arr = RNG.integers(0, 256, (6, 20, 30), dtype=np.uint8)
    data = _tiff(arr)
    out = _read(data)
    assert [o.pixels[..., 0].tolist() for o in out] == [a.tolist() for a in arr]
    reader = reader_for(data[:16])
    part = list(reader.read(io.BytesIO(data), "s.tif", get_mode("L"), OPTS, 4, 9))
    assert len(part) == 2 and np.array_equal(part[1].pixels[..., 0], arr[5])


def test_generic_multipage_file_is_a_stack() -> None:
    arr = RNG.integers(0, 65536, (3, 8, 9, 6), dtype=np.uint16)
    buf = io.BytesIO()
    with tifffile.TiffWriter(buf) as w:
        for page in arr:
            w.write(page, photometric="minisblack", planarconfig="contig", metadata=None)
    out = _read(buf.getvalue())
    assert len(out) == 3 and all(np.array_equal(o.pixels, a) for o, a in zip(out, arr, strict=True))


def test_ome_and_imagej_channels_are_the_bands_of_one_image() -> None:
    arr = RNG.integers(0, 65536, (5, 16, 12), dtype=np.uint16)
    (dec,) = _read(_tiff(arr, ome=True, metadata={"axes": "CYX"}))
    assert np.array_equal(dec.pixels, arr.transpose(1, 2, 0))
    hyper = RNG.integers(0, 65536, (3, 5, 16, 12), dtype=np.uint16)
    out = _read(_tiff(hyper, imagej=True, metadata={"axes": "ZCYX"}))
    assert len(out) == 3
    assert all(
        np.array_equal(o.pixels, h.transpose(1, 2, 0)) for o, h in zip(out, hyper, strict=True)
    )


def test_reduced_resolution_pages_never_contribute() -> None:
    full = RNG.integers(0, 256, (32, 32), dtype=np.uint8)
    buf = io.BytesIO()
    with tifffile.TiffWriter(buf) as w:
        w.write(full, metadata=None)
        w.write(full[::2, ::2], subfiletype=1, metadata=None)  # a reduced-resolution page
    (dec,) = _read(buf.getvalue())
    assert np.array_equal(dec.pixels[..., 0], full)


def _interleaved(arr: np.ndarray, reduced_after: Any) -> bytes:
    """``arr``'s images as pages, a reduced-resolution page after those ``reduced_after`` picks."""
    buf = io.BytesIO()
    with tifffile.TiffWriter(buf) as w:
        for i, page in enumerate(arr):
            w.write(page, metadata=None)
            if reduced_after(i):
                w.write(page[::2, ::2], subfiletype=1, metadata=None)
    return buf.getvalue()


def test_a_batch_reads_its_own_pages_and_refuses_a_file_changed_since_its_probe() -> None:
    """The probe keeps the indices of the image pages (a range when evenly spaced); a batch
    reads only its images' pages and checks each against the probe."""
    arr = RNG.integers(0, 256, (7, 16, 12), dtype=np.uint8)
    every, some = _interleaved(arr, lambda i: True), _interleaved(arr, lambda i: i % 2 == 0)
    fewer = _interleaved(arr[:3], lambda i: True)
    other = _interleaved(RNG.integers(0, 256, (7, 16, 13), dtype=np.uint8), lambda i: True)
    mode = get_mode("L")
    for data, pages in ((every, range(0, 14, 2)), (some, (0, 2, 3, 5, 6, 8, 9))):
        reader = reader_for(data[:16])
        probe = reader.probe(io.BytesIO(data), "s.tif", OPTS)
        assert probe.count == 7 and probe.layout.pages == pages
        pixels, reasons = reader.batch(io.BytesIO(data), probe, 2, 5, mode)
        assert reasons == [None] * 3 and np.array_equal(pixels[..., 0], arr[2:5])
        for changed in (fewer, other):
            assert reader.batch(io.BytesIO(changed), probe, 2, 5, mode) == (
                None,
                ["the file changed since it was probed"] * 3,
            )
    hyper = RNG.integers(0, 65536, (4, 5, 8, 6), dtype=np.uint16)  # 5 pages (bands) an image
    data = _tiff(hyper, imagej=True, metadata={"axes": "ZCYX"})
    part = list(
        reader_for(data[:16]).read(io.BytesIO(data), "h.tif", get_mode("B5;16"), OPTS, 1, 3)
    )
    assert [p.pixels.tolist() for p in part] == [h.transpose(1, 2, 0).tolist() for h in hyper[1:3]]


def test_pages_of_different_shapes_are_skipped_not_read_as_their_first() -> None:
    buf = io.BytesIO()
    with tifffile.TiffWriter(buf) as w:
        w.write(np.zeros((8, 8), np.uint8), metadata=None)
        w.write(np.zeros((9, 8), np.uint8), metadata=None)
    (skip,) = _read(buf.getvalue())
    assert isinstance(skip, Skipped) and "different shapes" in skip.reason


# ---------------------------------------------------------------- modes, names, nodata


def test_band_names_from_gdal_metadata_and_photometric() -> None:
    names = ["coastal", "blue & <b>", "green", "red", "nir"]
    items = "".join(
        f'<Item name="DESCRIPTION" sample="{i}" role="description">'
        f"{n.replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;')}</Item>"
        for i, n in enumerate(names)
    )
    meta = (42112, "s", 0, f"<GDALMetadata>{items}</GDALMetadata>", True)
    arr = RNG.integers(0, 65536, (8, 8, 5), dtype=np.uint16)
    data = _tiff(arr, photometric="minisblack", extratags=[meta])
    (dec,) = _read(data)
    assert get_mode(dec.native).channels == tuple(names)
    rgbn = _tiff(arr[..., :4].astype(np.uint8), photometric="rgb", extrasamples=["unspecified"])
    assert get_mode(_read(rgbn)[0].native).channels == ("R", "G", "B", "B4")
    rgba = _tiff(arr[..., :4].astype(np.uint8), photometric="rgb", extrasamples=["unassalpha"])
    assert _read(rgba)[0].native == "RGBA"


def test_band_descriptions_equal_to_the_default_names_give_the_plain_band_mode() -> None:
    """A file naming its bands B1..Bn (as GDAL writers often do) has the mode ``B<n>``, the
    one spelling the parser accepts, rather than a probe that raises."""
    defaults = tuple(f"B{i}" for i in range(1, 6))
    assert band_mode(5, "uint8", defaults) == get_mode("B5")
    assert band_mode(4, "float32", defaults[:4]).name == "B4;F"
    assert band_mode(5, "uint16", ("B2", "B1", "B3", "B4", "B5")).name == "B5;16:B2|B1|B3|B4|B5"
    items = "".join(
        f'<Item name="DESCRIPTION" sample="{i}" role="description">{n}</Item>'
        for i, n in enumerate(defaults)
    )
    meta = (42112, "s", 0, f"<GDALMetadata>{items}</GDALMetadata>", True)
    arr = RNG.integers(0, 256, (8, 8, 5), dtype=np.uint8)
    (dec,) = _read(_tiff(arr, photometric="minisblack", extratags=[meta]))
    assert isinstance(dec, Decoded) and (dec.native, dec.pixels.tobytes()) == ("B5", arr.tobytes())


@pytest.mark.parametrize(("text", "want"), [("-9999", -9999.0), ("nan", "nan"), ("x", None)])
def test_gdal_nodata_is_read_and_exposed(text: str, want: Any) -> None:
    arr = RNG.standard_normal((8, 8)).astype(np.float32)
    (dec,) = _read(_tiff(arr, extratags=[(42113, "s", 0, text, True)]))
    assert isinstance(dec, Decoded) and np.array_equal(dec.pixels[..., 0], arr)
    if want == "nan":
        assert dec.nodata is not None and np.isnan(dec.nodata)
    else:
        assert dec.nodata == want


def test_band_images_convert_only_to_band_modes_of_as_many_bands() -> None:
    data = _tiff(RNG.integers(0, 256, (8, 8, 6), dtype=np.uint8), photometric="minisblack")
    for mode in ("RGB", "L", "RGBA", "B5"):
        (skip,) = _read(data, mode)
        assert isinstance(skip, Skipped) and "no conversion" in skip.reason
    (dec,) = _read(data, "B6;16")
    assert dec.pixels.dtype == np.uint16


# ---------------------------------------------------------------- hostile files and limits


def _hostile() -> dict[str, bytes]:
    good = _tiff(
        RNG.integers(0, 65536, (40, 30, 5), dtype=np.uint16),
        photometric="minisblack",
        compression="zlib",
        metadata=None,
    )
    big = bytearray(good)
    lying = bytearray(good)
    # StripOffsets is the only tag of that number: point its value past the file's end
    t = tifffile.TiffFile(io.BytesIO(good))
    tag = t.pages[0].tags[273]
    offset = tag.valueoffset
    lying[offset : offset + 4] = (len(good) + 10**6).to_bytes(4, "little")
    width = t.pages[0].tags[256]
    big[width.valueoffset : width.valueoffset + 4] = (1 << 30).to_bytes(4, "little")
    return {
        "cut": good[: len(good) // 2],
        "header-only": good[:8],
        "lying-offset": bytes(lying),
        "huge-width": bytes(big),
        "zero-size": good[:8] + b"\x00" * 8,
        "garbage": b"II*\x00" + RNG.integers(0, 256, 500, dtype=np.uint8).tobytes(),
        "loop": b"II*\x00\x08\x00\x00\x00\x00\x00\x08\x00\x00\x00",
    }


@pytest.mark.parametrize("name", list(_hostile()))
def test_hostile_tiffs_are_skipped_with_a_reason(name: str) -> None:
    data = _hostile()[name]
    reader = reader_for(data[:16])
    for out in reader.read(io.BytesIO(data), "h.tif", get_mode("B5;16"), OPTS):
        assert isinstance(out, Skipped) and out.reason and out.path.startswith("h.tif")


def test_bomb_limit_is_checked_from_the_tags() -> None:
    data = _tiff(np.zeros((100, 100, 5), np.uint8), photometric="minisblack")
    (skip,) = _read(data, opts=ReadOptions(max_pixels=9999))
    assert "decompression bomb" in skip.reason
    (skip,) = _read(data, opts=ReadOptions(max_pixels=10000))  # 50000 samples > 4 × 10000
    assert "samples" in skip.reason
    assert isinstance(_read(data, opts=ReadOptions(max_pixels=12500))[0], Decoded)


def test_missing_extra_names_the_pip_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "tifffile", None)  # import tifffile fails
    monkeypatch.delitem(sys.modules, "normstat.readers.tiff", raising=False)
    monkeypatch.delitem(registry._loaded, "tiff", raising=False)
    (tmp_path / "a.tif").write_bytes(_tiff(np.zeros((4, 4, 5), np.uint8), photometric="minisblack"))
    stats_reason = None
    try:
        reader = reader_for(b"II*\x00" + b"\x00" * 12)
        skip = reader.probe(io.BytesIO((tmp_path / "a.tif").read_bytes()), "a.tif", OPTS)
        stats_reason = skip.reason
    finally:
        registry._loaded.pop("tiff", None)
    assert stats_reason == (  # 4 pages of 4×5 (tifffile's reading of the array)
        "TIFF of several pages: tiff files need tifffile; pip install 'normstat[formats]'"
    )


# ---------------------------------------------------------------- end to end


def _exact_mean_std(arrays: list[np.ndarray], channel: int, top: int) -> tuple[float, float]:
    values = [int(v) for a in arrays for v in a[..., channel].ravel()]
    n = len(values)
    mean = Fraction(sum(values), n)
    var = Fraction(sum(v * v for v in values), n) - mean * mean
    return float(mean / top), float(var) ** 0.5 / top


def test_compute_and_apply_on_a_folder_of_13_band_tiffs(tmp_path: Path) -> None:
    src = tmp_path / "s2"
    src.mkdir()
    arrays = []
    for i in range(3):
        chw = RNG.integers(0, 65536, (13, 18 + i, 21), dtype=np.uint16)
        chw[i, 0, 0] = 65535  # extremes in some bands
        tifffile.imwrite(
            src / f"t{i}.tif",
            chw,
            photometric="minisblack",
            planarconfig="separate",
            compression="zlib",
        )
        arrays.append(chw.transpose(1, 2, 0))
    stats = normstat.compute(src, workers=2)
    assert stats.data["mode"] == "B13;16" and stats.channels == [f"B{i}" for i in range(1, 14)]
    assert stats.images == 3 and stats.skipped == []
    for c in range(13):
        mean, std = _exact_mean_std(arrays, c, 65535)
        assert stats.mean[c] == pytest.approx(mean, rel=1e-12)
        assert stats.std[c] == pytest.approx(std, rel=1e-9)
        assert stats.data["max"][c] == max(a[..., c].max() for a in arrays) / 65535
    stats.save(str(tmp_path / "stats.json"))
    normstat.apply(src, tmp_path / "stats.json", tmp_path / "out", workers=1)
    for i, hwc in enumerate(arrays):
        got = np.load(tmp_path / "out" / f"t{i}.tif.npy")
        want = (hwc.astype(np.float64) / 65535 - np.array(stats.mean)) / np.array(stats.std)
        assert got.shape == (13, *hwc.shape[:2])
        np.testing.assert_allclose(
            got, want.transpose(2, 0, 1).astype(np.float32), rtol=1e-6, atol=1e-6
        )


def test_compute_on_five_band_float_tiffs_matches_numpy(tmp_path: Path) -> None:
    arrays = [RNG.standard_normal((16, 15, 5)).astype(np.float32) + 100 for _ in range(3)]
    for i, a in enumerate(arrays):
        tifffile.imwrite(
            tmp_path / f"f{i}.tif", a, photometric="minisblack", compression="zlib", predictor=3
        )
    stats = normstat.compute(tmp_path, workers=1)
    assert stats.data["mode"] == "B5;F"
    flat = np.concatenate([a.reshape(-1, 5) for a in arrays]).astype(np.float64)
    np.testing.assert_allclose(stats.mean, flat.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats.std, flat.std(axis=0), rtol=1e-9)


def _nodata_tiffs(folder: Path, nodata: int) -> list[np.ndarray]:
    """Four-band uint16 TIFFs with a GDAL_NODATA tag; a quarter of each image is nodata."""
    folder.mkdir()
    arrays = []
    for i in range(3):
        hwc = RNG.integers(1, 5000, (12, 10 + i, 4), dtype=np.uint16)
        hwc[: 3 + i, :, :] = nodata
        hwc[-1, -1, 2] = nodata  # one more in band 3 only
        tag = [(42113, "s", 0, str(nodata), True)]
        tifffile.imwrite(folder / f"n{i}.tif", hwc, photometric="minisblack", extratags=tag)
        arrays.append(hwc)
    return arrays


def test_the_gdal_nodata_tag_leaves_its_pixels_out_of_every_statistic(tmp_path: Path) -> None:
    """As rasterio's stats(): the file's nodata value is not data, band by band; an explicit
    --nodata overrides the tag; apply writes those pixels as 0."""
    arrays = _nodata_tiffs(tmp_path / "n", 7)
    stats = normstat.compute(tmp_path / "n", workers=2)
    assert stats.data["mode"] == "B4;16" and stats.data["schema"] == "normstat/stats@2"
    for c in range(4):
        valid = np.concatenate([a[..., c][a[..., c] != 7] for a in arrays]).astype(np.float64)
        assert stats.data["pixels_valid"][c] == valid.size
        assert stats.data["raw"]["mean"][c] == pytest.approx(valid.mean(), rel=1e-12)
        assert stats.data["raw"]["std"][c] == pytest.approx(valid.std(), rel=1e-9)
        assert stats.data["raw"]["min"][c] == valid.min()
    whole = normstat.compute(tmp_path / "n", workers=1, nodata=0)  # no pixel is 0: all count
    all_px = np.concatenate([a.reshape(-1, 4) for a in arrays]).astype(np.float64)
    np.testing.assert_allclose(whole.data["raw"]["mean"], all_px.mean(axis=0), rtol=1e-12)
    normstat.apply(tmp_path / "n", stats, tmp_path / "out", workers=1)
    got = np.load(tmp_path / "out" / "n0.tif.npy")
    assert np.all(got[arrays[0].transpose(2, 0, 1) == 7] == 0)
    with pytest.raises(normstat.errors.InputError, match=r"nodata tag.*--covariance"):
        normstat.compute(tmp_path / "n", workers=1, covariance=True)


def test_nan_in_float_tiffs_is_a_skip_or_with_nodata_nan_left_out(tmp_path: Path) -> None:
    """A NaN pixel makes a float image a skip, as in .npy stacks; with --nodata nan its other
    pixels count, never zeros in place of the image (tifffile's and Pillow's routes)."""
    arrays = []
    for i, bands in enumerate((5, 1)):
        a = RNG.uniform(1.0, 2.0, (6, 7, bands)).astype(np.float32)
        a[: 2 + i, 0, :] = np.nan
        tifffile.imwrite(tmp_path / f"f{i}.tif", a if bands > 1 else a[..., 0])
        arrays.append(a)
    for i, a in enumerate(arrays):
        skipped = normstat.compute(tmp_path / f"f{i}.tif", workers=1, nodata="nan")
        valid = a[~np.isnan(a[..., 0])].astype(np.float64)
        assert skipped.images == 1 and skipped.data["pixels_valid"][0] == valid.shape[0]
        assert skipped.data["raw"]["mean"] == pytest.approx(valid.mean(axis=0), rel=1e-12)
        assert skipped.data["raw"]["min"][0] >= 1.0  # no zero-filled image counted
        with pytest.raises(normstat.errors.InputError, match="non-finite pixel values"):
            normstat.compute(tmp_path / f"f{i}.tif", workers=1)


@pytest.mark.parametrize("bands", [1, 3])
def test_apply_of_a_nan_nodata_manifest_writes_float_tiffs_with_nan(
    tmp_path: Path, bands: int
) -> None:
    """apply masks the NaN of float TIFFs (F and RGB;F) as compute counted them (--nodata nan),
    rather than skipping the images as non-finite; an infinity is still a skip."""
    for folder in ("in", "inf"):
        (tmp_path / folder).mkdir()
    arrays = []
    for i in range(2):
        a = RNG.uniform(1.0, 2.0, (6, 7, bands)).astype(np.float32)
        a[i, 3] = np.nan
        if bands == 3:
            tifffile.imwrite(tmp_path / "in" / f"f{i}.tif", a, photometric="rgb")
        else:
            tifffile.imwrite(tmp_path / "in" / f"f{i}.tif", a[..., 0])
        arrays.append(a)
    stats = normstat.compute(tmp_path / "in", workers=1, nodata="nan")
    assert stats.images == 2 and stats.data["pixels_valid"] == [2 * 6 * 7 - 2] * bands
    result = normstat.apply(tmp_path / "in", stats, tmp_path / "out", workers=1)
    assert (result.written, result.skipped) == (2, []), result
    for i, a in enumerate(arrays):
        got = np.moveaxis(np.load(tmp_path / "out" / f"f{i}.tif.npy"), 0, 2)
        assert got.shape == (6, 7, bands)
        valid = ~np.isnan(a)
        want = (a.astype(np.float64) - np.asarray(stats.mean)) / np.asarray(stats.std)
        np.testing.assert_allclose(got[valid], want[valid], rtol=1e-6, atol=1e-6)
        assert (got[i, 3] == 0).all()
    inf = arrays[0].copy()
    inf[0, 0] = np.inf
    if bands == 3:
        tifffile.imwrite(tmp_path / "inf" / "g.tif", inf, photometric="rgb")
    else:
        tifffile.imwrite(tmp_path / "inf" / "g.tif", inf[..., 0])
    with pytest.raises(normstat.errors.InputError, match=r"g\.tif: non-finite pixel values"):
        normstat.apply(tmp_path / "inf", stats, tmp_path / "out2", workers=1)


def test_apply_stack_of_tiffs_gives_every_image_a_row(tmp_path: Path) -> None:
    """TIFF probes tell the size as read (EXIF orientation applied), so --stack takes a folder
    of single TIFFs, a stack TIFF and a Pillow-read (palette) TIFF: rows are the true pixels."""
    src = tmp_path / "src"
    src.mkdir()
    px = [RNG.integers(0, 256, (6, 5, 3), dtype=np.uint8) for _ in range(4)]
    tifffile.imwrite(src / "a.tif", px[0], photometric="rgb")
    tifffile.imwrite(src / "b.tif", np.stack(px[1:3]), photometric="rgb")
    stored = np.ascontiguousarray(np.rot90(px[3], 1))  # 5×6, shown 6×5 by orientation 6
    tifffile.imwrite(src / "c.tif", stored, photometric="rgb", extratags=[(274, "H", 1, 6)])
    palette = Image.fromarray(px[0]).quantize(16)
    palette.save(src / "d.tif")
    truth = [px[0], px[1], px[2], px[3], np.asarray(palette.convert("RGB"))]
    stats = normstat.compute(src, workers=1)
    assert stats.images == 5
    result = normstat.apply(src, stats, tmp_path / "out", workers=1, stack=True)
    assert (result.written, result.skipped) == (5, [])
    names = (tmp_path / "out" / "stack.txt").read_text(encoding="utf-8").split("\n")[:-1]
    assert names == ["a.tif", "b.tif[0]", "b.tif[1]", "c.tif", "d.tif"]
    arr = np.load(tmp_path / "out" / "stack.npy")
    assert arr.shape == (5, 3, 6, 5)
    mean, std = np.array(stats.mean), np.array(stats.std)
    for row, want in zip(arr, truth, strict=True):
        ref = ((want.astype(np.float64) / 255 - mean) / std).transpose(2, 0, 1)
        np.testing.assert_allclose(row, ref, rtol=1e-5, atol=1e-5)
