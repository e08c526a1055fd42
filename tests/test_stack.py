"""``normstat apply --stack``: rows against the per-file outputs and a numpy reference computed
here from the true pixels, layouts and dtypes, stack.txt, refusals before anything is written,
worker counts, containers, and a SIGKILL mid-run resumed to identical bytes."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import describe, invoke
from PIL import Image

import normstat

SIZE = (6, 5)  # H, W


def _save(path: Path, px: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(px).save(path)


def _pixels(n: int, seed: int = 0) -> list[np.ndarray]:
    """Random RGB images with the extremes 0 and 255 in every channel."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        px = rng.integers(0, 256, (*SIZE, 3), dtype=np.uint8)
        px[0, 0], px[-1, -1] = 0, 255
        out.append(px)
    return out


@pytest.fixture
def split(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray], normstat.Stats]:
    """A folder of 14 PNGs (some in a sub-folder), their true pixels by relative name, stats."""
    src = tmp_path / "src"
    truth = {}
    for i, px in enumerate(_pixels(14)):
        rel = f"{'b/' if i % 4 == 0 else ''}{i:02d}.png"
        _save(src / rel, px)
        truth[rel] = px
    return src, truth, normstat.compute(src, workers=1)


def _reference(px: np.ndarray, stats: normstat.Stats, layout: str) -> np.ndarray:
    mean, std = np.array(stats.mean, dtype=np.float64), np.array(stats.std, dtype=np.float64)
    y = (px.astype(np.float64) / 255 - mean) / std
    return y.transpose(2, 0, 1) if layout == "chw" else y


def _names(out: Path) -> list[str]:
    return out.joinpath("stack.txt").read_text(encoding="utf-8").split("\n")[:-1]


@pytest.mark.parametrize(("layout", "dtype"), [("chw", "float32"), ("hwc", "float16")])
def test_rows_are_the_per_file_outputs_and_the_reference(split, tmp_path, layout, dtype) -> None:
    src, truth, stats = split
    kw = {"workers": 1, "layout": layout, "dtype": dtype}
    result = normstat.apply(src, stats, tmp_path / "stack", stack=True, **kw)
    normstat.apply(src, stats, tmp_path / "files", **kw)
    assert (result.written, result.kept, result.skipped) == (14, 0, [])
    arr = np.load(tmp_path / "stack" / "stack.npy", mmap_mode="r")
    assert isinstance(arr, np.memmap)
    row = (3, *SIZE) if layout == "chw" else (*SIZE, 3)
    assert arr.shape == (14, *row) and arr.dtype == np.dtype(dtype)
    names = _names(tmp_path / "stack")
    assert names == sorted(truth)  # the split's sorted order
    tol = 1e-5 if dtype == "float32" else 4e-3
    for i, rel in enumerate(names):
        per_file = np.load(tmp_path / "files" / f"{rel}.npy")
        assert arr[i].tobytes() == per_file.tobytes(), rel
        ref = _reference(truth[rel], stats, layout)
        np.testing.assert_allclose(arr[i].astype(np.float64), ref, rtol=tol, atol=tol)


