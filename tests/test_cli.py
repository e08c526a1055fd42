"""The command line: one-line errors with exit code 2, tracebacks only with --debug."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import copy_manifest, describe, invoke, sidecar_of
from PIL import Image
from typer.testing import Result

import normstat
from normstat import Stats


@pytest.fixture(autouse=True)
def _restore_pillow_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)


def assert_one_line_error(result: Result, path: str, *words: str) -> str:
    """Exit 2, no traceback, and stderr is exactly one line ``Error: <path>: <reason>``, the
    reason holding ``words`` (looked for outside the path, which may contain anything)."""
    output = result.stdout + result.stderr
    assert result.exit_code == 2, (result.exit_code, output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("Error: "), line
    assert path in line, (path, line)
    reason = line.replace(path, "", 1)
    for word in words:
        assert word in reason, (word, line)
    return line


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(21)
    for i in range(4):
        arr = rng.integers(0, 256, (8, 9, 3), dtype=np.uint8)
        Image.fromarray(arr, "RGB").save(root / f"im{i}.png")
    return root


@pytest.fixture(scope="module")
def manifest(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("manifest") / "stats.json"
    normstat.compute(dataset, workers=1).save(str(out))
    return out


# ---------------------------------------------------------------- input errors


def test_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    result = invoke("compute", str(missing), "-o", str(tmp_path / "s.json"), "-w", "1")
    assert_one_line_error(result, str(missing), "no such file")
    assert not (tmp_path / "s.json").exists()


def test_empty_folder(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = invoke("compute", str(empty), "-o", str(tmp_path / "s.json"), "-w", "1")
    assert_one_line_error(result, str(empty), "no files found")


def test_folder_without_images(tmp_path: Path) -> None:
    src = tmp_path / "docs"
    src.mkdir()
    (src / "labels.csv").write_text("a,b\n", encoding="utf-8")
    (src / "README.txt").write_text("hello\n", encoding="utf-8")
    result = invoke("compute", str(src), "-o", str(tmp_path / "s.json"), "-w", "1")
    assert_one_line_error(result, str(src), "no images found")
    assert not (tmp_path / "s.json").exists()


def test_output_folder_missing(dataset: Path, tmp_path: Path) -> None:
    """-o into a folder that does not exist: either created, or a one-line error (never a
    traceback with exit 1)."""
    out = tmp_path / "not-yet" / "stats.json"
    result = invoke("compute", str(dataset), "-o", str(out), "-w", "1")
    assert result.exit_code in (0, 2), (result.exit_code, result.exception)
    if result.exit_code == 0:
        assert Stats.load(str(out)).images == 4
    else:
        assert_one_line_error(result, "not-yet")


# ---------------------------------------------------------------- invalid manifests

DEFECTS = {
    "not-json": ("not JSON",),
    "wrong-schema": ("schema",),
    "missing-mean": ("mean",),
    "nan-std": ("std",),
    "negative-std": ("std", "negative"),
}


def _damage(path: Path, defect: str) -> None:
    text = path.read_text(encoding="utf-8")
    data = json.loads(text)
    if defect == "not-json":
        path.write_text(text[: len(text) // 2], encoding="utf-8")
        return
    if defect == "wrong-schema":
        data["schema"] = "someone-else/stats@1"
    elif defect == "missing-mean":
        del data["mean"]
    elif defect == "nan-std":
        data["std"][1] = "__NAN__"
    elif defect == "negative-std":
        data["std"][0] = -0.25
    text = json.dumps(data, indent=2).replace('"__NAN__"', "NaN")
    path.write_text(text, encoding="utf-8")


def _command_with_manifest(command: str, stats: Path, dataset: Path, tmp: Path) -> list[str]:
    if command == "show":
        return ["show", str(stats)]
    if command == "apply":
        return ["apply", str(dataset), "--stats", str(stats), "-o", str(tmp / "npy"), "-w", "1"]
    return ["check", str(dataset), "--stats", str(stats), "-w", "1"]


@pytest.mark.parametrize("command", ["show", "apply", "check"])
@pytest.mark.parametrize("defect", list(DEFECTS))
def test_invalid_manifest(
    command: str, defect: str, manifest: Path, dataset: Path, tmp_path: Path
) -> None:
    bad = copy_manifest(manifest, tmp_path)
    _damage(bad, defect)
    if defect == "nan-std":
        assert "NaN" in bad.read_text(encoding="utf-8")
    result = invoke(*_command_with_manifest(command, bad, dataset, tmp_path))
    assert_one_line_error(result, str(bad), *DEFECTS[defect])
    assert not (tmp_path / "npy").exists()


@pytest.mark.parametrize("command", ["show", "apply", "check"])
def test_tampered_sidecar(command: str, manifest: Path, dataset: Path, tmp_path: Path) -> None:
    stats = copy_manifest(manifest, tmp_path)
    side = sidecar_of(stats)
    blob = bytearray(side.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    side.write_bytes(bytes(blob))
    result = invoke(*_command_with_manifest(command, stats, dataset, tmp_path))
    assert_one_line_error(result, str(stats), side.name, "sha256")


def test_missing_sidecar(manifest: Path, tmp_path: Path) -> None:
    stats = copy_manifest(manifest, tmp_path)
    side = sidecar_of(stats)
    side.unlink()
    result = invoke("show", str(stats))
    assert_one_line_error(result, str(stats), side.name, "missing")


def test_show_missing_manifest(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    assert_one_line_error(invoke("show", str(missing)), str(missing), "no such file")


# ---------------------------------------------------------------- compute options


def test_strict_with_corrupt_file_writes_nothing(dataset: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for p in dataset.iterdir():
        (src / p.name).write_bytes(p.read_bytes())
    corrupt = src / "zz-corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    out = tmp_path / "out"
    out.mkdir()
    result = invoke("compute", str(src), "-o", str(out / "stats.json"), "-w", "1", "--strict")
    assert_one_line_error(result, str(corrupt))
    assert list(out.iterdir()) == []
    # without --strict the same folder succeeds and lists the file
    result = invoke("compute", str(src), "-o", str(out / "stats.json"), "-w", "1")
    assert result.exit_code == 0, result.stderr
    assert Stats.load(str(out / "stats.json")).skipped[0]["path"] == str(corrupt)


@pytest.mark.skipif(importlib.util.find_spec("cupy") is not None, reason="CuPy is installed")
def test_gpu_without_cupy(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "s.json"
    result = invoke("compute", str(dataset), "-o", str(out), "-w", "1", "--device", "gpu")
    assert_one_line_error(result, "--device gpu", "no usable CUDA device")
    assert not out.exists()


def test_unknown_mode_is_a_usage_error(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "s.json"
    result = invoke("compute", str(dataset), "-o", str(out), "-w", "1", "--mode", "XYZ")
    assert result.exit_code == 2
    assert "Traceback" not in result.stdout + result.stderr
    assert "--mode" in result.stderr and "RGB" in result.stderr
    assert not out.exists()


def test_debug_shows_the_traceback_and_exits_2(tmp_path: Path) -> None:
    """--debug prints the traceback, then the one-line error, and keeps exit code 2 (0.2.0
    re-raised the error: exit 1, the leak code)."""
    missing = tmp_path / "nowhere"
    result = invoke("compute", str(missing), "-o", str(tmp_path / "s.json"), "--debug")
    assert result.exit_code == 2, describe(result)
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.rstrip().splitlines()[-1].startswith(f"Error: {missing}")


def test_debug_traceback_in_a_real_process(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    cmd = [sys.executable, "-m", "normstat", "compute", str(missing), "-o", "x.json"]
    plain = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert plain.returncode == 2
    assert plain.stderr.strip() == f"Error: {missing}: no such file or directory"
    debug = subprocess.run(
        [*cmd, "--debug"], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert debug.returncode != 0
    assert "Traceback" in debug.stderr and "InputError" in debug.stderr


# ---------------------------------------------------------------- success


def test_compute_success(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "stats.json"
    result = invoke("compute", str(dataset), "-o", str(out), "-w", "1")
    assert result.exit_code == 0, (result.stderr, result.exception)
    assert "Traceback" not in result.stdout + result.stderr
    for word in ("images", "channel", "R", "G", "B", "mean", "std"):
        assert word in result.stdout, word
    assert "4 images" in result.stdout
    assert str(out) in result.stdout
    stats = Stats.load(str(out))
    assert stats.images == 4 and stats.channels == ["R", "G", "B"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [sidecar_of(out).name, "stats.json"]
    assert _hidden(tmp_path) == []


def test_compute_replaces_a_manifest_but_nothing_else(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "stats.json"
    out.write_text("old\n", encoding="utf-8")
    result = invoke("compute", str(dataset), "-o", str(out), "-w", "1", "-q")
    assert result.exit_code == 2, describe(result)
    assert "is not a stats manifest" in result.stderr
    assert out.read_text(encoding="utf-8") == "old\n"
    out.unlink()
    assert invoke("compute", str(dataset), "-o", str(out), "-w", "1", "-q").exit_code == 0
    result = invoke("compute", str(dataset), "-o", str(out), "-w", "1", "-q")
    assert result.exit_code == 0, result.stderr  # a previous manifest may be replaced
    assert Stats.load(str(out)).images == 4
    assert _hidden(tmp_path) == []


def test_show_json_is_the_manifest(manifest: Path) -> None:
    result = invoke("show", str(manifest), "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == json.loads(manifest.read_text(encoding="utf-8"))


def test_version_via_python_m() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "normstat", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"normstat {importlib.metadata.version('normstat')}"
