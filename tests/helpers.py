"""Helpers shared by the test modules: run the CLI, describe a result, copy a manifest."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from typer.testing import CliRunner, Result

from normstat.cli import app


def invoke(*args: object) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


def describe(result: Result) -> str:
    return (
        f"exit={result.exit_code}\nstdout={result.stdout!r}\nstderr={result.stderr!r}\n"
        f"exception={result.exception!r}"
    )


def sidecar_of(manifest: Path) -> Path:
    """The sidecar a manifest points to (its name carries the sidecar's hash)."""
    data = json.loads(manifest.read_text(encoding="utf-8"))
    return manifest.with_name(data["sidecar"]["path"])


def copy_manifest(manifest: Path, folder: Path) -> Path:
    """A private copy (manifest + sidecar) in ``folder`` that a test may damage."""
    side = sidecar_of(manifest)
    (folder / side.name).write_bytes(side.read_bytes())
    target = folder / "stats.json"
    target.write_bytes(manifest.read_bytes())
    return target


def die_on_three(item: int) -> int:
    """For executor tests: a worker that ends abruptly, as a crashing C decoder would."""
    if item == 3:
        os._exit(7)
    return item * item


def slow_square(item: int) -> int:
    """For executor tests: later items finish first, results must still come in order."""
    time.sleep(0.02 * (5 - item % 5))
    return item * item
