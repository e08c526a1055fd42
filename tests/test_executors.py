"""Executors: ordered results for any scheduling, and a crashed worker is an error, not a hang."""

from __future__ import annotations

import os

import pytest
from helpers import die_on_three, invoke, slow_square

import normstat.sources.base
import normstat.verbs.common
from normstat.engine import PoolEngine, WorkerDied, chunked, make_engine


def test_serial_and_pool_give_results_in_order() -> None:
    items = list(range(23))
    with make_engine(1) as serial:
        assert list(serial.map(slow_square, items)) == [i * i for i in items]
    with make_engine(2) as pool:
        assert isinstance(pool, PoolEngine)
        assert list(pool.map(slow_square, items)) == [i * i for i in items]


def test_a_dead_worker_raises_instead_of_hanging() -> None:
    with make_engine(2) as pool, pytest.raises(WorkerDied) as info:
        list(pool.map(die_on_three, range(10)))
    assert info.value.index == 3


def test_a_dead_worker_names_the_files(tmp_path, monkeypatch) -> None:
    """Through compute: the error names the first file of the chunk whose worker died."""
    from PIL import Image

    for i in range(4):
        Image.new("RGB", (8, 8), (i, i, i)).save(tmp_path / f"{i}.png")

    def crashing_map(self, fn, items):  # a pool whose second chunk's worker dies
        for index, item in enumerate(items):
            if index == 1:
                raise WorkerDied(index)
            yield fn(item)

    monkeypatch.setattr(PoolEngine, "map", crashing_map)
    monkeypatch.setattr(normstat.sources.base, "SHARD_ITEMS", 1)  # a shard per file
    result = invoke("compute", tmp_path, "-o", tmp_path / "s.json", "-w", "2")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: {tmp_path / '1.png'}: a worker process died")
    assert not (tmp_path / "s.json").exists()


@pytest.mark.parametrize("n,workers", [(1, 1), (10, 2), (1000, 2), (5000, 3)])
def test_chunks_cover_every_item_once_in_order(n: int, workers: int) -> None:
    items = list(range(n))
    chunks = chunked(items, workers)
    assert [x for c in chunks for x in c] == items
    assert max(len(c) for c in chunks) <= 64


_FORK_CHECK = """
import threading
from helpers import slow_square
from normstat.engine import make_engine
from normstat.engine import pool as executors

assert executors._start_method() == "fork", threading.enumerate()
stop = threading.Event()
thread = threading.Thread(target=stop.wait)
thread.start()
try:
    assert executors._start_method() == "forkserver"
    with make_engine(2) as pool:
        assert list(pool.map(slow_square, range(5))) == [0, 1, 4, 9, 16]
finally:
    stop.set()
    thread.join()
"""


def test_workers_fork_only_when_no_other_thread_runs() -> None:
    """A thread holding a lock at fork time would leave it locked in the child; with a thread
    running (as the progress bar is), workers come from a fork server instead, and still work.
    In a fresh interpreter: threads other tests leave behind (a Dask client's) do not count."""
    import subprocess
    import sys
    from pathlib import Path

    here = str(Path(__file__).resolve().parent)
    done = subprocess.run(
        [sys.executable, "-c", _FORK_CHECK],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": here},
    )
    assert done.returncode == 0, done.stderr
