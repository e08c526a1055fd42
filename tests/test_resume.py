"""--partials-dir: each finished shard is kept; a rerun (after a SIGKILL too) reduces only the
shards it does not find, and gives the byte-identical manifest; a partial that no longer
matches its files, options or plan, or that cannot be read back, is redone."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import invoke
from PIL import Image

import normstat
import normstat.sources.base
from normstat.api import Partials

SCRIPT = """
import sys, time
import normstat.sources.base as base
import normstat.sources.local as local
base.SHARD_ITEMS = 4
if sys.argv[1] == "slow":
    opened = local.LocalSource.open
    def slow(self, item):
        time.sleep(0.03)
        return opened(self, item)
    local.LocalSource.open = slow
from normstat.cli import main
sys.argv = ["normstat", *sys.argv[2:]]
main()
"""


def _images(folder: Path, n: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        px = rng.integers(0, 256, (6, 5 + i % 3, 3), dtype=np.uint8)
        Image.fromarray(px).save(folder / f"{i:03d}.png")


def _body(path: Path) -> dict:
    data = json.loads(path.read_text())
    data.pop("created")
    data["sidecar"].pop("path")
    return data


@pytest.fixture
def small_shards(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(normstat.sources.base, "SHARD_ITEMS", 5)


def test_a_rerun_keeps_every_shard_and_gives_the_same_manifest(tmp_path, small_shards) -> None:
    _images(tmp_path / "data", 23)
    np.save(tmp_path / "data" / "stack.npy", np.zeros((3, 4, 4, 3), dtype=np.uint8) + 7)
    plain = tmp_path / "plain.json"
    normstat.compute(str(tmp_path / "data"), workers=1).save(str(plain))
    parts = tmp_path / "parts"
    first = Partials(str(parts))
    normstat.compute(str(tmp_path / "data"), workers=2, partials_dir=first).save(
        str(tmp_path / "a.json")
    )
    assert (first.kept, first.made) == (0, 5 + 1)  # 5 shards of files, 1 batch of the stack
    again = Partials(str(parts))
    normstat.compute(str(tmp_path / "data"), workers=1, partials_dir=again).save(
        str(tmp_path / "b.json")
    )
    assert (again.kept, again.made) == (6, 0)
    assert _body(tmp_path / "a.json") == _body(tmp_path / "b.json") == _body(plain)


def test_a_changed_file_redoes_its_shard_only(tmp_path, small_shards) -> None:
    _images(tmp_path / "data", 20)
    parts = tmp_path / "parts"
    normstat.compute(str(tmp_path / "data"), workers=1, partials_dir=parts)
    Image.new("RGB", (9, 9), (1, 2, 3)).save(tmp_path / "data" / "012.png")
    counts = Partials(str(parts))
    resumed = normstat.compute(str(tmp_path / "data"), workers=1, partials_dir=counts)
    assert (counts.kept, counts.made) == (3, 1)
    fresh = normstat.compute(str(tmp_path / "data"), workers=1)
    assert resumed.mean == fresh.mean and resumed.std == fresh.std
    assert resumed.data["files"] == fresh.data["files"]
    other = Partials(str(parts))  # other options: another plan, nothing reused
    normstat.compute(str(tmp_path / "data"), workers=1, partials_dir=other, mode="L")
    assert other.kept == 0


def test_an_unreadable_or_foreign_partial_is_redone(tmp_path, small_shards) -> None:
    _images(tmp_path / "data", 10)
    parts = tmp_path / "parts"
    expected = normstat.compute(str(tmp_path / "data"), workers=1, partials_dir=parts)
    files = sorted(parts.iterdir())
    assert len(files) == 2
    files[0].write_bytes(b'{"format": "normstat/partial@1", "key": "x"')  # cut short
    doc = json.loads(files[1].read_text())
    doc["key"] = "0" * 40  # another shard's partial, copied over this one
    files[1].write_text(json.dumps(doc))
    counts = Partials(str(parts))
    again = normstat.compute(str(tmp_path / "data"), workers=1, partials_dir=counts)
    assert (counts.kept, counts.redone, counts.made) == (0, 2, 2)
    assert again.data["state"] == expected.data["state"]


def test_partials_dir_that_is_a_file_is_an_error(tmp_path) -> None:
    _images(tmp_path / "data", 2)
    (tmp_path / "taken").write_text("x")
    result = invoke(
        "compute",
        tmp_path / "data",
        "-o",
        tmp_path / "s.json",
        "--partials-dir",
        tmp_path / "taken",
    )
    assert result.exit_code == 2 and "taken" in result.stderr
    assert not (tmp_path / "s.json").exists()


def test_compute_killed_mid_run_resumes_from_its_partials(tmp_path) -> None:
    """SIGKILL while shards are being reduced: the rerun keeps the finished shards, reduces the
    rest, and writes the manifest a clean run writes."""
    _images(tmp_path / "data", 80)
    parts = tmp_path / "parts"
    args = ["compute", str(tmp_path / "data"), "-q", "-w", "1", "--partials-dir", str(parts)]
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, "slow", *args, "-o", str(tmp_path / "killed.json")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if parts.is_dir() and len(list(parts.glob("*.json"))) >= 3:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "compute finished before it could be killed"
    assert not (tmp_path / "killed.json").exists()
    kept_before = len(list(parts.glob("*.json")))
    assert 3 <= kept_before < 20
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, "fast", *args, "-o", str(tmp_path / "resumed.json")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert f"{kept_before} shards kept, {20 - kept_before} reduced" in done.stdout
    clean = subprocess.run(
        [sys.executable, "-c", SCRIPT, "fast", *args[:-2], "-o", str(tmp_path / "clean.json")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert clean.returncode == 0, clean.stderr
    assert _body(tmp_path / "resumed.json") == _body(tmp_path / "clean.json")


def test_partial_names_are_the_digest_of_their_literal_identity(tmp_path: Path) -> None:
    """A partial's name is the digest of its identity's JSON: these spell it out for shards and
    stack batches, with and without each option, so that no change renames the partials kept
    by earlier runs (a rename redoes them all). The format is @2 since records carry their
    references: @1 partials lack them, and are redone."""
    import hashlib

    from normstat._version import __version__
    from normstat.options import ComputeOptions, MaskOptions
    from normstat.reduce.ranges import FloatRange
    from normstat.sources import Item, Shard
    from normstat.verbs.compute.arrays import ArrayTask

    class Stamped:
        def version(self, item: Item) -> str:
            return f"7:{item.rel}"

    def digest(ident: dict) -> str:
        ident = {"format": "normstat/partial@2", "normstat": __version__, **ident}
        text = json.dumps(ident, sort_keys=True, ensure_ascii=True)
        return hashlib.sha256(text.encode()).hexdigest()[:40]

    partials = Partials(str(tmp_path / "p"))
    items = (Item("/r", "a.png"), Item("/r", "b.png"))
    shard = Shard("/r", "a.png", items, "v1")
    files = [["/r", "a.png"], ["/r", "b.png"]]
    read = [100, False]
    assert partials.key("files", "RGB", None, shard) == digest(
        {"kind": "files", "mode": "RGB", "read": None, "npy_layout": None,
         "shard": ["/r", "a.png", "v1", files]}
    )  # fmt: skip
    assert partials.key("files", "F", ComputeOptions(max_pixels=100), shard) == digest(
        {"kind": "files", "mode": "F", "read": read, "npy_layout": "auto",
         "shard": ["/r", "a.png", "v1", files]}
    )  # fmt: skip
    masked = ComputeOptions(max_pixels=100, nodata=(0.5, math.nan), value_range=(-1.0, 2.5))
    assert partials.key("files", "F", masked, shard) == digest(
        {"kind": "files", "mode": "F", "read": read, "npy_layout": "auto",
         "masks": [[["0.5", "nan"], False], None], "value_range": ["-1.0", "2.5", 65536],
         "shard": ["/r", "a.png", "v1", files]}
    )  # fmt: skip
    lab = ComputeOptions(max_pixels=100, covariance=True, value_range=(-60.0, 110.0), color="lab")
    assert partials.key("files", "RGB", lab, shard) == digest(
        {"kind": "files", "mode": "RGB", "read": read, "npy_layout": "auto",
         "value_range": ["-60.0", "110.0", 65536], "covariance": True, "color": "lab",
         "shard": ["/r", "a.png", "v1", files]}
    )  # fmt: skip
    stack = Item("/r", "s.npy")
    plain = ArrayTask(Stamped(), stack, "PROBE", 4, 9, "RGB", True)  # type: ignore[arg-type]
    assert partials.key("stack", "RGB", None, plain) == digest(
        {"kind": "stack", "mode": "RGB", "stack": ["/r", "s.npy", "7:s.npy", "'PROBE'"],
         "range": [4, 9, True]}
    )  # fmt: skip
    every = ArrayTask(
        Stamped(), stack, "PROBE", 0, 3, "RGB", False,  # type: ignore[arg-type]
        MaskOptions((7.0,), True), True, FloatRange(-1.0, 2.5, 1024), "lab",
    )  # fmt: skip
    assert partials.key("stack", "RGB", None, every) == digest(
        {"kind": "stack", "mode": "RGB", "stack": ["/r", "s.npy", "7:s.npy", "'PROBE'"],
         "range": [0, 3, False], "masks": [[["7.0"], True], None], "covariance": True,
         "value_range": ["-1.0", "2.5", 1024], "color": "lab"}
    )  # fmt: skip
