"""The driver at scale: fingerprint rows spill to anonymous files past a threshold and give the
same sidecar bytes as rows kept in memory; the table's path list behaves as a list; nothing is
left behind (files, descriptors, mappings), also after an exception; SyntheticSource keeps the
Source contract. Small thresholds and blocks stand in for 10 million rows
(benchmarks/scale.py measures those)."""

from __future__ import annotations

import copy
import gc
import hashlib
import io
import os
import pickle
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

import normstat
from normstat.fingerprints import FingerprintRows, Fingerprints
from normstat.fingerprints import table as table_module
from normstat.fingerprints.table import PathList
from normstat.manifest.sidecar import read_sidecar, write_sidecar
from normstat.modes import get_mode
from normstat.sources import Item, Shard, Source
from normstat.sources.synthetic import SyntheticSource

ODD = ["é/ü.png", "bad\udcff.png", "日本/画像.jpg", "x" * 300 + ".png", "a b/c.png"]


def _rows(n: int) -> list[tuple[str, str, bytes, int, int, int, int]]:
    """``n`` rows over three roots whose first appearance is not their sorted order (the root
    ids need remapping), with odd names among plain ones."""
    roots = ["/data/b", "/data/c", "/data/a"]
    out = []
    for i in range(n):
        rel = ODD[i % len(ODD)] + f".{i}" if i % 7 == 3 else f"{i // 10:03d}/{i:05d}.png"
        digest = hashlib.sha256(str(i).encode()).digest()
        dh, ph = int.from_bytes(digest[16:24], "little"), int.from_bytes(digest[24:32], "big")
        out.append((roots[(i // 3) % 3], rel, digest[:16], dh, ph, 1 + i % 500, 2 + i % 300))
    return out


def _table(n: int, spill_rows: int | None, folder: Path | None = None) -> FingerprintRows:
    rows = FingerprintRows(lambda r: r + "/", spill_rows=spill_rows, spill_dir=folder)
    for row in _rows(n):
        rows.add(*row)
    return rows


def _sidecar(fp: Fingerprints, hist: np.ndarray | None = None) -> bytes:
    buf = io.BytesIO()
    write_sidecar(fp, buf, hist)
    return buf.getvalue()


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of a few rows, so that every column crosses many block boundaries."""
    monkeypatch.setattr(table_module, "BLOCK_BYTES", 40)
    monkeypatch.setattr(table_module, "_PATH_BLOCK", 3)


@pytest.mark.parametrize("spill_rows", [1, 7, 50, 10_000])
def test_spilled_rows_give_the_sidecar_bytes_of_rows_in_memory(
    spill_rows: int, small_blocks: None, tmp_path: Path
) -> None:
    hist = np.arange(512, dtype=np.int64).reshape(2, 256)
    memory = _table(50, 10**9).table()
    rows = _table(50, spill_rows, tmp_path)
    assert rows.spilled == (50 // spill_rows) * spill_rows and len(rows) == 50
    spilled = rows.table()
    assert (type(spilled.paths) is PathList) == (spill_rows <= 50)
    assert ("dhash" in spilled.spilled) == (spill_rows <= 50)
    assert all(c.owns(getattr(spilled, k)) for k, c in spilled.spilled.items())
    assert _sidecar(spilled, hist) == _sidecar(memory, hist)
    assert spilled.roots == memory.roots == ["/data/a/", "/data/b/", "/data/c/"]
    for name in ("root", "pixel_hash", "dhash", "phash", "height", "width"):
        assert np.array_equal(getattr(spilled, name), getattr(memory, name)), name
    assert spilled.paths == memory.paths
    assert [spilled.path(i) for i in range(50)] == [memory.path(i) for i in range(50)]


def test_a_table_taken_twice_and_rows_added_between_stay_consistent(tmp_path: Path) -> None:
    rows = _table(20, 6, tmp_path)
    first = rows.table()
    for row in _rows(40)[20:]:
        rows.add(*row)
    second = rows.table()
    assert len(first) == 20 and len(second) == 40
    assert _sidecar(first) == _sidecar(_table(20, 10**9).table())
    assert _sidecar(second) == _sidecar(_table(40, 10**9).table())


def test_a_spilled_table_pickles_as_a_plain_one(tmp_path: Path) -> None:
    fp = _table(30, 4, tmp_path).table()
    again = pickle.loads(pickle.dumps(fp))
    assert again.spilled == {} and again.paths == fp.paths
    assert _sidecar(again) == _sidecar(fp) == _sidecar(copy.deepcopy(fp))


def test_the_sidecar_reads_back_into_the_same_table(tmp_path: Path, small_blocks: None) -> None:
    fp = _table(60, 8, tmp_path).table()
    data = _sidecar(fp)
    back, _ = read_sidecar(io.BytesIO(data), len(data), fp.roots, 60, get_mode("L"))
    assert isinstance(back.paths, PathList) and back.paths == fp.paths == [r[1] for r in _rows(60)]
    for name in ("root", "pixel_hash", "dhash", "phash", "height", "width"):
        assert np.array_equal(getattr(back, name), getattr(fp, name)), name
    assert _sidecar(back) == data  # a loaded table writes the same bytes again


def _path_lists(tmp_path: Path) -> list[tuple[str, Any]]:
    names = [r[1] for r in _rows(40)]
    return [
        ("spilled", _table(40, 9, tmp_path).table().paths),
        ("strings", PathList.from_strings(names)),
    ]


@pytest.mark.parametrize("index", [0, 1], ids=["spilled", "from_strings"])
def test_path_list_behaves_as_the_list_of_its_names(
    index: int, tmp_path: Path, small_blocks: None
) -> None:
    names = [r[1] for r in _rows(40)]
    assert any(not n.isascii() for n in names) and any("\udcff" in n for n in names)
    _, paths = _path_lists(tmp_path)[index]
    assert len(paths) == 40 and list(paths) == names and paths == names and names == paths
    assert paths == tuple(names) and paths != names[:-1] and paths != [*names[:-1], "other"]
    assert (paths == "not a list") is False
    for i in (0, 3, 17, 39, -1, -40, np.int64(5), np.uint32(10)):
        assert paths[i] == names[int(i)]
    for sl in (slice(None), slice(2, 9), slice(-5, None), slice(None, None, 3), slice(9, 2, -2)):
        assert paths[sl] == names[sl]
    for bad in (40, -41):
        with pytest.raises(IndexError):
            paths[bad]
    assert names[3] in paths and "absent.png" not in paths
    assert paths.index(names[10]) == 10 and paths.count(names[10]) == 1
    assert list(reversed(paths)) == names[::-1]
    assert eval(repr(PathList.from_strings(names[:5]))) == names[:5]
    assert "more" in repr(paths)
    with pytest.raises(TypeError):
        hash(paths)
    assert paths.nbytes == len("".join(names).encode("utf-8", "surrogateescape"))


def test_an_empty_table_writes_and_reads_back() -> None:
    fp = FingerprintRows(str, spill_rows=1).table()
    assert len(fp) == 0 and list(fp.paths) == []
    data = _sidecar(fp)
    back, _ = read_sidecar(io.BytesIO(data), len(data), [], 0, get_mode("L"))
    assert len(back) == 0 and back.paths == []


def _held(folder: Path) -> list[str]:
    """Descriptors and mappings of this process on files in ``folder`` (deleted or not)."""
    held = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the descriptor listdir itself used
            continue
        if target.startswith(str(folder)):
            held.append(target)
    with open("/proc/self/maps") as maps:
        held += [line for line in maps if str(folder) in line]
    return held


linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


@linux_only
def test_spill_files_have_no_name_and_go_with_the_table(tmp_path: Path) -> None:
    folder = tmp_path / "spill"
    folder.mkdir()
    rows = _table(30, 4, folder)
    assert rows.spilled == 28 and list(folder.iterdir()) == []  # nothing to leave behind
    assert len(_held(folder)) == 8  # one open file per column
    fp = rows.table()
    del rows
    int(fp.dhash.sum()), list(fp.paths)  # mapped and read
    assert _held(folder)
    _sidecar(fp)
    del fp
    gc.collect()
    assert _held(folder) == [] and list(folder.iterdir()) == []


@linux_only
def test_nothing_is_held_after_an_exception(tmp_path: Path) -> None:
    folder = tmp_path / "spill"
    folder.mkdir()

    def driver() -> None:  # as compute's driver: rows fed until an image fails (--strict)
        rows = FingerprintRows(str, spill_rows=5, spill_dir=str(folder))
        for i, row in enumerate(_rows(40)):
            if i == 23:
                raise RuntimeError("image 23 cannot be read")
            rows.add(*row)

    with pytest.raises(RuntimeError) as caught:
        driver()
    assert _held(folder)  # the traceback still holds the driver's frame, and so its rows
    del caught
    gc.collect()
    assert _held(folder) == [] and list(folder.iterdir()) == []


@linux_only
def test_compute_spills_and_gives_the_manifest_it_gives_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = SyntheticSource(700, per_shard=150, seed=3)
    kept = normstat.compute(source, workers=1)
    folder = tmp_path / "spill"
    folder.mkdir()
    monkeypatch.setattr(table_module, "SPILL_ROWS", 64)
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    spilled = normstat.compute(source, workers=1)
    assert spilled.fingerprints is not None and "dhash" in spilled.fingerprints.spilled
    assert _held(folder)  # the rows were spilled there
    outs = []
    for name, stats in (("kept", kept), ("spilled", spilled)):
        stats.save(str(tmp_path / f"{name}.json"))
        outs.append(stats.data["sidecar"]["sha256"])
    assert outs[0] == outs[1]
    assert kept.data["files"] == spilled.data["files"] and kept.mean == spilled.mean
    del spilled, stats
    gc.collect()
    assert _held(folder) == []


# SyntheticSource


def test_synthetic_source_keeps_the_source_contract() -> None:
    source = SyntheticSource(2_345, per_shard=500, size=5, seed=1)
    assert isinstance(source, Source) and source.name == "synthetic://2345"
    items = source.items()
    assert items == sorted(items) and len(set(items)) == 2_345
    assert items[0] == Item("synthetic://2345", "000000/00000000.pgm")
    assert items[-1] == Item("synthetic://2345", "000004/00002344.pgm")
    shards = source.shards()
    assert [s.rel for s in shards] == ["000000", "000001", "000002", "000003", "000004"]
    assert all(s.items is None and s.root == source.name for s in shards)
    streamed, blobs = [], {}
    for shard in shards:
        for item, fh in source.stream(shard):
            assert not isinstance(fh, OSError)
            with fh:
                blobs[item] = fh.read()
            streamed.append(item)
    assert streamed == items  # items() is the concatenation of the streams, in order
    assert len(set(blobs.values())) == len(blobs)  # every image differs
    for item in items[::97]:
        with source.open(item) as fh:
            data = fh.read()
            assert data == blobs[item]
            fh.seek(1)
            assert fh.read(1) == data[1:2]
    with Image.open(io.BytesIO(blobs[items[7]])) as im:
        assert im.mode == "L" and im.size == (5, 5)
    assert source.manifest_root(source.name) == source.name and source.locations() == []
    assert len({source.version(i) for i in items}) == 1


def test_synthetic_source_is_deterministic_and_picklable() -> None:
    source = SyntheticSource(300, per_shard=64, seed=7)
    again = pickle.loads(pickle.dumps(source))
    assert again == source and again.shards() == source.shards()
    shard = source.shards()[2]
    ours = [(i, f.read()) for i, f in source.stream(shard)]  # type: ignore[union-attr]
    theirs = [(i, f.read()) for i, f in again.stream(shard)]  # type: ignore[union-attr]
    assert ours == theirs and len(ours) == 64
    other = SyntheticSource(300, per_shard=64, seed=8)
    assert other.open(ours[0][0]).read() != ours[0][1]
    assert other.shards()[0].version != shard.version


def test_synthetic_source_refuses_what_it_does_not_hold() -> None:
    source = SyntheticSource(100, per_shard=10)
    for item in (
        Item(source.name, "000000/00000100.pgm"),  # past the end
        Item(source.name, "000001/00000003.pgm"),  # in another shard
        Item(source.name, "00000/00000003.pgm"),  # not as named
        Item("synthetic://99", "000000/00000003.pgm"),
        Item(source.name, "a.png"),
    ):
        with pytest.raises(OSError):
            source.open(item)
    [(item, err)] = list(source.stream(Shard(source.name, "bogus", None, "v")))
    assert isinstance(err, OSError)
    assert SyntheticSource(0).shards() == [] and SyntheticSource(0).items() == []
    with pytest.raises(ValueError):
        SyntheticSource(10, per_shard=0)


def test_synthetic_names_sort_as_numbers_past_their_padding() -> None:
    source = SyntheticSource(12, per_shard=1)
    assert [s.rel for s in source.shards()][-2:] == ["000010", "000011"]
    wide = SyntheticSource(10**9, per_shard=10**8)  # nothing is generated up front
    assert wide.shards()[-1].rel == "000009"
    assert wide._item(10**9 - 1).rel == "000009/999999999.pgm"
    assert wide._item(5).rel == "000000/000000005.pgm"
