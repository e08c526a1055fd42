"""Each contributor's reference (the stretched hash thumbnail, its range and the mean colour:
what check verifies a near-duplicate against) is stored by compute for every route (files,
fast paths, 16-bit, float, stacks, masks, the device path), travels through partial files, the
spill files, the sidecar and merge exactly, and is read back without copying the thumbnails."""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fake_cupy import make_fake_cupy
from PIL import Image

import normstat
from normstat.api import Partials
from normstat.errors import ManifestError
from normstat.fingerprints import (
    FingerprintRows,
    Fingerprints,
    Reference,
    gray_image,
    pixel_hash,
    reference_of,
    thumbnail,
)
from normstat.fingerprints import table as table_module
from normstat.fingerprints.reference import References, references_of
from normstat.manifest.sidecar import read_sidecar, write_sidecar
from normstat.modes import get_mode
from normstat.readers import Skipped
from normstat.reduce import IntMoments
from normstat.verbs.compute import partials as partials_module
from normstat.verbs.compute.records import ImageRecord

RNG = np.random.default_rng(7)
COLUMNS = ("thumb", "thumb_range", "colour")


def _rgb(h: int, w: int, alpha: bool = False) -> np.ndarray:
    """Structure and distinct channel levels: a thumbnail or colour from another image, or
    from other channels, differs."""
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([180 + 0 * x, 90 + 0 * x, 20 + 0 * x], axis=2) + (x * 3 + y * 2)[..., None]
    px = np.clip(base + RNG.integers(-20, 20, (h, w, 3)), 0, 255).astype(np.uint8)
    if alpha:
        px = np.concatenate([px, RNG.integers(0, 256, (h, w, 1), dtype=np.uint8)], axis=2)
    return px


def _folders(root: Path) -> dict[str, tuple[Path, dict[str, Any]]]:
    eight = root / "eight"
    eight.mkdir()
    for i in range(3):
        Image.fromarray(_rgb(20 + i, 30)).save(eight / f"rgb{i}.png")
    Image.fromarray(_rgb(40, 50)).save(eight / "photo.jpg", quality=90)
    Image.fromarray(_rgb(70, 90)).save(eight / "big.png")  # more than 4,096 pixels: sampled
    Image.fromarray(_rgb(9, 11, alpha=True), "RGBA").save(eight / "rgba.png")
    Image.fromarray(RNG.integers(0, 256, (12, 13), dtype=np.uint8)).save(eight / "grey.png")
    Image.new("RGB", (8, 8), (40, 50, 60)).save(eight / "flat.png")
    np.save(eight / "stack.npy", np.stack([_rgb(10, 12) for _ in range(3)]))
    deep = root / "deep"
    deep.mkdir()
    for i in range(2):
        wide = RNG.integers(0, 65536, (9 + i, 13), dtype=np.uint16)
        Image.fromarray(wide).save(deep / f"{i}.png")
    np.save(deep / "stack16.npy", RNG.integers(0, 65536, (2, 5, 6, 1), dtype=np.uint16))
    flt = root / "float"
    flt.mkdir()
    for i in range(2):
        arr = (RNG.standard_normal((6 + i, 7)) * 0.2 + 0.5).astype(np.float32)
        Image.fromarray(arr, "F").save(flt / f"f{i}.tif")
    np.save(flt / "floats.npy", RNG.standard_normal((3, 5, 6, 1)).astype(np.float32))
    holes = root / "holes"  # NaN nodata: masked floats, files and a stack
    holes.mkdir()
    arr = RNG.random((3, 6, 5)).astype(np.float32)
    arr[0, 1:3, 2] = np.nan
    np.save(holes / "holed.npy", arr)
    one = RNG.random((7, 6)).astype(np.float32)
    one[0, 0] = np.nan
    Image.fromarray(one, "F").save(holes / "holed.tif")
    masked = root / "masked"  # --alpha mask: colour pixels of RGBA images
    masked.mkdir()
    for i in range(2):
        Image.fromarray(_rgb(8, 9 + i, alpha=True), "RGBA").save(masked / f"a{i}.png")
    np.save(masked / "rgba.npy", np.stack([_rgb(6, 7, alpha=True) for _ in range(2)]))
    return {
        "eight": (eight, {}),
        "deep": (deep, {}),
        "float": (flt, {}),
        "holes": (holes, {"nodata": "nan"}),
        "masked": (masked, {"alpha": "mask"}),
    }


