"""The manifest contract: stable keys, the fingerprint sidecar, strict load, atomic save."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import copy_manifest, sidecar_of
from PIL import Image

import normstat
from normstat import ManifestError, Stats


@pytest.fixture(autouse=True)
def _restore_pillow_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _gradient(width: int, height: int, rising: bool) -> np.ndarray:
    row = np.arange(width, dtype=np.int64) * 255 // (width - 1)
    if not rising:
        row = row[::-1]
    return np.repeat(row[None, :], height, axis=0).astype(np.uint8)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, tuple[int, int]]]:
    """Images with known relative paths and sizes (H, W); a BMP twin of one PNG; a corrupt file."""
    root = tmp_path_factory.mktemp("ds")
    (root / "b" / "c").mkdir(parents=True)
    rng = np.random.default_rng(31)
    sizes: dict[str, tuple[int, int]] = {}
    for rel, (h, w) in {
        "b/c/deep.png": (5, 17),
        "b/one.png": (12, 3),
        "a.png": (9, 9),
        "z.png": (1, 1),
    }.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB").save(root / rel)
        sizes[rel] = (h, w)
    Image.open(root / "a.png").save(root / "a-twin.bmp")  # same pixels, other format and name
    sizes["a-twin.bmp"] = (9, 9)
    Image.fromarray(_gradient(90, 8, True), "L").convert("RGB").save(root / "rise.png")
    Image.fromarray(_gradient(90, 8, False), "L").convert("RGB").save(root / "fall.png")
    sizes["rise.png"] = sizes["fall.png"] = (8, 90)
    (root / "broken.png").write_bytes(b"not a png")
    return root, sizes


@pytest.fixture(scope="module")
def saved(
    dataset: tuple[Path, dict[str, tuple[int, int]]], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Stats, Path]:
    root, _ = dataset
    stats = normstat.compute(root, workers=1)
    path = tmp_path_factory.mktemp("saved") / "stats.json"
    stats.save(str(path))
    return stats, path


# ---------------------------------------------------------------- round trip and keys


def test_round_trip(saved: tuple[Stats, Path]) -> None:
    stats, path = saved
    loaded = Stats.load(str(path))
    assert loaded.path == str(path)
    assert loaded.data == json.loads(json.dumps(stats.data))
    assert loaded.mean == stats.mean and loaded.std == stats.std
    assert loaded.channels == stats.channels and loaded.images == stats.images
    assert loaded.skipped == stats.skipped
    assert loaded.to_torchvision() == {"mean": stats.mean, "std": stats.std}
    assert loaded.fingerprints is not None and stats.fingerprints is not None
    assert loaded.fingerprints.paths == stats.fingerprints.paths
    for field in ("root", "pixel_hash", "dhash", "height", "width"):
        np.testing.assert_array_equal(
            getattr(loaded.fingerprints, field), getattr(stats.fingerprints, field)
        )
    assert loaded.histogram is not None and stats.histogram is not None
    np.testing.assert_array_equal(loaded.histogram, stats.histogram)
    assert loaded.histogram.sum(axis=1).tolist() == [stats.data["pixels"]] * 3
    light = Stats.load(str(path), with_fingerprints=False)
    assert light.fingerprints is None and light.mean == stats.mean


def test_sidecar_path(saved: tuple[Stats, Path], dataset: tuple[Path, dict]) -> None:
    stats, path = saved
    assert stats.sidecar_path == str(sidecar_of(path))
    assert Stats.load(str(path), with_fingerprints=False).sidecar_path == str(sidecar_of(path))
    with pytest.raises(ManifestError, match="have not been saved"):
        _ = normstat.compute(dataset[0], workers=1).sidecar_path


def test_stable_keys(saved: tuple[Stats, Path], dataset: tuple[Path, dict]) -> None:
    _, path = saved
    root, sizes = dataset
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["schema"] == "normstat/stats@1"
    assert data["channels"] == ["R", "G", "B"]
    assert data["images"] == len(sizes)
    for key in ("mean", "std"):
        assert len(data[key]) == 3
        assert all(isinstance(v, float) and 0 <= v <= 1 for v in data[key])
    assert data["skipped"] == [
        {"path": str(root / "broken.png"), "reason": data["skipped"][0]["reason"]}
    ]
    assert data["skipped"][0]["reason"]
    assert re.fullmatch(r"stats\.[0-9a-f]{12}\.fingerprints\.npz", data["sidecar"]["path"])
    assert data["sidecar"]["path"][6:18] == data["sidecar"]["sha256"][:12]
    assert data["sidecar"]["sha256"] == _sha256(sidecar_of(path))
    assert data["files"]["count"] == len(sizes)


def test_sidecar_rows(saved: tuple[Stats, Path], dataset: tuple[Path, dict]) -> None:
    _, path = saved
    root, sizes = dataset
    fp = Stats.load(str(path)).fingerprints
    assert fp is not None
    order = sorted(sizes)  # POSIX relative paths, sorted
    assert fp.paths == order
    assert len(fp) == len(order)
    assert [fp.roots[i] for i in fp.root] == [str(root)] * len(order)
    assert fp.pixel_hash.dtype == np.uint8 and fp.pixel_hash.shape == (len(order), 16)
    assert fp.dhash.dtype == np.uint64 and fp.dhash.shape == (len(order),)
    assert fp.height.tolist() == [sizes[p][0] for p in order]
    assert fp.width.tolist() == [sizes[p][1] for p in order]
    hashes = {p: bytes(row) for p, row in zip(fp.paths, fp.pixel_hash, strict=True)}
    assert hashes["a.png"] == hashes["a-twin.bmp"]  # decoded pixels, not file bytes
    others = [h for p, h in hashes.items() if p != "a-twin.bmp"]
    assert len(set(others)) == len(others)
    dh = dict(zip(fp.paths, fp.dhash.tolist(), strict=True))
    assert dh["rise.png"] == 2**64 - 1  # brightness rises everywhere: every bit set
    assert dh["fall.png"] == 0


def _files_digest(root: Path) -> str:
    return normstat.compute(root, workers=1).data["files"]["sha256"]


def test_files_digest_tracks_contributors(tmp_path: Path) -> None:
    rng = np.random.default_rng(41)
    arrays = [rng.integers(0, 256, (6, 7, 3), dtype=np.uint8) for _ in range(3)]
    for i, arr in enumerate(arrays):
        Image.fromarray(arr, "RGB").save(tmp_path / f"{i}.png")
    first = _files_digest(tmp_path)
    assert len(first) == 64 and int(first, 16) >= 0
    assert _files_digest(tmp_path) == first  # deterministic
    changed = arrays[1].copy()
    changed[0, 0, 0] ^= 1
    Image.fromarray(changed, "RGB").save(tmp_path / "1.png")
    second = _files_digest(tmp_path)
    assert second != first
    Image.fromarray(arrays[1], "RGB").save(tmp_path / "1.png")
    assert _files_digest(tmp_path) == first  # same pixels again: same digest
    (tmp_path / "1.png").rename(tmp_path / "renamed.png")
    assert _files_digest(tmp_path) not in (first, second)


# ---------------------------------------------------------------- validation on load


def _rewrite(path: Path, edit) -> None:  # type: ignore[no-untyped-def]
    data = json.loads(path.read_text(encoding="utf-8"))
    edit(data)
    text = json.dumps(data, indent=2).replace('"__NAN__"', "NaN")
    path.write_text(text, encoding="utf-8")


DEFECTS = {  # name: (edit, what the reason must mention)
    "schema-other": (lambda d: d.update(schema="imagestats/v1"), "schema"),
    "schema-newer": (lambda d: d.update(schema="normstat/stats@3"), "schema"),
    "schema-2-without-counts": (lambda d: d.update(schema="normstat/stats@2"), "pixels_valid"),
    "no-schema": (lambda d: d.pop("schema"), "schema"),
    "no-mean": (lambda d: d.pop("mean"), "mean"),
    "no-std": (lambda d: d.pop("std"), "std"),
    "no-channels": (lambda d: d.pop("channels"), "channels"),
    "no-images": (lambda d: d.pop("images"), "images"),
    "no-skipped": (lambda d: d.pop("skipped"), "skipped"),
    "nan-std": (lambda d: d["std"].__setitem__(0, "__NAN__"), "std"),
    "nan-mean": (lambda d: d["mean"].__setitem__(2, "__NAN__"), "mean"),
    "negative-std": (lambda d: d["std"].__setitem__(1, -1e-3), "negative"),
    "short-mean": (lambda d: d["mean"].pop(), "mean"),
    "sidecar-sha": (lambda d: d["sidecar"].update(sha256="0" * 64), "sha256"),
    "empty-object": (lambda d: d.clear(), "schema"),
}


@pytest.mark.parametrize("defect", list(DEFECTS))
def test_load_rejects(defect: str, saved: tuple[Stats, Path], tmp_path: Path) -> None:
    path = copy_manifest(saved[1], tmp_path)
    edit, mention = DEFECTS[defect]
    _rewrite(path, edit)
    if "nan" in defect:
        assert "NaN" in path.read_text(encoding="utf-8")
    with pytest.raises(ManifestError) as info:
        Stats.load(str(path))
    assert info.value.path == str(path)
    assert mention in info.value.reason


def test_load_rejects_non_object(saved: tuple[Stats, Path], tmp_path: Path) -> None:
    path = copy_manifest(saved[1], tmp_path)
    path.write_text("[1, 2, 3]\n", encoding="utf-8")
    with pytest.raises(ManifestError, match="object"):
        Stats.load(str(path))
    path.write_text("{ truncated", encoding="utf-8")
    with pytest.raises(ManifestError, match="not JSON"):
        Stats.load(str(path))


def test_load_rejects_tampered_sidecar(saved: tuple[Stats, Path], tmp_path: Path) -> None:
    path = copy_manifest(saved[1], tmp_path)
    side = sidecar_of(path)
    blob = bytearray(side.read_bytes())
    blob[-1] ^= 0xFF
    side.write_bytes(bytes(blob))
    with pytest.raises(ManifestError, match="sha256"):
        Stats.load(str(path))
    with pytest.raises(ManifestError, match="sha256"):
        Stats.load(str(path), with_fingerprints=False)


def test_load_rejects_sidecar_outside(saved: tuple[Stats, Path], tmp_path: Path) -> None:
    """A sidecar path with '..' is refused even when the file it names exists and matches."""
    inner = tmp_path / "inner"
    inner.mkdir()
    path = copy_manifest(saved[1], inner)
    name = sidecar_of(path).name
    (inner / name).rename(tmp_path / name)
    _rewrite(path, lambda d: d["sidecar"].update(path=f"../{name}"))
    with pytest.raises(ManifestError, match="sidecar"):
        Stats.load(str(path))
    _rewrite(path, lambda d: d["sidecar"].update(path=str(tmp_path / name)))
    with pytest.raises(ManifestError, match="sidecar"):
        Stats.load(str(path))


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no such file"):
        Stats.load(str(tmp_path / "absent.json"))


def test_sidecar_with_unknown_array_still_loads(saved: tuple[Stats, Path], tmp_path: Path) -> None:
    stats, src = saved
    path = copy_manifest(src, tmp_path)
    side = sidecar_of(path)
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.arange(7, dtype=np.float32), allow_pickle=False)
    with zipfile.ZipFile(side, "a") as zf:
        zf.writestr("embedding_v2.npy", buf.getvalue())
    _rewrite(path, lambda d: d["sidecar"].update(sha256=_sha256(side)))
    loaded = Stats.load(str(path))
    assert loaded.fingerprints is not None and stats.fingerprints is not None
    assert loaded.fingerprints.paths == stats.fingerprints.paths
    np.testing.assert_array_equal(loaded.fingerprints.pixel_hash, stats.fingerprints.pixel_hash)
    assert loaded.mean == stats.mean


# ---------------------------------------------------------------- atomic writes


@pytest.fixture(scope="module")
def other_stats(tmp_path_factory: pytest.TempPathFactory) -> Stats:
    root = tmp_path_factory.mktemp("other")
    rng = np.random.default_rng(43)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (4, 4), dtype=np.uint8), "L").save(root / f"{i}.png")
    return normstat.compute(root, workers=1)


def _failing_replace(monkeypatch: pytest.MonkeyPatch, fail_on_call: int) -> list[tuple]:
    real = os.replace
    calls: list[tuple] = []

    def fake(src, dst, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append((src, dst))
        if len(calls) >= fail_on_call:
            raise OSError(28, "No space left on device (simulated)")
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", fake)
    return calls


@pytest.mark.parametrize("fail_on_call", [1, 2])
def test_failed_save_keeps_old_manifest_bytes(
    fail_on_call: int,
    saved: tuple[Stats, Path],
    other_stats: Stats,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Whichever rename fails (sidecar: 1, manifest: 2), the old manifest file is untouched, still
    loads, and no temp file is left behind."""
    path = copy_manifest(saved[1], tmp_path)
    before = path.read_bytes()
    calls = _failing_replace(monkeypatch, fail_on_call)
    with pytest.raises(OSError, match="simulated"):
        other_stats.save(str(path))
    monkeypatch.undo()
    assert len(calls) == fail_on_call
    assert path.read_bytes() == before
    assert _hidden(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [sidecar_of(path).name, "stats.json"]
    # ...and it still loads: its sidecar was not replaced under it.
    loaded = Stats.load(str(path))
    assert loaded.images == saved[0].images and loaded.mean == saved[0].mean


def test_save_without_fingerprints_refused(tmp_path: Path) -> None:
    stats = Stats({"schema": "normstat/stats@1"})
    with pytest.raises(ManifestError):
        stats.save(str(tmp_path / "s.json"))
    assert list(tmp_path.iterdir()) == []
