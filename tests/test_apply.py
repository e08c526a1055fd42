"""``normstat apply``: scalings against float64 references, layout/dtype, output tree, resume,
refusals, and crash safety (SIGKILL mid-run leaves no partial .npy)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import describe, invoke
from PIL import Image

import normstat
from normstat.verbs.apply.journal import JOURNAL, LOCK

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
IMAGENET_STD = np.array([0.229, 0.224, 0.225])
ATOL = 1e-5  # float32 output vs float64 reference


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file under root (hidden ones included), relative POSIX path → content."""
    out = {}
    for path in root.rglob("*"):
        if path.is_file():
            out[path.relative_to(root).as_posix()] = path.read_bytes()
    return out


def npy_files(root: Path) -> list[Path]:
    if not root.exists():
        return []
    return sorted(p for p in root.rglob("*.npy") if p.is_file())


def ref_stats(arrays: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Pooled per-channel mean/std in [0, 1] units, float64, population std."""
    flat = np.concatenate([a.reshape(-1, a.shape[2]) for a in arrays]).astype(np.float64) / 255
    return flat.mean(axis=0), flat.std(axis=0)


# --------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def train(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """30 random RGB PNGs of different sizes in a nested tree, and their manifest."""
    base = tmp_path_factory.mktemp("apply_train")
    src = base / "train"
    rng = np.random.default_rng(1234)
    arrays: dict[str, np.ndarray] = {}
    for i in range(30):
        folder = ["", "a/", "a/b/"][i % 3]
        rel = f"{folder}img{i:02d}.png"
        h, w = (int(v) for v in rng.integers(8, 41, size=2))
        # Different per-channel levels so the three channels have different statistics.
        lo = np.array([0, 40, 90])[i % 3]
        arr = rng.integers(lo, 256, size=(h, w, 3), dtype=np.uint8)
        arr[..., 1] = rng.integers(0, 200, size=(h, w), dtype=np.uint8)
        (src / folder).mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(src / rel)
        arrays[rel] = arr
    stats_dir = base / "stats"
    stats_dir.mkdir()
    stats_path = stats_dir / "stats.json"
    normstat.compute(src, workers=1).save(str(stats_path))
    manifest = json.loads(stats_path.read_text())
    return SimpleNamespace(base=base, src=src, arrays=arrays, stats=stats_path, manifest=manifest)


@pytest.fixture(scope="module")
def standard_out(train: SimpleNamespace) -> SimpleNamespace:
    """The train set applied with the defaults (standard, pooled, float32, chw), workers=1."""
    out = train.base / "out_standard"
    result = normstat.apply(train.src, train.stats, out, workers=1)
    return SimpleNamespace(out=out, result=result)


def load_all(out: Path, rels) -> dict[str, np.ndarray]:
    return {rel: np.load(out / f"{rel}.npy") for rel in rels}


# --------------------------------------------------------------------------------------------
# standard scaling on the train set itself


def test_manifest_matches_numpy_reference(train: SimpleNamespace) -> None:
    mean, std = ref_stats(list(train.arrays.values()))
    np.testing.assert_allclose(train.manifest["mean"], mean, rtol=0, atol=1e-12)
    np.testing.assert_allclose(train.manifest["std"], std, rtol=0, atol=1e-12)
    assert train.manifest["mode"] == "RGB"
    assert train.manifest["images"] == 30


def test_standard_on_train_gives_zero_mean_unit_std(
    train: SimpleNamespace, standard_out: SimpleNamespace
) -> None:
    res = standard_out.result
    assert (res.written, res.kept, res.skipped) == (30, 0, [])
    outputs = load_all(standard_out.out, train.arrays)
    flat = np.concatenate([o.astype(np.float64).reshape(3, -1) for o in outputs.values()], axis=1)
    assert flat.shape == (3, sum(a.shape[0] * a.shape[1] for a in train.arrays.values()))
    mean, std = flat.mean(axis=1), flat.std(axis=1)
    assert np.all(np.abs(mean) < 1e-5), mean
    assert np.all(np.abs(std - 1) < 1e-5), std


def test_output_tree_mirrors_sources(train: SimpleNamespace, standard_out: SimpleNamespace) -> None:
    out = standard_out.out
    found = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    expected = {f"{rel}.npy" for rel in train.arrays} | {"normstat-apply.json", JOURNAL}
    assert found == expected
    assert (out / "a" / "b" / "img02.png.npy").is_file()
    for rel, arr in train.arrays.items():
        y = np.load(out / f"{rel}.npy", mmap_mode="r")
        assert isinstance(y, np.memmap)
        assert y.dtype == np.dtype(np.float32)  # exactly float32, not promoted to float64
        assert y.shape == (3, arr.shape[0], arr.shape[1])


def test_standard_values_match_reference(
    train: SimpleNamespace, standard_out: SimpleNamespace
) -> None:
    mean = np.array(train.manifest["mean"], dtype=np.float64)
    std = np.array(train.manifest["std"], dtype=np.float64)
    for rel, arr in train.arrays.items():
        ref = ((arr.astype(np.float64) / 255 - mean) / std).transpose(2, 0, 1)
        got = np.load(standard_out.out / f"{rel}.npy")
        np.testing.assert_allclose(got, ref, rtol=0, atol=ATOL, err_msg=rel)


# --------------------------------------------------------------------------------------------
# every scaling against a hand reference


def _reference(arr: np.ndarray, scale: str, mean, std) -> np.ndarray:
    x = arr.astype(np.float64)
    if scale == "unit":
        y = x / 255
    elif scale == "symmetric":
        y = x / 255 * 2 - 1
    elif scale == "per-image":
        flat = x.reshape(-1, x.shape[2])
        y = (x - flat.mean(axis=0)) / flat.std(axis=0)
    else:
        y = (x / 255 - np.asarray(mean)) / np.asarray(std)
    return y.transpose(2, 0, 1)


@pytest.mark.parametrize(
    ("scale", "std_kind", "preset"),
    [
        ("unit", "pooled", False),
        ("symmetric", "pooled", False),
        ("per-image", "pooled", False),
        ("standard", "pooled", False),
        ("standard", "per-image-mean", False),
        ("standard", "pooled", True),
    ],
    ids=["unit", "symmetric", "per-image", "standard", "per-image-mean-std", "imagenet"],
)
def test_scalings_match_hand_reference(
    train: SimpleNamespace, tmp_path: Path, scale: str, std_kind: str, preset: bool
) -> None:
    man = train.manifest
    if preset:
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    else:
        mean = np.array(man["mean"])
        std = np.array(man["std"] if std_kind == "pooled" else man["std_per_image_mean"])
    if std_kind == "per-image-mean":
        # Guard: the two stds differ, so using the wrong one would fail.
        assert np.all(np.abs(np.array(man["std"]) - std) > 1e-4)
    out = tmp_path / "out"
    stats = "imagenet" if preset else train.stats
    res = normstat.apply(train.src, stats, out, workers=1, scale=scale, std=std_kind)
    assert res.written == 30
    for rel, arr in train.arrays.items():
        got = np.load(out / f"{rel}.npy")
        assert got.dtype == np.float32
        ref = _reference(arr, scale, mean, std)
        np.testing.assert_allclose(got, ref, rtol=0, atol=ATOL, err_msg=rel)


def test_cli_imagenet_preset(train: SimpleNamespace, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = invoke("apply", train.src, "--stats", "imagenet", "-o", out, "-w", "1", "-q")
    assert result.exit_code == 0, describe(result)
    assert "Wrote 30 arrays" in result.stdout
    for rel, arr in train.arrays.items():
        got = np.load(out / f"{rel}.npy")
        ref = _reference(arr, "standard", IMAGENET_MEAN, IMAGENET_STD)
        np.testing.assert_allclose(got, ref, rtol=0, atol=ATOL, err_msg=rel)
    prov = json.loads((out / "normstat-apply.json").read_text())
    assert prov["stats"]["mean"] == [0.485, 0.456, 0.406]
    assert prov["stats"]["std"] == [0.229, 0.224, 0.225]


def test_per_image_flat_channel_is_zero_not_nan(train: SimpleNamespace, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(7)
    arr = rng.integers(0, 256, size=(9, 11, 3), dtype=np.uint8)
    arr[..., 2] = 77
    Image.fromarray(arr).save(src / "flat.png")
    normstat.apply(src, train.stats, tmp_path / "out", workers=1, scale="per-image")
    got = np.load(tmp_path / "out" / "flat.png.npy")
    assert np.isfinite(got).all()
    np.testing.assert_array_equal(got[2], np.zeros((9, 11), np.float32))
    ref = _reference(arr[..., :2], "per-image", None, None)
    np.testing.assert_allclose(got[:2], ref, rtol=0, atol=ATOL)


# --------------------------------------------------------------------------------------------
# layout and dtype through the CLI


def test_cli_default_dtype_is_float32(train: SimpleNamespace, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = invoke("apply", train.src, "--stats", train.stats, "-o", out, "-w", "1", "-q")
    assert result.exit_code == 0, describe(result)
    for rel, arr in train.arrays.items():
        y = np.load(out / f"{rel}.npy", mmap_mode="r")
        assert y.dtype == np.dtype("float32"), rel
        assert y.shape == (3, *arr.shape[:2])


def test_cli_layout_hwc(
    train: SimpleNamespace, standard_out: SimpleNamespace, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = invoke(
        "apply", train.src, "--stats", train.stats, "-o", out, "-w", "1", "-q", "--layout", "hwc"
    )
    assert result.exit_code == 0, describe(result)
    for rel, arr in train.arrays.items():
        y = np.load(out / f"{rel}.npy", mmap_mode="r")
        assert y.shape == arr.shape, rel  # (H, W, C)
        assert y.dtype == np.float32
        assert y.flags.c_contiguous
        chw = np.load(standard_out.out / f"{rel}.npy")
        np.testing.assert_array_equal(np.asarray(y), chw.transpose(1, 2, 0))


def test_cli_dtype_float16(
    train: SimpleNamespace, standard_out: SimpleNamespace, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = invoke(
        "apply", train.src, "--stats", train.stats, "-o", out, "-w", "1", "-q",
        "--dtype", "float16",
    )  # fmt: skip
    assert result.exit_code == 0, describe(result)
    mean, std = np.array(train.manifest["mean"]), np.array(train.manifest["std"])
    for rel, arr in train.arrays.items():
        y = np.load(out / f"{rel}.npy", mmap_mode="r")
        assert y.dtype == np.dtype(np.float16), rel
        assert y.shape == (3, *arr.shape[:2])
        ref = _reference(arr, "standard", mean, std)
        np.testing.assert_allclose(y.astype(np.float64), ref, rtol=0, atol=2e-3, err_msg=rel)
        chw = np.load(standard_out.out / f"{rel}.npy")
        np.testing.assert_array_equal(np.asarray(y), chw.astype(np.float16))


# --------------------------------------------------------------------------------------------
# grayscale images in an RGB dataset


def test_grayscale_images_are_replicated_to_rgb(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(99)
    arrays: dict[str, np.ndarray] = {}
    for i in range(4):
        arr = rng.integers(0, 256, size=(10 + i, 13, 3), dtype=np.uint8)
        Image.fromarray(arr).save(src / f"rgb{i}.png")
        arrays[f"rgb{i}.png"] = arr
    grays: dict[str, np.ndarray] = {}
    for i in range(2):
        g = rng.integers(0, 256, size=(7 + i, 12), dtype=np.uint8)
        Image.fromarray(g).save(src / f"gray{i}.png")
        assert Image.open(src / f"gray{i}.png").mode == "L"
        grays[f"gray{i}.png"] = g
        arrays[f"gray{i}.png"] = np.repeat(g[..., None], 3, axis=2)
    stats_path = tmp_path / "stats.json"
    normstat.compute(src, workers=1).save(str(stats_path))
    man = json.loads(stats_path.read_text())
    assert man["mode"] == "RGB"
    mean, _ = ref_stats(list(arrays.values()))  # gray pixels count in all three channels
    np.testing.assert_allclose(man["mean"], mean, rtol=0, atol=1e-12)

    normstat.apply(src, stats_path, tmp_path / "unit", workers=1, scale="unit")
    normstat.apply(src, stats_path, tmp_path / "std", workers=1)
    for name, g in grays.items():
        unit = np.load(tmp_path / "unit" / f"{name}.npy")
        assert unit.shape == (3, *g.shape)
        for c in range(3):
            np.testing.assert_allclose(unit[c], g / 255, rtol=0, atol=ATOL)
        standard = np.load(tmp_path / "std" / f"{name}.npy")
        ref = _reference(arrays[name], "standard", man["mean"], man["std"])
        np.testing.assert_allclose(standard, ref, rtol=0, atol=ATOL)


# --------------------------------------------------------------------------------------------
# workers


def test_workers_give_byte_identical_output(
    train: SimpleNamespace, standard_out: SimpleNamespace, tmp_path: Path
) -> None:
    out2 = tmp_path / "out2"
    res = normstat.apply(train.src, train.stats, out2, workers=2)
    assert (res.written, res.kept) == (30, 0)
    one = {k: v for k, v in tree_bytes(standard_out.out).items() if k.endswith(".npy")}
    two = {k: v for k, v in tree_bytes(out2).items() if k.endswith(".npy")}
    assert len(one) == 30
    assert one.keys() == two.keys()
    for key in one:
        assert one[key] == two[key], key


# --------------------------------------------------------------------------------------------
# resume, overwrite, provenance


def test_resume_overwrite_and_provenance(train: SimpleNamespace, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = normstat.apply(train.src, train.stats, out, workers=1)
    assert (first.written, first.kept) == (30, 0)
    original = tree_bytes(out)

    prov = json.loads((out / "normstat-apply.json").read_text())
    assert prov["stats"]["sha256"] == hashlib.sha256(train.stats.read_bytes()).hexdigest()
    opts = prov["options"]
    assert (opts["scale"], opts["std"], opts["dtype"], opts["layout"]) == (
        "standard", "pooled", "float32", "chw",
    )  # fmt: skip

    second = normstat.apply(train.src, train.stats, out, workers=1)
    assert (second.written, second.kept, second.skipped) == (0, 30, [])
    assert tree_bytes(out) == original

    # Resume writes only what is missing and trusts what is there.
    (out / "img00.png.npy").unlink()
    (out / "a" / "b" / "img05.png.npy").unlink()
    sentinel = out / "a" / "img01.png.npy"
    np.save(sentinel, np.zeros((1,), np.float32))
    third = normstat.apply(train.src, train.stats, out, workers=1)
    assert (third.written, third.kept) == (2, 28)
    assert (out / "img00.png.npy").read_bytes() == original["img00.png.npy"]
    assert (out / "a/b/img05.png.npy").read_bytes() == original["a/b/img05.png.npy"]
    assert np.load(sentinel).shape == (1,)

    # --overwrite rewrites everything.
    result = invoke(
        "apply", train.src, "--stats", train.stats, "-o", out, "-w", "1", "-q", "--overwrite"
    )
    assert result.exit_code == 0, describe(result)
    assert "Wrote 30 arrays" in result.stdout
    assert "0 already there" in result.stdout
    assert tree_bytes(out) == original


def test_resume_with_moved_copy_of_same_manifest(train: SimpleNamespace, tmp_path: Path) -> None:
    out = tmp_path / "out"
    normstat.apply(train.src, train.stats, out, workers=1)
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    for f in train.stats.parent.iterdir():
        shutil.copy2(f, moved / f.name)
    res = normstat.apply(train.src, moved / "stats.json", out, workers=1)
    assert (res.written, res.kept) == (0, 30)


@pytest.fixture(scope="module")
def other_stats(train: SimpleNamespace) -> Path:
    """A manifest of a subset of the train set (different statistics, different sha256)."""
    sub = train.base / "other"
    (sub / "src").mkdir(parents=True)
    for rel in list(train.arrays)[:5]:
        shutil.copy(train.src / rel, sub / "src" / rel.replace("/", "_"))
    path = sub / "stats.json"
    normstat.compute(sub / "src", workers=1).save(str(path))
    return path


@pytest.mark.parametrize(
    "extra",
    [
        ["--scale", "unit"],
        ["--layout", "hwc"],
        ["--dtype", "float16"],
        ["--std", "per-image-mean"],
        ["IMAGENET"],
        ["OTHER"],
    ],
    ids=["scale", "layout", "dtype", "std", "imagenet", "other-manifest"],
)
def test_different_options_into_same_out_dir_refused(
    train: SimpleNamespace, other_stats: Path, tmp_path: Path, extra: list[str]
) -> None:
    out = tmp_path / "out"
    normstat.apply(train.src, train.stats, out, workers=1)
    before = tree_bytes(out)
    stats: str | Path = train.stats
    if extra == ["IMAGENET"]:
        stats, extra = "imagenet", []
    elif extra == ["OTHER"]:
        stats, extra = other_stats, []
    result = invoke("apply", train.src, "--stats", stats, "-o", out, "-w", "1", "-q", *extra)
    assert result.exit_code == 2, describe(result)
    assert "overwrite" in result.stderr
    assert result.stderr.startswith("Error:")
    assert tree_bytes(out) == before
    kwargs = {extra[0].lstrip("-"): extra[1]} if extra else {}
    with pytest.raises(normstat.OutputError):
        normstat.apply(train.src, stats, out, workers=1, **kwargs)
    assert tree_bytes(out) == before


def test_loaded_stats_object_records_manifest_sha256(
    train: SimpleNamespace, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    normstat.apply(train.src, normstat.Stats.load(str(train.stats)), out, workers=1)
    prov = json.loads((out / "normstat-apply.json").read_text())
    assert prov["stats"]["sha256"] == hashlib.sha256(train.stats.read_bytes()).hexdigest()
    res = normstat.apply(train.src, train.stats, out, workers=1)  # the same statistics
    assert (res.written, res.kept) == (0, 30)


def test_in_memory_stats_with_other_values_refused(
    train: SimpleNamespace, other_stats: Path, tmp_path: Path
) -> None:
    """Unsaved ``Stats`` (straight from ``compute``) must not pass for one another."""
    first = normstat.compute(train.src, workers=1)
    other = normstat.compute(other_stats.parent / "src", workers=1)
    assert first.mean != other.mean
    out = tmp_path / "out"
    assert normstat.apply(train.src, first, out, workers=1).written == 30
    before = tree_bytes(out)
    with pytest.raises(normstat.OutputError):
        normstat.apply(train.src, other, out, workers=1)
    assert tree_bytes(out) == before


class _Interrupted(Exception):
    pass


def test_resume_after_interrupted_overwrite_does_not_keep_old_output(
    train: SimpleNamespace, standard_out: SimpleNamespace, tmp_path: Path
) -> None:
    """Options A complete; an --overwrite run with options B is interrupted part-way; the same
    B command re-run without --overwrite must not keep A arrays as if they were B's."""
    out = tmp_path / "out"
    normstat.apply(train.src, train.stats, out, workers=1, scale="unit")

    def stop(phase: str, done: int, total: int) -> None:
        if phase == "apply" and 0 < done < total:
            raise _Interrupted

    with pytest.raises(_Interrupted):
        normstat.apply(train.src, train.stats, out, workers=1, overwrite=True, progress=stop)
    try:
        normstat.apply(train.src, train.stats, out, workers=1)
    except normstat.OutputError:
        return  # refusing the mixed folder is acceptable too
    expected = {k: v for k, v in tree_bytes(standard_out.out).items() if k.endswith(".npy")}
    got = {k: v for k, v in tree_bytes(out).items() if k.endswith(".npy")}
    assert got.keys() == expected.keys()
    stale = sorted(k for k in expected if got[k] != expected[k])
    assert stale == [], f"{len(stale)} arrays still hold the earlier --scale unit output"


# --------------------------------------------------------------------------------------------
# refusals


@pytest.mark.parametrize("where", ["inside", "same"])
def test_refuses_out_dir_inside_source(train: SimpleNamespace, where: str) -> None:
    out = train.src / "a" / "npy" if where == "inside" else train.src
    before = tree_bytes(train.src)
    result = invoke("apply", train.src, "--stats", train.stats, "-o", out, "-w", "1", "-q")
    assert result.exit_code == 2, describe(result)
    assert str(train.src) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert tree_bytes(train.src) == before
    assert not (train.src / "a" / "npy").exists()
    with pytest.raises(normstat.OutputError):
        normstat.apply(train.src, train.stats, out, workers=1)
    assert tree_bytes(train.src) == before


def test_refuses_non_empty_foreign_out_dir(train: SimpleNamespace, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    result = invoke("apply", train.src, "--stats", train.stats, "-o", out, "-w", "1", "-q")
    assert result.exit_code == 2, describe(result)
    assert str(out) in result.stderr
    assert tree_bytes(out) == {"notes.txt": b"mine\n"}
    with pytest.raises(normstat.OutputError):
        normstat.apply(train.src, train.stats, out, workers=1)
    assert tree_bytes(out) == {"notes.txt": b"mine\n"}


def test_float_image_among_rgb_skipped_as_compute_skips_it(tmp_path: Path) -> None:
    """A float TIFF among RGB images: compute skips it with a reason; apply must skip the same
    image with the same reason and write the others (0.2.0 stopped the split at it)."""
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(5)
    for name in ("a.png", "b.png", "c.png"):  # sorted before the float image
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(src / name)
    Image.fromarray(rng.random((6, 7), dtype=np.float32)).save(src / "z_float.tif")
    assert Image.open(src / "z_float.tif").mode == "F"
    stats = normstat.compute(src, workers=1)
    stats.save(str(tmp_path / "stats.json"))
    out = tmp_path / "out"
    result = invoke("apply", src, "--stats", tmp_path / "stats.json", "-o", out, "-w", "1")
    assert result.exit_code == 0, describe(result)
    assert [p.name for p in npy_files(out)] == ["a.png.npy", "b.png.npy", "c.png.npy"]
    applied = normstat.apply(src, tmp_path / "stats.json", tmp_path / "out2", workers=1)
    assert [(s.path, s.reason) for s in applied.skipped] == [
        (s["path"], s["reason"]) for s in stats.skipped
    ]
    assert [s["path"] for s in stats.skipped] == [str(src / "z_float.tif")]
    assert "z_float.tif" in result.stderr and stats.skipped[0]["reason"] in result.stderr


def test_zero_std_channel_refused_for_standard(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(11)
    for i in range(3):
        arr = rng.integers(0, 256, (9, 10, 3), dtype=np.uint8)
        arr[..., 1] = 100  # G is constant over the whole set
        Image.fromarray(arr).save(src / f"{i}.png")
    stats_path = tmp_path / "stats.json"
    normstat.compute(src, workers=1).save(str(stats_path))
    assert json.loads(stats_path.read_text())["std"][1] == 0
    out = tmp_path / "out"
    result = invoke("apply", src, "--stats", stats_path, "-o", out, "-w", "1", "-q")
    assert result.exit_code == 2, describe(result)
    assert "std" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert npy_files(out) == []
    with pytest.raises(normstat.ManifestError):
        normstat.apply(src, stats_path, out, workers=1)
    # Scalings that do not divide by the manifest's std still work.
    res = normstat.apply(src, stats_path, tmp_path / "unit", workers=1, scale="unit")
    assert res.written == 3


# --------------------------------------------------------------------------------------------
# SIGKILL mid-run


def _visible_npy_count(folder: Path) -> int:
    try:
        with os.scandir(folder) as it:
            return sum(1 for e in it if e.name.endswith(".npy") and not e.name.startswith("."))
    except FileNotFoundError:
        return 0


def test_sigkill_leaves_no_partial_files_and_resume_completes(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "x").mkdir(parents=True)
    rng = np.random.default_rng(2024)
    base = rng.integers(0, 256, size=(256, 256, 3), dtype=np.uint8)
    n = 150
    for i in range(n):
        Image.fromarray(np.roll(base, 3 * i, axis=1)).save(
            src / "x" / f"{i:03d}.png", compress_level=1
        )
    stats_path = tmp_path / "stats.json"
    normstat.compute(src, workers=1).save(str(stats_path))
    ref = tmp_path / "ref"
    assert normstat.apply(src, stats_path, ref, workers=1).written == n
    ref_tree = {k: v for k, v in tree_bytes(ref).items() if k.endswith(".npy")}
    assert len(ref_tree) == n

    out = tmp_path / "out"
    cmd = [
        sys.executable, "-m", "normstat", "apply", str(src), "--stats", str(stats_path),
        "-o", str(out), "--workers", "1", "-q",
    ]  # fmt: skip
    log = tmp_path / "log.txt"
    visible: list[Path] = []
    for kill in range(3):  # several kills: each one a chance to land mid-write
        target = len(visible) + 3
        with open(log, "wb") as fh:
            proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=tmp_path)
            try:
                deadline = time.monotonic() + 60
                # Busy-poll the one output folder so the kill follows a new visible file
                # closely: a file made visible before it is complete would be caught mid-write.
                while _visible_npy_count(out / "x") < target:
                    assert proc.poll() is None, f"apply ended early: {log.read_text()}"
                    assert time.monotonic() < deadline, "no output appeared within 60 s"
                proc.send_signal(signal.SIGKILL)
            finally:
                if proc.poll() is None:
                    proc.kill()
                proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL, "apply finished before it could be killed"

        visible = npy_files(out)
        assert target <= len(visible) < n, kill
        for path in visible:
            rel = path.relative_to(out).as_posix()
            arr = np.load(path)  # loads completely: no truncated file
            assert arr.shape == (3, 256, 256), rel
            assert path.read_bytes() == ref_tree[rel], rel
        for path in out.rglob("*"):  # anything else is provenance or a hidden temp file
            if path.is_file() and not path.name.endswith(".npy"):
                assert path.name in ("normstat-apply.json", JOURNAL, LOCK) or re.fullmatch(
                    r"\.normstat-npy-.+\.tmp", path.name
                ), path.name

    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    match = re.search(r"Wrote (\d+) arrays .*\((\d+) already there", done.stdout)
    assert match, done.stdout
    written, kept = int(match[1]), int(match[2])
    # The kill may land between an array's rename and its journal line: that one is remade.
    assert written + kept == n and len(visible) - 1 <= kept <= len(visible), (written, kept)

    final = tree_bytes(out)
    leftovers = [k for k in final if k.endswith(".tmp") or k.split("/")[-1].startswith(".")]
    assert leftovers == [JOURNAL]
    assert set(final) == set(ref_tree) | {"normstat-apply.json", JOURNAL}
    for key, data in ref_tree.items():
        assert final[key] == data, key
    # Free the ~250 MB before the next tests (kept when the test fails, for inspection).
    shutil.rmtree(out)
    shutil.rmtree(ref)
    shutil.rmtree(src)