def _pixels(root: Path, rel: str, mode: str, read_alpha: bool) -> np.ndarray:
    """A contributor's pixels decoded with Pillow and NumPy alone, in the dataset mode (an
    alpha mask's alpha channel removed)."""
    indexed = re.fullmatch(r"(.*)\[(\d+)\]", rel)
    if indexed:
        px = np.load(root / indexed[1])[int(indexed[2])]
    else:
        im = Image.open(root / rel)
        if mode == "RGB":
            px = np.asarray(im.convert("RGBA" if read_alpha else "RGB"))
        else:
            px = np.asarray(im)
    px = px[..., None] if px.ndim == 2 else px
    return px[..., :3] if read_alpha else px


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict[str, Any]]]:
    return _folders(tmp_path_factory.mktemp("refs"))


@pytest.mark.parametrize("case", ["eight", "deep", "float", "holes", "masked"])
def test_compute_stores_the_reference_of_each_contributors_own_pixels(
    folders: dict[str, tuple[Path, dict[str, Any]]], case: str
) -> None:
    folder, options = folders[case]
    stats = normstat.compute(folder, workers=1, **options)
    fp = stats.fingerprints
    assert fp is not None and fp.thumb is not None
    assert fp.thumb_range is not None and fp.colour is not None
    assert fp.thumb.shape == (len(fp), 32, 32) and fp.thumb.dtype == np.uint8
    assert fp.thumb_range.shape == (len(fp), 2) and fp.thumb_range.dtype == np.float32
    assert fp.colour.shape == (len(fp), 3) and fp.colour.dtype == np.float32
    mode = get_mode(stats.mode)
    assert len(fp) == stats.images >= 3 and not stats.skipped
    assert any("[" in p for p in fp.paths)  # a stack's images among them
    for i, rel in enumerate(fp.paths):
        px = _pixels(folder, rel, mode.name, options.get("alpha") == "mask")
        # the pixels compute saw: the reference below is made from the very same ones
        assert pixel_hash(px, mode.name) == fp.pixel_hash[i].tobytes(), rel
        want = reference_of(thumbnail(gray_image(px, mode.max_value)), px, mode.max_value)
        assert fp.thumb[i].tobytes() == want.thumb, rel
        assert fp.thumb_range[i].tolist() == [want.lo, want.hi], rel
        assert tuple(fp.colour[i].tolist()) == want.colour, rel
    if case == "eight":
        flat = list(fp.paths).index("flat.png")
        assert not fp.thumb[flat].any() and fp.thumb_range[flat, 0] == fp.thumb_range[flat, 1]
        colours = fp.colour[list(fp.paths).index("rgb0.png")]
        assert colours[0] > colours[1] > colours[2]  # R, G, B in that order


