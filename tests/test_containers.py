"""Tar and parquet shards as sources (``normstat.sources.containers``): the images inside a shard
give exactly the statistics of the same images as a folder; members are named ``shard.tar/m``
and ``shard.parquet[row]`` everywhere (skipped lists, apply's outputs, check's leaks); damaged
and hostile shards are skipped with a reason, never a crash, never a write outside OUT."""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

import normstat
from normstat.errors import InputError, ManifestError
from normstat.sources import Item, LocalSource, Shard, resolve
from normstat.sources import tar as tar_module
from normstat.sources.containers import ContainerSource
from normstat.sources.tarscan import scan

RNG = np.random.default_rng(11)


def _encode(arr: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt)
    return buf.getvalue()


def _decoded(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _add(t: tarfile.TarFile, name: str, data: bytes, kind: bytes = tarfile.REGTYPE) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.size = kind, len(data) if kind == tarfile.REGTYPE else 0
    t.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def _write_tar(path: Path, members: list[tuple[str, bytes]], mode: str = "w") -> None:
    with tarfile.open(path, mode, format=tarfile.PAX_FORMAT) as t:
        for name, data in members:
            _add(t, name, data)


def _samples(n: int, seed: int) -> list[tuple[str, bytes]]:
    """WebDataset samples: an image (PNG or JPEG) with a .cls and a .json each."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        arr = rng.integers(0, 256, (int(rng.integers(4, 12)), int(rng.integers(4, 12)), 3))
        fmt = "JPEG" if i % 3 == 2 else "PNG"
        key = f"s{seed:02d}_{i:03d}"
        out.append((f"{key}.{fmt.lower()}", _encode(arr.astype(np.uint8), fmt)))
        out.append((f"{key}.cls", str(i % 5).encode()))
        out.append((f"{key}.json", b'{"caption": "x"}'))
    return out


def _images(members: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    return [(n, d) for n, d in members if n.endswith((".png", ".jpeg"))]


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four tar shards of samples (one with a corrupt PNG), and the same images as a folder."""
    base = tmp_path_factory.mktemp("shards")
    (base / "tars").mkdir()
    (base / "folder").mkdir()
    for s in range(4):
        members = _samples(6, s)
        if s == 2:
            members.append(("s02_bad.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 40))
        _write_tar(base / "tars" / f"shard-{s:03d}.tar", members)
        for name, data in _images(members):
            (base / "folder" / name).write_bytes(data)
    return base


def _same_stats(a: normstat.Stats, b: normstat.Stats) -> None:
    assert a.images == b.images
    assert a.mean == b.mean and a.std == b.std
    assert a.data["raw"] == b.data["raw"]
    assert a.data["state"] == b.data["state"]
    assert len(a.skipped) == len(b.skipped)


def test_tar_shards_give_the_folders_exact_statistics(shards: Path) -> None:
    folder = normstat.compute(shards / "folder", workers=1)
    tars = normstat.compute(shards / "tars", workers=2)  # workers reopen the pickled source
    _same_stats(folder, tars)
    good = _decoded_folder(shards / "folder")
    assert tars.images == len(good) == 24
    sums = [int(sum(int(a[..., c].sum()) for a in good)) for c in range(3)]
    assert tars.data["state"]["sum"] == sums
    assert [s["path"] for s in tars.skipped] == [str(shards / "tars/shard-002.tar/s02_bad.png")]


def _decoded_folder(folder: Path) -> list[np.ndarray]:
    return [_decoded(p.read_bytes()) for p in sorted(folder.iterdir()) if "bad" not in p.name]


def test_brace_pattern_through_the_api(shards: Path) -> None:
    pattern = str(shards / "tars" / "shard-{000..003}.tar")
    _same_stats(normstat.compute(pattern, workers=1), normstat.compute(shards / "tars", workers=1))
    two = normstat.compute(str(shards / "tars" / "shard-{000..001}.tar"), workers=1)
    assert two.images == 12


def test_apply_names_outputs_by_member(shards: Path, tmp_path: Path) -> None:
    stats = normstat.compute(shards / "folder", workers=1)
    one = shards / "tars" / "shard-001.tar"
    result = normstat.apply(one, stats, tmp_path / "out", workers=1, layout="hwc")
    folder = normstat.apply(shards / "folder", stats, tmp_path / "ref", workers=1, layout="hwc")
    assert result.written == 6 and not result.skipped and folder.written == 24
    written = sorted(p.relative_to(tmp_path / "out") for p in (tmp_path / "out").rglob("*.npy"))
    names = sorted(Path("shard-001.tar", f"{n}.npy") for n, _ in _images(_samples(6, 1)))
    assert written == names
    for rel in names:
        got = np.load(tmp_path / "out" / rel)
        np.testing.assert_array_equal(got, np.load(tmp_path / "ref" / rel.name))


def test_check_finds_leaks_between_tars_and_folders(tmp_path: Path) -> None:
    """Exact copies (pixel hashes) and a JPEG re-encoding, a near-duplicate verified on the
    pixels: the tar member is reopened through ``open``, on the train side and on the test
    side."""
    rng = np.random.default_rng(31)
    arrays = [rng.integers(0, 256, (12 + i, 17, 3), np.uint8) for i in range(4)]
    (tmp_path / "train").mkdir()
    tar_path = tmp_path / "train" / "train.tar"
    _write_tar(tar_path, [(f"t{i}.png", _encode(a)) for i, a in enumerate(arrays)])
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "copy.png").write_bytes(_encode(arrays[0]))
    Image.fromarray(arrays[2]).save(folder / "near.jpg", quality=95)
    (folder / "fresh.png").write_bytes(_encode(rng.integers(0, 256, (13, 17, 3), np.uint8)))
    member = str(tar_path) + "/t{}.png"
    report = normstat.check(folder, normstat.compute(tar_path, workers=1), workers=1)
    assert sorted((Path(x.test).name, x.train, x.kind) for x in report.leaked) == [
        ("copy.png", member.format(0), "exact"),
        ("near.jpg", member.format(2), "near"),
    ]
    back = normstat.check(tar_path, normstat.compute(folder, workers=1), workers=1)
    assert sorted((x.test, Path(x.train).name, x.kind) for x in back.leaked) == [
        (member.format(0), "copy.png", "exact"),
        (member.format(2), "near.jpg", "near"),
    ]


# ---------------------------------------------------------------- shards() and stream()


def test_shards_and_stream_cover_items_in_order(shards: Path, tmp_path: Path) -> None:
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for name in ("a.png", "z.png"):
        (mixed / name).write_bytes(_encode(RNG.integers(0, 256, (5, 5, 3), np.uint8)))
    (mixed / "m.tar").write_bytes((shards / "tars" / "shard-000.tar").read_bytes())
    _write_parquet(mixed / "p.parquet", [_encode(np.full((3, 3, 3), 7, np.uint8))] * 3, "binary")
    source = resolve(mixed)
    got = source.shards()
    assert [(s.rel, s.items is None) for s in got] == [
        ("a.png", False),
        ("m.tar", True),
        ("p.parquet", True),
        ("z.png", False),
    ]
    streamed = []
    for shard in pickle.loads(pickle.dumps(got)):
        for item, f in pickle.loads(pickle.dumps(source)).stream(shard):
            assert not isinstance(f, OSError)
            with f:
                data = f.read()
            with source.open(item) as again:  # the index agrees with the stream
                assert again.read() == data
            streamed.append(item)
    assert streamed == source.items()
    assert [i.rel for i in streamed[1:4]] == [  # .cls and .json: data, as WebDataset reads them
        "m.tar/s00_000.png",
        "m.tar/s00_001.png",
        "m.tar/s00_002.jpeg",
    ]
    assert [i.rel for i in streamed[-4:]] == [f"p.parquet[{r}]" for r in range(3)] + ["z.png"]
    before = source.version(Item(str(mixed), "m.tar/s00_000.png"))
    assert before and before.endswith(":s00_000.png")
    os.utime(mixed / "m.tar", ns=(1, 1))
    assert source.version(Item(str(mixed), "m.tar/s00_000.png")) != before
    assert got[1].version != source.shards()[1].version


def test_a_folder_named_like_a_tar_is_a_folder(tmp_path: Path) -> None:
    (tmp_path / "photos.tar").mkdir()
    data = _encode(np.zeros((4, 4, 3), np.uint8))
    (tmp_path / "photos.tar" / "a.png").write_bytes(data)
    source = ContainerSource(LocalSource((str(tmp_path),)))
    assert [i.rel for i in source.items()] == ["photos.tar/a.png"]
    with source.open(source.items()[0]) as f:
        assert f.read() == data
    assert normstat.compute(tmp_path, workers=1).images == 1


def test_large_members_are_windows_or_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over the in-memory bound a member is read through a window on an uncompressed tar and
    refused in a compressed one (never read whole into memory)."""
    data = _encode(RNG.integers(0, 256, (20, 20, 3), np.uint8))
    monkeypatch.setattr(tar_module, "MAX_IN_MEMORY", 100)
    _write_tar(tmp_path / "plain.tar", [("big.png", data)])
    _write_tar(tmp_path / "packed.tar", [("big.png", data)], mode="w:gz")
    plain = ContainerSource(LocalSource((str(tmp_path / "plain.tar"),)))
    ((item, f),) = plain.stream(plain.shards()[0])
    assert not isinstance(f, OSError) and not isinstance(f, io.BytesIO)
    with f:
        assert f.read() == data and f.seek(0, io.SEEK_END) == len(data)
    with plain.open(item) as g:
        assert g.read() == data
    packed = ContainerSource(LocalSource((str(tmp_path / "packed.tar"),)))
    ((_, err),) = packed.stream(packed.shards()[0])
    assert isinstance(err, OSError) and "compressed" in str(err.strerror)


def test_compressed_tar_named_tar_is_read(tmp_path: Path) -> None:
    members = _samples(3, 7)
    _write_tar(tmp_path / "z.tar", members, mode="w:gz")
    (tmp_path / "ref").mkdir()
    for name, data in _images(members):
        (tmp_path / "ref" / name).write_bytes(data)
    _same_stats(
        normstat.compute(tmp_path / "z.tar", workers=1),
        normstat.compute(tmp_path / "ref", workers=1),
    )
    source = resolve(tmp_path / "z.tar")
    with source.open(source.items()[1]) as f:  # through the index of a gzip stream
        assert f.read() == _images(members)[1][1]


# ---------------------------------------------------------------- damaged and hostile tars


def _stream_all(path: Path) -> list[tuple[str, str | None]]:
    source = ContainerSource(LocalSource((str(path),)))
    out = []
    for shard in source.shards():
        for item, f in source.stream(shard):
            if isinstance(f, OSError):
                out.append((item.rel, str(f.strerror)))
            else:
                f.close()
                out.append((item.rel, None))
    return out


def test_truncated_tar_gives_members_read_then_one_error(tmp_path: Path) -> None:
    members = _images(_samples(4, 3))
    _write_tar(tmp_path / "whole.tar", members)
    whole = (tmp_path / "whole.tar").read_bytes()
    with tarfile.open(tmp_path / "whole.tar") as t:
        third = t.getmembers()[2]
    cuts = {  # where the cut falls → what is read, and why the rest is not
        "in-data": (third.offset_data + 10, 2, "end-of-archive marker"),  # 3rd: cut short
        "in-header": (third.offset + 100, 2, "ends inside a member header"),
        "at-header": (third.offset, 2, "without the end-of-archive marker"),
    }
    for label, (cut, good, why) in cuts.items():
        path = tmp_path / f"{label}.tar"
        path.write_bytes(whole[:cut])
        got = _stream_all(path)
        assert [w for _, w in got[:good]] == [None] * good, (label, got)
        assert got[-1][0] == path.name, (label, got)
        assert f"damaged after {len(got) - 1} members" in str(got[-1][1]), (label, got)
        assert why in str(got[-1][1]), (label, got)
        assert len(got) == good + 1 + (label == "in-data"), (label, got)  # + the cut member
        listed = ContainerSource(LocalSource((str(path),))).items()
        assert [i.rel for i in listed] == [rel for rel, _ in got], label
        if label == "in-data":
            assert "unexpected end of data" in str(got[2][1])
        stats = normstat.compute(path, workers=1)
        assert stats.images == 2
        assert str(path) in [s["path"] for s in stats.skipped]
        with pytest.raises(OSError, match="damaged"):
            ContainerSource(LocalSource((str(path),))).open(Item(str(tmp_path), path.name))


def test_not_a_tar_and_empty_tar(tmp_path: Path) -> None:
    (tmp_path / "junk.tar").write_bytes(b"this is not a tar archive at all" * 40)
    (tmp_path / "empty.tar").write_bytes(b"")
    for name in ("junk.tar", "empty.tar"):
        got = _stream_all(tmp_path / name)
        assert len(got) == 1 and got[0][0] == name and "not a readable tar" in str(got[0][1])
    (tmp_path / "ok.png").write_bytes(_encode(np.zeros((3, 3, 3), np.uint8)))
    stats = normstat.compute(tmp_path, workers=1)
    assert stats.images == 1
    assert sorted(Path(s["path"]).name for s in stats.skipped) == ["empty.tar", "junk.tar"]


def test_hostile_members_are_skipped_or_ignored_never_written_outside(tmp_path: Path) -> None:
    img = _encode(RNG.integers(0, 256, (6, 6, 3), np.uint8))
    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w") as t:
        _add(t, "x.png", img)
    (tmp_path / "src").mkdir()
    path = tmp_path / "src" / "evil.tar"
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as t:
        _add(t, "good.png", img)
        _add(t, "../../escape.png", img)
        _add(t, "/abs/olute.png", img)
        _add(t, "a//b.png", img)
        _add(t, "a/./b.png", img)
        _add(t, "good.png", img)  # a duplicate: the first counts
        _add(t, "./dot.png", img)  # "./" prefixes are how tar writes a folder's contents
        _add(t, "link.png", b"", tarfile.SYMTYPE)
        _add(t, "hard.png", b"", tarfile.LNKTYPE)
        _add(t, "dev.png", b"", tarfile.CHRTYPE)
        _add(t, "sub", b"", tarfile.DIRTYPE)
        _add(t, "__meta__", b"{}")
        _add(t, "__key__/x.png", img)
        _add(t, "noextension", img)
        _add(t, ".hidden.png", img)
        _add(t, "nested.tar", inner.getvalue())  # a tar inside a tar: a member, not an image
        nul = tarfile.TarInfo("plain.png")
        nul.size, nul.pax_headers = len(img), {"path": "nul\0.png"}  # a pax name with a NUL
        t.addfile(nul, io.BytesIO(img))
    got = _stream_all(path)
    rels = [rel for rel, _ in got]
    assert rels == [
        "evil.tar/good.png",
        "evil.tar/#2",
        "evil.tar/#3",
        "evil.tar/#4",
        "evil.tar/#5",
        "evil.tar/good.png#6",
        "evil.tar/dot.png",
        "evil.tar/nested.tar",
        "evil.tar/#17",
    ]
    reasons = dict(got)
    assert "unsafe member name '../../escape.png'" in str(reasons["evil.tar/#2"])
    assert "duplicate" in str(reasons["evil.tar/good.png#6"])
    assert "'nul\\x00.png'" in str(reasons["evil.tar/#17"])
    stats = normstat.compute(path, workers=1)
    assert stats.images == 2  # good.png and dot.png
    assert sorted(Path(s["path"]).name for s in stats.skipped) == [
        "#17",
        "#2",
        "#3",
        "#4",
        "#5",
        "good.png#6",
    ]
    out = tmp_path / "out"
    result = normstat.apply(path, stats, out, workers=1)
    assert result.written == 2
    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert [f for f in files if f.endswith(".npy") or not f.startswith("out/")] == [
        "out/evil.tar/dot.png.npy",
        "out/evil.tar/good.png.npy",
        "src/evil.tar",
    ]


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_scan_reads_headers_as_tarfile_does(tmp_path: Path, fmt: int) -> None:
    """The fast header scan against tarfile itself: ustar prefixes, GNU long names and links,
    pax records (a float mtime, as WebDataset writes), global pax headers, base-256 numbers."""
    path = tmp_path / "t.tar"
    pax = {"comment": "global"} if fmt == tarfile.PAX_FORMAT else None
    with tarfile.open(path, "w", format=fmt, pax_headers=pax) as t:
        _add(t, "a.png", b"x" * 700)
        _add(t, "d" * 120 + "/b.png", b"y" * 10)  # ustar: a prefix
        _add(t, "ü/é.png", b"z")
        info = tarfile.TarInfo("f.png")
        info.size, info.mtime = 3, 1.5  # pax records (PAX)
        info.uid = 8**8 if fmt != tarfile.USTAR_FORMAT else 0  # base-256 (GNU), or pax
        t.addfile(info, io.BytesIO(b"abc"))
        _add(t, "sub", b"", tarfile.DIRTYPE)
        link = tarfile.TarInfo("link.png")
        link.type, link.linkname = (
            tarfile.SYMTYPE,
            "t" * 120 if fmt != tarfile.USTAR_FORMAT else "t",
        )
        t.addfile(link)
        if fmt != tarfile.USTAR_FORMAT:
            _add(t, "n" * 150 + ".png", b"w" * 513)  # a GNU long name, or a pax path
        _add(t, "last.png", b"")
    with open(path, "rb") as f:
        got = [tuple(h) for h in scan(f)]
    with tarfile.open(path, encoding="utf-8") as t:
        want = [(m.name, m.isreg(), m.size, m.offset_data) for m in t.getmembers()]
    assert got == want and len(got) >= 7


def test_a_damaged_header_ends_the_tar_with_a_reason(tmp_path: Path) -> None:
    members = _images(_samples(3, 4))
    _write_tar(tmp_path / "t.tar", members)
    with tarfile.open(tmp_path / "t.tar") as t:
        second = t.getmembers()[1]
    data = bytearray((tmp_path / "t.tar").read_bytes())
    data[second.offset + 20 : second.offset + 40] = b"\xff" * 20
    (tmp_path / "t.tar").write_bytes(bytes(data))
    got = _stream_all(tmp_path / "t.tar")
    assert [rel for rel, _ in got] == [f"t.tar/{members[0][0]}", "t.tar"]
    assert "damaged after 1 members: bad checksum" in str(got[-1][1])


@pytest.mark.skipif(shutil.which("tar") is None, reason="GNU tar writes the sparse members")
@pytest.mark.parametrize("fmt", ["gnu", "pax"])
def test_sparse_members_are_read_by_tarfile(tmp_path: Path, fmt: str) -> None:
    """A sparse member (``tar -S``) hands the rest of the archive to tarfile: it and the
    members after it give the same statistics as the files."""
    src = tmp_path / "src"
    src.mkdir()
    pixels = np.zeros((1000, 1000), np.uint8)
    pixels[500, 10:20] = 255  # mostly zeros: holes of the sparse file
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PPM")
    with open(src / "a_sparse.pgm", "wb") as fh:  # zero blocks left as holes
        data = buf.getvalue()
        for i in range(0, len(data), 4096):
            block = data[i : i + 4096]
            if block.strip(b"\0"):
                fh.write(block)
            else:
                fh.seek(len(block), os.SEEK_CUR)
        fh.truncate(len(data))
    (src / "b_after.png").write_bytes(_encode(RNG.integers(0, 256, (5, 5, 3), np.uint8)))
    path = tmp_path / "s.tar"
    cmd = ["tar", f"--format={fmt}", "-cSf", str(path), "a_sparse.pgm", "b_after.png"]
    subprocess.run(cmd, cwd=src, check=True)
    with tarfile.open(path) as t:
        assert t.getmembers()[0].issparse()
    got = normstat.compute(path, workers=1)
    ref = normstat.compute(src, workers=1)
    assert got.images == 2 and got.data["state"] == ref.data["state"]
    source = resolve(path)
    with source.open(Item(str(tmp_path), "s.tar/a_sparse.pgm")) as f:
        assert f.read() == (src / "a_sparse.pgm").read_bytes()


def test_huge_size_claims_and_extended_headers_stay_bounded(tmp_path: Path) -> None:
    img = _encode(np.zeros((4, 4, 3), np.uint8))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
        _add(t, "a.png", img)
    head = buf.getvalue()[:1024]
    claim = tarfile.TarInfo("huge.png")
    claim.size = 1 << 40  # a terabyte, in a file of a few KiB
    (tmp_path / "huge.tar").write_bytes(head + claim.tobuf(tarfile.GNU_FORMAT) + b"\0" * 4096)
    got = _stream_all(tmp_path / "huge.tar")
    assert [rel for rel, _ in got] == ["huge.tar/a.png", "huge.tar/huge.png", "huge.tar"]
    long = tarfile.TarInfo("x" * 300 + ".png")
    long.size = 0
    block = bytearray(long.tobuf(tarfile.GNU_FORMAT)[:512])  # the GNU long-name header
    block[124:136] = b"%011o\0" % (1 << 30)  # claims a 1 GiB name
    block[148:156] = b" " * 8
    block[148:155] = b"%06o\0" % sum(block)
    (tmp_path / "longname.tar").write_bytes(head + bytes(block) + b"\0" * 4096)
    got = _stream_all(tmp_path / "longname.tar")
    assert [rel for rel, _ in got] == ["longname.tar/a.png", "longname.tar"]
    assert "extended header" in str(got[-1][1])


# ---------------------------------------------------------------- parquet


def _write_parquet(path: Path, images: list[bytes | None], kind: str, **extra: list) -> None:
    if kind == "struct":
        typ = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
        rows = [
            None if b is None else {"bytes": b, "path": f"{i}.png"} for i, b in enumerate(images)
        ]
        col = pa.array(rows, type=typ)
    else:
        col = pa.array(images, type=pa.binary())
    table = pa.table({"image": col, "label": list(range(len(images))), **extra})
    pq.write_table(table, path, row_group_size=4)


def test_parquet_struct_and_binary_columns_match_the_folder(tmp_path: Path) -> None:
    arrays = [RNG.integers(0, 256, (7, 5, 3), np.uint8) for _ in range(10)]
    blobs = [_encode(a) for a in arrays]
    _write_parquet(tmp_path / "hf.parquet", [*blobs[:5], None], "struct")
    _write_parquet(tmp_path / "bin.parquet", blobs[5:], "binary")
    (tmp_path / "ref").mkdir()
    for i, b in enumerate(blobs):
        (tmp_path / "ref" / f"{i}.png").write_bytes(b)
    ref = normstat.compute(tmp_path / "ref", workers=1)
    got = normstat.compute([tmp_path / "hf.parquet", tmp_path / "bin.parquet"], workers=1)
    assert got.images == ref.images == 10
    assert got.data["state"] == ref.data["state"] and got.data["raw"] == ref.data["raw"]
    assert got.data["state"]["sum"] == [
        int(sum(int(a[..., c].sum()) for a in arrays)) for c in range(3)
    ]
    assert [s["path"] for s in got.skipped] == [str(tmp_path / "hf.parquet[5]")]
    source = resolve(tmp_path / "hf.parquet")
    with source.open(Item(str(tmp_path), "hf.parquet[4]")) as f:  # row group 1, row 0
        assert f.read() == blobs[4]
    with pytest.raises(FileNotFoundError):
        source.open(Item(str(tmp_path), "hf.parquet[6]"))
    report = normstat.check(tmp_path / "ref" / "4.png", got, workers=1)  # rows reopened
    assert [(x.train, x.kind) for x in report.leaked] == [
        (str(tmp_path / "hf.parquet[4]"), "exact")
    ]


def test_parquet_column_choice(tmp_path: Path) -> None:
    blobs = [_encode(np.full((3, 3, 3), v, np.uint8)) for v in (10, 20)]
    other = [_encode(np.full((3, 3, 3), v, np.uint8)) for v in (200, 250)]
    path = tmp_path / "two.parquet"
    _write_parquet(path, blobs, "binary", thumb=pa.array(other, type=pa.binary()))
    with pytest.raises(InputError, match=r"several columns.*image, thumb.*--column NAME"):
        normstat.compute(path, workers=1)
    for column, value in (("image", 15), ("thumb", 225)):
        source = ContainerSource(LocalSource((str(path),)), column=column)
        stats = normstat.compute(source, workers=1)
        assert stats.images == 2 and stats.data["raw"]["mean"] == [value] * 3
    with pytest.raises(InputError, match="no column 'nope'"):
        normstat.compute(ContainerSource(LocalSource((str(path),)), column="nope"), workers=1)
    with pytest.raises(InputError, match="column 'label' holds int64, not image bytes"):
        normstat.compute(ContainerSource(LocalSource((str(path),)), column="label"), workers=1)
    pq.write_table(pa.table({"label": [1, 2], "name": ["a", "b"]}), tmp_path / "none.parquet")
    with pytest.raises(InputError, match=r"no image column.*--column NAME"):
        normstat.compute(tmp_path / "none.parquet", workers=1)


def test_parquet_image_feature_metadata_picks_among_binaries(tmp_path: Path) -> None:
    blobs = [_encode(np.full((3, 3, 3), 9, np.uint8))]
    table = pa.table({"image": pa.array(blobs), "raw": pa.array([b"\0\1"])})
    meta = b'{"info": {"features": {"image": {"_type": "Image"}, "raw": {"_type": "Value"}}}}'
    pq.write_table(table.replace_schema_metadata({b"huggingface": meta}), tmp_path / "d.parquet")
    assert normstat.compute(tmp_path / "d.parquet", workers=1).data["raw"]["mean"] == [9] * 3


def test_damaged_parquet_and_missing_pyarrow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really" * 10)
    (tmp_path / "ok.png").write_bytes(_encode(np.zeros((3, 3, 3), np.uint8)))
    stats = normstat.compute(tmp_path, workers=1)
    assert stats.images == 1
    assert [
        (Path(s["path"]).name, "not a readable parquet" in s["reason"]) for s in stats.skipped
    ] == [("bad.parquet", True)]
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)  # import fails as if not installed
    with pytest.raises(InputError, match=r"bad.parquet: .*pip install 'normstat\[parquet\]'"):
        normstat.compute(tmp_path, workers=1)


def test_container_source_pickles_without_handles(shards: Path) -> None:
    source = ContainerSource(LocalSource((str(shards / "tars"),)), column="image")
    items = source.items()
    with source.open(items[0]):
        pass
    again = pickle.loads(pickle.dumps(source))
    assert again == source and again.items() == items
    assert isinstance(source, normstat.sources.Source)
    assert source.name == str(shards / "tars") and source.locations() == [str(shards / "tars")]
    shard = Shard(str(shards / "tars"), "shard-000.tar", None, "v")
    assert [i for i, _ in source.stream(shard)] == items[:6]


def test_the_column_compute_was_given_is_recorded_and_check_reopens_rows_by_it(
    tmp_path: Path,
) -> None:
    """Near-duplicates are verified on the contributor's pixels: its row is reopened in the
    column the statistics came from, which auto-detection could not choose (two columns)."""
    thumbs = [RNG.integers(0, 256, (16, 16, 3), np.uint8) for _ in range(3)]
    path = tmp_path / "two.parquet"
    images = [_encode(np.full((16, 16, 3), v, np.uint8)) for v in (10, 20, 30)]
    _write_parquet(path, images, "binary", thumb=pa.array(map(_encode, thumbs), pa.binary()))
    stats = normstat.compute(path, workers=1, column="thumb")
    assert stats.data["options"]["column"] == "thumb"
    (tmp_path / "test").mkdir()
    Image.fromarray(thumbs[1]).save(tmp_path / "test" / "near.jpg", quality=95)
    saved = tmp_path / "stats.json"
    stats.save(str(saved))
    report = normstat.check(tmp_path / "test", saved, workers=1)
    assert [(x.train, x.kind) for x in report.leaked] == [(str(path) + "[1]", "near")]
    data = json.loads(saved.read_text())
    data["options"]["column"] = ["thumb"]
    saved.write_text(json.dumps(data))
    with pytest.raises(ManifestError, match=r"options\.column"):
        normstat.Stats.load(str(saved))
