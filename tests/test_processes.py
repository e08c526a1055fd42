"""Processes: workers end with their parent (even SIGKILL), a crashing decoder is named by its
file whatever the worker count or timing, and the worker count stays within the usable CPUs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import die_on_three, invoke
from PIL import Image

import normstat
from normstat.engine import IN_PROCESS, PoolEngine, SerialEngine, WorkerDied, make_engine
from normstat.engine.base import default_workers
from normstat.sources import LocalSource


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4000 small PNGs (one image's bytes under many names): a run that lasts a few seconds."""
    src = tmp_path_factory.mktemp("many")
    gradient = np.add.outer(np.arange(192), np.arange(192)).astype(np.uint8)
    Image.fromarray(np.stack([gradient] * 3, axis=-1)).save(src / "seed.png")
    data = (src / "seed.png").read_bytes()
    for i in range(4000):
        (src / f"{i:04d}.png").write_bytes(data)
    return src


@pytest.mark.parametrize("verb", ["compute", "apply"])
def test_sigkill_of_the_main_process_ends_its_workers(
    many: Path, tmp_path: Path, verb: str
) -> None:
    args = ["-o", str(tmp_path / "s.json")]
    if verb == "apply":
        stats = tmp_path / "stats.json"
        normstat.compute(many, workers=2).save(str(stats))
        args = ["--stats", str(stats), "-o", str(tmp_path / "out")]
    cmd = [sys.executable, "-m", "normstat", verb, str(many), *args, "-w", "2", "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while len(workers) < 2:
            assert proc.poll() is None, "the run ended before its workers were seen"
            assert time.monotonic() < deadline, "no workers appeared within 60 s"
            workers = _children(proc.pid)
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 15
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [w for w in workers if _alive(w)] == [], "workers outlived their parent"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for w in workers:
            if _alive(w):
                os.kill(w, signal.SIGKILL)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_crashing_decoder_is_named_by_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    """A decoder crash in one of 200 files: the error names that file (0.2.0 named the first of
    its chunk and advised --workers 1, which then died of the crash itself, with no message)."""
    gray = Image.new("RGB", (8, 8), (9, 9, 9))
    for i in range(200):
        gray.save(tmp_path / f"{i:03d}.png")
    original = LocalSource.open

    def open_or_crash(self, item):  # the workers are forked: they see this patch
        if item.rel == "137.png":
            os.kill(os.getpid(), signal.SIGKILL)  # as a segfaulting decoder ends it
        return original(self, item)

    monkeypatch.setattr(LocalSource, "open", open_or_crash)
    result = invoke("compute", tmp_path, "-o", tmp_path / "s.json", "-w", workers, "-q")
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: {tmp_path / '137.png'}: a worker process died reading it (a crash in a decoder)\n"
    )
    assert not (tmp_path / "s.json").exists()


def test_a_pool_broken_before_a_submit_still_names_the_item() -> None:
    """Found broken when submitting (0.2.0: "unexpected BrokenProcessPool"): rerun alone."""
    with make_engine(2) as pool:
        with pytest.raises(WorkerDied):
            list(pool.map(die_on_three, range(10)))
        got = []
        with pytest.raises(WorkerDied) as info:
            for result in pool.map(die_on_three, range(6)):
                got.append(result)
        assert info.value.index == 3 and got == [0, 1, 4]


def test_one_worker_is_a_process_unless_asked_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    with make_engine(1) as engine, pytest.raises(WorkerDied) as info:
        assert isinstance(engine, PoolEngine)
        list(engine.map(die_on_three, range(5)))
    assert info.value.index == 3
    monkeypatch.setenv(IN_PROCESS, "1")
    assert isinstance(make_engine(4), SerialEngine)


def test_workers_are_capped_at_the_usable_cpus(tmp_path: Path) -> None:
    with make_engine(1000) as engine:
        assert engine.workers == default_workers()
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    result = invoke("compute", tmp_path, "-o", tmp_path / "s.json", "-w", "1000")
    assert result.exit_code == 0
    assert f"--workers 1000 is more than the {default_workers()} CPUs" in result.stderr