def test_the_device_path_stores_the_cpu_references(
    folders: dict[str, tuple[Path, dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "cupy", make_fake_cupy())
    folder, _ = folders["eight"]
    gpu = normstat.compute(folder, workers=1, device="gpu").fingerprints
    cpu = normstat.compute(folder, workers=1, device="cpu").fingerprints
    assert gpu is not None and cpu is not None
    for name in COLUMNS:
        assert np.array_equal(getattr(gpu, name), getattr(cpu, name)), name


# ---------------------------------------------------------------- references_of


def _images() -> list[np.ndarray]:
    """Every kind of pixels compute references: 8 and 16 bits (small: sampled whole; large:
    strided), grey, RGBA, bands, floats with NaN and infinity, flat and nearly flat ones."""
    out = [
        RNG.integers(0, 256, (28, 28, 1), dtype=np.uint8),
        RNG.integers(0, 256, (375, 500, 3), dtype=np.uint8),
        RNG.integers(0, 256, (1, 9000, 4), dtype=np.uint8),
        RNG.integers(0, 256, (5000, 2, 2), dtype=np.uint8),
        RNG.integers(0, 65536, (13, 17, 3), dtype=np.uint16),
        RNG.integers(0, 65536, (300, 301, 1), dtype=np.uint16),
        RNG.integers(0, 65536, (64, 65, 5), dtype=np.uint16),
        np.full((10, 10, 3), 77, dtype=np.uint8),
        RNG.random((31, 33, 3)).astype(np.float32),
        (RNG.standard_normal((90, 80, 1)) * 1e4).astype(np.float32),
        RNG.random((6, 5, 3)) * 1e-7 + 0.5,  # float64, nearly flat
        np.full((4, 4, 1), np.nan, dtype=np.float32),
    ]
    holed = RNG.random((12, 12, 3)).astype(np.float32)
    holed[2, 3] = np.nan
    holed[5, 5, 1] = np.inf
    out.append(holed)
    return out


def test_references_of_a_chunk_equal_each_images_own() -> None:
    images = _images()
    for max_value in (255.0, 65535.0, 1.0):
        picked = [px for px in images if max_value == 1.0 or px.dtype != np.float32]
        thumbs = [thumbnail(gray_image(px, max_value)) for px in picked]
        got = references_of(thumbs, picked, max_value)
        for px, thumb, ref in zip(picked, thumbs, got, strict=True):
            assert ref == reference_of(thumb, px, max_value), (px.shape, px.dtype)
    refs = References(255.0)  # finished, then used again
    refs.add(thumbs[0], picked[0])
    assert refs.finish() == [reference_of(thumbs[0], picked[0], 255.0)]
    assert refs.finish() == [] and len(refs) == 0


def test_a_colour_past_float32_is_stored_finite() -> None:
    """float64 data beyond float32's range: reference_of's colour is infinite, the stored one
    float32's largest value; everything else is the same."""
    px = np.full((4, 5, 3), 1e39) + np.arange(3)
    with np.errstate(over="ignore"):
        thumb = thumbnail(gray_image(px, 1.0))
        plain = reference_of(thumb, px, 1.0)
    (ref,) = references_of([thumb], [px], 1.0)
    top = float(np.finfo(np.float32).max)
    assert plain.colour == (math.inf,) * 3 and ref.colour == (top,) * 3
    assert (ref.thumb, ref.lo, ref.hi) == (plain.thumb, plain.lo, plain.hi)


# ---------------------------------------------------------------- partial files


def _record(seed: int) -> ImageRecord:
    rng = np.random.default_rng(seed)
    px = rng.random((9, 8, 3)).astype(np.float32)
    (ref,) = references_of([thumbnail(gray_image(px, 1.0))], [px], 1.0)
    moments = (IntMoments(72, 9000, 1_200_000),)
    return ImageRecord("RGB", moments, bytes(range(16)), 2**63 + 5, 9, 8, 77, (1, 2.5), ref)


def test_partial_files_give_the_reference_back_exactly() -> None:
    record = _record(1)
    text = json.dumps(partials_module._encode_outcome(record), separators=(",", ":"))
    back = partials_module._decode_outcome(json.loads(text))
    assert back == record
    skip = Skipped("x.png", "broken")
    assert partials_module._decode_outcome(partials_module._encode_outcome(skip)) == skip


def _bad_thumb(row: list) -> None:
    row[7][0] = row[7][0][:-8]  # 1,020 bytes


BAD_REFS = {
    "short-thumb": _bad_thumb,
    "not-base64": lambda row: row[7].__setitem__(0, "*" * 1368),
    "nan-lo": lambda row: row[7].__setitem__(1, math.nan),
    "inf-colour": lambda row: row[7][3].__setitem__(1, math.inf),
    "not-float32": lambda row: row[7].__setitem__(2, 0.1),
    "lo-above-hi": lambda row: row[7].__setitem__(slice(1, 3), row[7][2:0:-1]),
    "two-colours": lambda row: row[7][3].pop(),
    "text-colour": lambda row: row[7][3].__setitem__(0, "0.5"),
    "no-reference": lambda row: row.__setitem__(7, None),
    "missing": lambda row: row.__delitem__(7),
}


@pytest.mark.parametrize("defect", list(BAD_REFS))
def test_a_partial_with_a_bad_reference_is_redone(tmp_path: Path, defect: str) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(_rgb(6, 7 + i)).save(folder / f"{i}.png")
    parts = tmp_path / "parts"
    first = normstat.compute(folder, workers=1, partials_dir=parts)
    (partial,) = parts.iterdir()
    doc = json.loads(partial.read_text())
    assert doc["format"] == "normstat/partial@2"
    BAD_REFS[defect](doc["outcomes"][2])
    partial.write_text(json.dumps(doc))
    counts = Partials(str(parts))
    again = normstat.compute(folder, workers=1, partials_dir=counts)
    assert (counts.kept, counts.redone, counts.made) == (0, 1, 1)
    for name in COLUMNS:
        assert np.array_equal(getattr(again.fingerprints, name), getattr(first.fingerprints, name))
    kept = Partials(str(parts))
    normstat.compute(folder, workers=1, partials_dir=kept)
    assert kept.kept == 1


# ---------------------------------------------------------------- the table and its spill files


def _ref_rows(n: int) -> list[tuple[Any, ...]]:
    out = []
    for i in range(n):
        digest = hashlib.sha256(str(i).encode()).digest()
        thumb = hashlib.shake_128(digest).digest(1024)
        colour = (float(np.float32(i / 7)), 0.25, float(np.float32(1 / (i + 1))))
        ref = Reference(thumb, float(np.float32(i / 1000)), float(np.float32(1 + i)), colour)
        out.append((f"/r{i % 2}", f"{i:04d}.png", digest[:16], i, 2 * i, 5, 6, ref))
    return out


def _table(n: int, spill_rows: int, folder: Path | None = None) -> FingerprintRows:
    rows = FingerprintRows(str, references=True, spill_rows=spill_rows, spill_dir=folder)
    for row in _ref_rows(n):
        rows.add(*row)
    return rows


def _sidecar(fp: Fingerprints) -> bytes:
    buf = io.BytesIO()
    write_sidecar(fp, buf)
    return buf.getvalue()


@pytest.mark.parametrize("spill_rows", [1, 6, 10_000])
def test_spilled_references_give_the_sidecar_of_references_in_memory(
    spill_rows: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(table_module, "BLOCK_BYTES", 3000)  # blocks of 2 thumbnails
    memory = _table(25, 10**9).table()
    spilled = _table(25, spill_rows, tmp_path).table()
    assert ("thumb" in spilled.spilled) == (spill_rows <= 25)
    data = _sidecar(spilled)
    assert data == _sidecar(memory)
    back, _ = read_sidecar(io.BytesIO(data), len(data), spilled.roots, 25, get_mode("RGB"))
    rows = _ref_rows(25)
    for fp in (memory, spilled, back):
        assert fp.thumb is not None and fp.thumb_range is not None and fp.colour is not None
        assert [bytes(t) for t in fp.thumb] == [r[-1].thumb for r in rows]
        assert fp.thumb_range.tolist() == [[r[-1].lo, r[-1].hi] for r in rows]
        assert [tuple(c) for c in fp.colour.tolist()] == [r[-1].colour for r in rows]
        assert [len(b) for b in fp.blocks("thumb")][:2] == [2, 2]
    assert _sidecar(back) == data


def test_references_also_spill_by_their_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(table_module, "SPILL_REF_BYTES", 4096)  # 4 thumbnails
    rows = _table(10, 10**9, tmp_path)
    assert rows.spilled == 8 and len(rows) == 10
    assert _sidecar(rows.table()) == _sidecar(_table(10, 10**9).table())


def test_rows_carry_a_reference_exactly_when_the_table_has_references() -> None:
    row = _ref_rows(1)[0]
    with pytest.raises(ValueError, match="reference"):
        FingerprintRows(str).add(*row)
    with pytest.raises(ValueError, match="reference"):
        FingerprintRows(str, references=True).add(*row[:-1])
    short = Reference(b"x" * 1000, 0.0, 1.0, (0.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="1000 bytes"):
        FingerprintRows(str, references=True).add(*row[:-1], short)
    empty = FingerprintRows(str, references=True).table()
    assert empty.thumb is not None and empty.thumb.shape == (0, 32, 32)
    data = _sidecar(empty)
    back, _ = read_sidecar(io.BytesIO(data), len(data), [], 0, get_mode("L"))
    assert back.thumb is not None and back.thumb.shape == (0, 32, 32)


def test_compute_spills_references_to_the_bytes_it_keeps_in_memory(
    folders: dict[str, tuple[Path, dict[str, Any]]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder, _ = folders["eight"]
    kept = normstat.compute(folder, workers=2)
    kept.save(str(tmp_path / "kept.json"))
    monkeypatch.setattr(table_module, "SPILL_ROWS", 3)
    spilled = normstat.compute(folder, workers=1)
    assert spilled.fingerprints is not None and "thumb" in spilled.fingerprints.spilled
    spilled.save(str(tmp_path / "spilled.json"))
    assert kept.data["sidecar"]["sha256"] == spilled.data["sidecar"]["sha256"]


# ---------------------------------------------------------------- the sidecar


@pytest.fixture
def saved(tmp_path: Path, folders: dict[str, tuple[Path, dict[str, Any]]]) -> Path:
    folder, _ = folders["eight"]
    out = tmp_path / "stats.json"
    normstat.compute(folder, workers=1).save(str(out))
    return out


def _sidecar_of(manifest: Path) -> Path:
    return manifest.parent / json.loads(manifest.read_text())["sidecar"]["path"]


def _arrays(manifest: Path) -> dict[str, np.ndarray]:
    with np.load(_sidecar_of(manifest)) as npz:
        return {k: npz[k] for k in npz.files}


def _rewrite(manifest: Path, arrays: dict[str, np.ndarray]) -> None:
    """Replace the sidecar's arrays and re-sign it: only the arrays are wrong."""
    side = _sidecar_of(manifest)
    with zipfile.ZipFile(side, "w", zipfile.ZIP_STORED) as zf:
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asanyarray(arr), allow_pickle=False)
            zf.writestr(f"{name}.npy", buf.getvalue())
    data = json.loads(manifest.read_text())
    data["sidecar"]["sha256"] = hashlib.sha256(side.read_bytes()).hexdigest()
    manifest.write_text(json.dumps(data))


@pytest.fixture
def mapping(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sidecars of any size map their thumbnails (from 65,536 rows otherwise)."""
    monkeypatch.setattr("normstat.manifest.sidecar.MAP_ROWS", 0)


def test_small_sidecars_read_their_thumbnails(saved: Path) -> None:
    """A mapping faults if its file is cut short under it: small tables are read instead."""
    fp = normstat.Stats.load(str(saved)).fingerprints
    assert fp is not None and fp.thumb is not None and not isinstance(fp.thumb, np.memmap)
    assert np.array_equal(fp.thumb, _arrays(saved)["thumb"])


@pytest.mark.usefixtures("mapping")
def test_loading_maps_the_thumbnails_from_the_sidecar(saved: Path) -> None:
    stats = normstat.Stats.load(str(saved))
    fp = stats.fingerprints
    assert fp is not None and fp.thumb is not None
    assert isinstance(fp.thumb, np.memmap) and not fp.thumb.flags.writeable
    assert fp.thumb.filename == str(_sidecar_of(saved))
    assert not isinstance(fp.thumb_range, np.memmap) and not isinstance(fp.colour, np.memmap)
    stored = _arrays(saved)
    for name in COLUMNS:  # read after the sidecar's file was closed
        assert np.array_equal(getattr(fp, name), stored[name]), name
    assert stored["thumb"].dtype == np.uint8 and stored["thumb"].any()


@pytest.mark.usefixtures("mapping")
def test_a_member_with_a_local_extra_field_maps_at_its_data(saved: Path) -> None:
    """The data start is read from the member's own local header: past its name and its
    extra field (here an unknown one of 6 bytes)."""
    arrays = _arrays(saved)
    side = _sidecar_of(saved)
    with zipfile.ZipFile(side, "w", zipfile.ZIP_STORED) as zf:
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, arr, allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            if name == "thumb":
                info.extra = b"\xfe\xca\x06\x00" + b"abcdef"  # an unknown 6-byte field
            zf.writestr(info, buf.getvalue())
    blob = side.read_bytes()
    assert blob.count(b"\xfe\xca\x06\x00abcdef") == 2
    data = json.loads(saved.read_text())
    data["sidecar"]["sha256"] = hashlib.sha256(blob).hexdigest()
    saved.write_text(json.dumps(data))
    fp = normstat.Stats.load(str(saved)).fingerprints
    assert fp is not None and isinstance(fp.thumb, np.memmap)
    assert np.array_equal(fp.thumb, arrays["thumb"])


def test_a_sidecar_without_references_loads_with_none(saved: Path) -> None:
    arrays = _arrays(saved)
    for name in COLUMNS:
        del arrays[name]
    _rewrite(saved, arrays)
    fp = normstat.Stats.load(str(saved)).fingerprints
    assert fp is not None and fp.phash is not None
    assert fp.thumb is None and fp.thumb_range is None and fp.colour is None
    assert [len(b) for b in fp.blocks("dhash")] == [len(fp)]


def _nan_range(a: dict[str, np.ndarray]) -> None:
    a["thumb_range"][1, 0] = np.nan


HOSTILE: dict[str, tuple[Any, str]] = {
    "thumb-flat": (lambda a: a.update(thumb=a["thumb"].reshape(len(a["thumb"]), -1)), "thumb"),
    "thumb-16": (lambda a: a.update(thumb=np.zeros((len(a["thumb"]), 16, 16), np.uint8)), "thumb"),
    "thumb-short": (lambda a: a.update(thumb=a["thumb"][:-1]), "thumb"),
    "thumb-float": (lambda a: a.update(thumb=a["thumb"].astype(np.float32)), "thumb"),
    "thumb-int16": (lambda a: a.update(thumb=a["thumb"].astype(np.int16)), "thumb"),
    "range-float64": (lambda a: a.update(thumb_range=a["thumb_range"].astype(float)), "range"),
    "range-lo-above-hi": (lambda a: a.update(thumb_range=a["thumb_range"][:, ::-1]), "low above"),
    "range-nan": (_nan_range, "thumb_range"),
    "range-three": (lambda a: a.update(thumb_range=a["colour"]), "thumb_range"),
    "colour-inf": (lambda a: a["colour"].__setitem__((0, 2), np.inf), "colour"),
    "colour-pairs": (lambda a: a.update(colour=a["thumb_range"] * 0), "colour"),
    "no-colour": (lambda a: a.pop("colour"), "lacks colour"),
    "only-thumb": (lambda a: [a.pop("colour"), a.pop("thumb_range")], "lacks thumb_range"),
}


@pytest.mark.parametrize("defect", list(HOSTILE))
def test_a_sidecar_with_bad_references_is_refused(saved: Path, defect: str) -> None:
    arrays = _arrays(saved)
    edit, mention = HOSTILE[defect]
    edit(arrays)
    _rewrite(saved, arrays)
    with pytest.raises(ManifestError) as info:
        normstat.Stats.load(str(saved))
    assert info.value.path == str(saved)
    assert _sidecar_of(saved).name in info.value.reason and mention in info.value.reason
    normstat.Stats.load(str(saved), with_fingerprints=False)  # mean and std need none of it


def test_a_sidecar_read_from_memory_is_read_not_mapped(saved: Path) -> None:
    stats = normstat.Stats.load(str(saved))
    data = _sidecar_of(saved).read_bytes()
    fp, _ = read_sidecar(
        io.BytesIO(data), len(data), stats.data["sources"], stats.images, get_mode("RGB")
    )
    assert fp.thumb is not None and not isinstance(fp.thumb, np.memmap)
    assert stats.fingerprints is not None
    assert np.array_equal(fp.thumb, stats.fingerprints.thumb)


# ---------------------------------------------------------------- merge


def test_merge_carries_the_references_of_one_pass(
    tmp_path: Path, folders: dict[str, tuple[Path, dict[str, Any]]]
) -> None:
    folder, _ = folders["eight"]
    names = sorted(p.name for p in folder.iterdir())
    lists = []
    for k in range(2):
        lst = tmp_path / f"list{k}.txt"
        lst.write_text("".join(f"{folder / n}\n" for n in names[k::2]))
        lists.append(f"@{lst}")
    parts = []
    for k, lst in enumerate(lists):
        normstat.compute([lst], workers=1).save(str(tmp_path / f"p{k}.json"))
        parts.append(normstat.Stats.load(str(tmp_path / f"p{k}.json")))
    one = normstat.compute([f"@{lst}" for lst in (tmp_path / "list0.txt", tmp_path / "list1.txt")])
    merged = normstat.merge([str(tmp_path / "p0.json"), str(tmp_path / "p1.json")])
    merged.save(str(tmp_path / "merged.json"))
    one.save(str(tmp_path / "one.json"))
    assert _sidecar_of(tmp_path / "merged.json").read_bytes() == (
        _sidecar_of(tmp_path / "one.json").read_bytes()
    )
    assert merged.fingerprints is not None and one.fingerprints is not None
    for name in COLUMNS:
        assert np.array_equal(getattr(merged.fingerprints, name), getattr(one.fingerprints, name))


def test_merge_refuses_a_part_without_references(
    tmp_path: Path, folders: dict[str, tuple[Path, dict[str, Any]]]
) -> None:
    folder, _ = folders["eight"]
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    normstat.compute([str(folder / "rgb0.png")], workers=1).save(str(old))
    normstat.compute([str(folder / "rgb1.png")], workers=1).save(str(new))
    arrays = _arrays(old)
    for name in COLUMNS:
        del arrays[name]
    _rewrite(old, arrays)
    for order in ([new, old], [old, new]):
        with pytest.raises(ManifestError) as info:
            normstat.merge([str(p) for p in order])
        assert info.value.path == str(old)
        assert "predates stored verification data; recompute it" in info.value.reason
