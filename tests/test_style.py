"""Architecture rules hold: the folders are layers (import-linter), imports go cli → api → verbs →
core, modules stay small, and the code is lint- and type-clean."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_library_import_does_not_load_cli_or_gpu_frameworks() -> None:
    """``import normstat`` and the whole API stay free of typer, rich and cupy."""
    code = (
        "import sys, normstat, normstat.api, normstat.manifest;"
        "bad = [m for m in ('typer', 'rich', 'cupy', 'click') if m in sys.modules];"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def _tool(name: str) -> None:
    if importlib.util.find_spec(name) is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")


def test_ruff_is_clean_including_banned_imports() -> None:
    """ruff's banned-api keeps typer and rich out of every module but the CLI and console."""
    _tool("ruff")
    out = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "normstat", "tests", "benchmarks", "examples"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_mypy_is_clean() -> None:
    _tool("mypy")
    out = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_layers_hold() -> None:
    """The import-linter contracts in pyproject.toml: each folder imports only the layers below
    it, and the verbs do not import each other."""
    _tool("importlinter")
    exe = Path(sys.executable).with_name("lint-imports")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "importlinter.cli"]
    out = subprocess.run([*cmd, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


def test_modules_stay_small() -> None:
    """No module over 400 lines: each does one job a newcomer can read at once."""
    sizes = {
        str(p.relative_to(ROOT)): len(p.read_text(encoding="utf-8").splitlines())
        for p in (ROOT / "normstat").rglob("*.py")
    }
    assert {p: n for p, n in sizes.items() if n > 400} == {}