def test_worker_counts_give_identical_bytes_and_skips_leave_no_hole(split, tmp_path) -> None:
    src, truth, stats = split
    good = (src / "03.png").read_bytes()
    (src / "03b.png").write_bytes(good[: len(good) // 2])  # header fine, data cut: a read skip
    outs = {}
    for w in (1, 3):
        result = normstat.apply(src, stats, tmp_path / f"w{w}", workers=w, stack=True)
        assert [s.path for s in result.skipped] == [str(src / "03b.png")]
        assert result.written == 14
        outs[w] = {n: (tmp_path / f"w{w}" / n).read_bytes() for n in ("stack.npy", "stack.txt")}
    assert outs[1] == outs[3]
    assert _names(tmp_path / "w1") == sorted(truth)
    assert np.load(tmp_path / "w1" / "stack.npy").shape[0] == 14
    assert not [p for p in os.listdir(tmp_path / "w1") if p.endswith(".tmp")]


def test_rerun_does_nothing_then_redoes_a_changed_source(split, tmp_path) -> None:
    src, _, stats = split
    out = tmp_path / "out"
    stats_path = tmp_path / "stats.json"
    stats.save(str(stats_path))
    args = ["apply", src, "--stats", stats_path, "-o", out, "--stack", "-w", "1"]
    first = invoke(*args)
    assert first.exit_code == 0, describe(first)
    again = invoke(*args)
    assert again.exit_code == 0, describe(again)
    assert "is complete (14 rows); nothing to do" in again.stdout
    new = np.full((*SIZE, 3), 7, dtype=np.uint8)
    _save(src / "05.png", new)
    os.utime(src / "05.png", (1, 1))
    third = invoke(*args)
    assert third.exit_code == 0, describe(third)
    assert "Wrote 1 rows of 14" in third.stdout and "13 kept" in third.stdout
    arr = np.load(out / "stack.npy")
    row = _names(out).index("05.png")
    np.testing.assert_allclose(arr[row], _reference(new, stats, "chw"), atol=1e-5)
    fresh = normstat.apply(src, stats_path, tmp_path / "fresh", workers=1, stack=True)
    assert fresh.written == 14
    assert (tmp_path / "fresh" / "stack.npy").read_bytes() == (out / "stack.npy").read_bytes()


def test_images_of_two_sizes_are_refused_before_anything_is_written(split, tmp_path) -> None:
    src, _, stats = split
    _save(src / "07x.png", np.zeros((SIZE[0], SIZE[1] + 1, 3), dtype=np.uint8))
    stats_path = tmp_path / "stats.json"
    stats.save(str(stats_path))
    out = tmp_path / "out"
    result = invoke("apply", src, "--stats", stats_path, "-o", out, "--stack", "-w", "1")
    assert result.exit_code == 2, describe(result)
    assert f"{src / '07x.png'}: is 6×6 but {src / '01.png'} is 6×5" in result.stderr
    assert not out.exists()


def test_a_name_with_a_newline_is_refused_before_anything_is_written(split, tmp_path) -> None:
    src, truth, stats = split
    _save(src / "b" / "evil\nname.png", truth["01.png"])
    with pytest.raises(normstat.InputError, match="control character U\\+000A"):
        normstat.apply(src, stats, tmp_path / "out", workers=1, stack=True)
    assert not (tmp_path / "out").exists()
    normstat.apply(src, stats, tmp_path / "files", workers=1)  # per-file output still takes it


def test_a_tar_shard_and_a_npy_stack_give_the_per_file_rows(tmp_path) -> None:
    pixels = _pixels(9, seed=3)
    shard = tmp_path / "tars" / "shard-000.tar"
    shard.parent.mkdir()
    with tarfile.open(shard, "w") as t:
        for i, px in enumerate(pixels):
            buf = io.BytesIO()
            Image.fromarray(px).save(buf, "PNG")
            info = tarfile.TarInfo(f"{i:03d}.png")
            info.size = len(buf.getvalue())
            t.addfile(info, io.BytesIO(buf.getvalue()))
    arrays = tmp_path / "arrays"
    arrays.mkdir()
    np.save(arrays / "all.npy", np.stack(pixels))
    for src in (tmp_path / "tars", arrays):
        stats = normstat.compute(src, workers=1)
        normstat.apply(src, stats, tmp_path / "out" / src.name / "stack", workers=2, stack=True)
        normstat.apply(src, stats, tmp_path / "out" / src.name / "files", workers=2)
        stack = np.load(tmp_path / "out" / src.name / "stack" / "stack.npy", mmap_mode="r")
        names = _names(tmp_path / "out" / src.name / "stack")
        assert len(names) == stack.shape[0] == 9
        for i, rel in enumerate(names):
            per_file = np.load(tmp_path / "out" / src.name / "files" / f"{rel}.npy")
            assert stack[i].tobytes() == per_file.tobytes(), rel
            ref = _reference(pixels[i], stats, "chw")
            np.testing.assert_allclose(stack[i], ref, rtol=1e-5, atol=1e-5)


SLOW = """
import sys, time
import normstat.sources.local as local
opened = local.LocalSource.open
def slow(self, item):
    time.sleep(0.02)
    return opened(self, item)
local.LocalSource.open = slow
from normstat.cli import main
sys.argv = ["normstat", *sys.argv[1:]]
main()
"""


def test_sigkill_mid_run_then_resume_gives_identical_bytes(tmp_path) -> None:
    src = tmp_path / "src"
    for i, px in enumerate(_pixels(80, seed=5)):
        _save(src / f"{i:03d}.png", px)
    stats = tmp_path / "stats.json"
    normstat.compute(src, workers=1).save(str(stats))
    out = tmp_path / "out"
    args = ["apply", str(src), "--stats", str(stats), "-o", str(out), "--stack", "-w", "1", "-q"]
    proc = subprocess.Popen([sys.executable, "-c", SLOW, *args], stderr=subprocess.DEVNULL)
    journal = out / ".normstat-stack.journal"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.is_file() and journal.read_bytes().count(b"\n") >= 21:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "apply finished before it could be killed"
    assert not (out / "stack.npy").exists() and not (out / "stack.txt").exists()
    done = len(journal.read_bytes().splitlines()) - 1
    assert 20 <= done < 80
    time.sleep(0.5)  # the orphaned worker notices its parent is gone
    resumed = invoke(*args)
    assert resumed.exit_code == 0, describe(resumed)
    kept = int(resumed.stdout.split("(")[1].split(" kept")[0])
    assert done <= kept < 80  # entries journaled were kept; nothing started over
    clean = tmp_path / "clean"
    assert invoke(*args[:5], str(clean), *args[6:]).exit_code == 0
    for name in ("stack.npy", "stack.txt"):
        assert (out / name).read_bytes() == (clean / name).read_bytes(), name
    prov = json.loads((out / "normstat-apply.json").read_text())
    assert prov["options"]["stack"] is True


def test_other_options_are_refused_without_overwrite(split, tmp_path) -> None:
    src, _, stats = split
    out = tmp_path / "out"
    normstat.apply(src, stats, out, workers=1, stack=True)
    with pytest.raises(normstat.OutputError, match="other statistics or options"):
        normstat.apply(src, stats, out, workers=1, stack=True, dtype="float16")
    normstat.apply(src, stats, out, workers=1, stack=True, dtype="float16", overwrite=True)
    assert np.load(out / "stack.npy").dtype == np.float16
    normstat.apply(src, stats, out, workers=1, overwrite=True)  # per-file: the stack goes
    assert not (out / "stack.npy").exists() and not (out / "stack.txt").exists()


def test_a_skipped_image_fixed_later_is_inserted_in_its_place(split, tmp_path) -> None:
    src, truth, stats = split
    fixed = (src / "03.png").read_bytes()
    (src / "03b.png").write_bytes(fixed[: len(fixed) // 2])
    out = tmp_path / "out"
    first = normstat.apply(src, stats, out, workers=1, stack=True)
    assert (first.written, len(first.skipped)) == (14, 1)
    (src / "03b.png").write_bytes(fixed)
    os.utime(src / "03b.png", (2, 2))
    second = normstat.apply(src, stats, out, workers=1, stack=True)
    assert (second.written, second.kept, second.skipped) == (1, 14, [])
    names = _names(out)
    assert names == sorted([*truth, "03b.png"])
    arr = np.load(out / "stack.npy")
    assert arr[names.index("03b.png")].tobytes() == arr[names.index("03.png")].tobytes()
    fresh = normstat.apply(src, stats, tmp_path / "fresh", workers=1, stack=True)
    assert fresh.written == 15
    assert (tmp_path / "fresh" / "stack.npy").read_bytes() == (out / "stack.npy").read_bytes()


@pytest.mark.parametrize("invalid", ["zero", "nan"])
def test_masked_statistics_mask_the_rows_as_per_file_output_does(
    split, tmp_path: Path, invalid: str
) -> None:
    """Pixels at the manifest's nodata are written as 0 or NaN in the stack too."""
    src, truth, _ = split
    stats = normstat.compute(src, workers=1, nodata=0)
    kw = {"workers": 1, "invalid": invalid}
    normstat.apply(src, stats, tmp_path / "stack", stack=True, **kw)
    normstat.apply(src, stats, tmp_path / "files", **kw)
    arr = np.load(tmp_path / "stack" / "stack.npy")
    fill = 0.0 if invalid == "zero" else np.nan
    for i, rel in enumerate(_names(tmp_path / "stack")):
        per_file = np.load(tmp_path / "files" / f"{rel}.npy")
        assert np.array_equal(arr[i], per_file, equal_nan=True)
        invalid_px = truth[rel].transpose(2, 0, 1) == 0
        assert invalid_px.any()
        assert np.array_equal(arr[i][invalid_px], np.full(invalid_px.sum(), fill), equal_nan=True)
        assert not np.isnan(arr[i][~invalid_px]).any()
