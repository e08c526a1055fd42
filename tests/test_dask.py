"""The Dask engine on a real cluster: two worker processes on loopback, started once for the
module. The engine contract (order, a bounded window, errors as raised), retries, a worker
killed mid-run, a task that kills every worker it runs on, version checks, and compute on the
cluster giving the bytes ``workers=1`` gives."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import time_limit
from PIL import Image

pytest.importorskip("distributed")

import dask
from distributed import Client, LocalCluster

import normstat
from normstat.engine import WorkerDied, make_engine
from normstat.engine.dask import ClusterError, DaskEngine
from normstat.errors import InputError

# Worker deaths a task survives (Dask's default: 3). On the module's cluster one is rescheduled;
# the clusters of the crash tests fail a task at its first, so that few workers are restarted
# (under load, a nanny restarting its worker again and again may lose it).
CRASHES = 0


def _cluster(allowed_failures: int, **kwargs: Any) -> LocalCluster:
    with dask.config.set({"distributed.scheduler.allowed-failures": allowed_failures}):
        return LocalCluster(
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},  # its HTTP server: loopback
            **kwargs,
        )


@pytest.fixture(scope="module", autouse=True)
def no_thread_left() -> Iterator[None]:
    """The module leaves no thread running: one would make later tests' process pools start
    from a fork server instead of forking (engine/pool.py, tests/test_executors.py).
    distributed keeps an idle thread for the process's life; it is replaced by an executor that
    starts one only when used."""
    before = threading.active_count()
    yield
    from concurrent.futures import ThreadPoolExecutor

    from distributed import utils

    utils._offload_executor.shutdown(wait=True)
    utils._offload_executor = ThreadPoolExecutor(1, thread_name_prefix="Dask-Offload")
    with time_limit(30):  # the nannies' message threads end soon after their cluster
        while threading.active_count() > before:
            time.sleep(0.01)


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with _cluster(1, n_workers=2, threads_per_worker=1) as c:
        yield c


@pytest.fixture
def crash_address() -> Iterator[str]:
    with _cluster(CRASHES, n_workers=2, threads_per_worker=1) as c:
        yield str(c.scheduler_address)


@pytest.fixture(scope="module")
def client(cluster: LocalCluster) -> Iterator[Client]:
    with Client(cluster, set_as_default=False) as c:
        yield c


@pytest.fixture
def address(cluster: LocalCluster, client: Client) -> str:
    client.wait_for_workers(2, timeout=60)  # a test before may have killed some
    return str(cluster.scheduler_address)


# ---------------------------------------------------------------- task functions (module level:
# the workers import this module to run them)


def slow_square(i: int) -> int:
    time.sleep(0.01 * (5 - i % 5))  # later tasks finish first: results must still come in order
    return i * i


def invert(x: int) -> float:
    if x:
        time.sleep(0.01)
    return 1 / x


def refuse(path: str) -> None:
    raise InputError(path, "refused on purpose")


def flaky(task: tuple[str, int]) -> int:
    """Fails the first time it runs for a task, as a read from a busy server may."""
    folder, i = task
    marker = Path(folder) / f"tried-{i}"
    if not marker.exists():
        marker.touch()
        raise OSError(f"transient failure of task {i}")
    return i


def held(task: tuple[str, int]) -> int:
    """Task 2 records the process running it, then waits for the test's go."""
    folder, i = task
    if i == 2:
        with open(Path(folder) / "ran-2", "a") as f:
            f.write(f"{os.getpid()}\n")
        while not (Path(folder) / "go").exists():
            time.sleep(0.01)
    return i * i


def die_on_three(i: int) -> int:
    if i == 3:
        os._exit(7)  # as a crashing C decoder ends its process
    return i * i


def die_on_three_in(chunk: list[int]) -> list[int]:
    return [die_on_three(i) for i in chunk]


def set_version(version: str) -> None:
    normstat.__version__ = version


def collateral(task: tuple[str, str]) -> str:
    """Two tasks on one two-thread worker: the killer ends the process while the innocent runs
    beside it, until both fail with KilledWorker; afterwards each runs as itself."""
    folder, role = task
    pid = str(os.getpid())
    runs = Path(folder) / f"{role}-runs"
    with open(runs, "a") as f:
        f.write(pid + "\n")
    if len(runs.read_text().split()) > CRASHES + 1:
        if role == "killer":
            os._exit(7)
        return role
    other = Path(folder) / ("killer-runs" if role == "innocent" else "innocent-runs")
    while not (other.exists() and pid in other.read_text().split()):
        time.sleep(0.01)
    if role == "killer":
        os._exit(7)
    while True:  # the innocent: dies with its worker
        time.sleep(1)


# ---------------------------------------------------------------- the engine contract


def test_results_come_in_task_order(address: str) -> None:
    with DaskEngine(address) as engine:
        assert engine.workers == 2
        assert list(engine.map(slow_square, range(23))) == [i * i for i in range(23)]
        assert list(engine.map(slow_square, [])) == []


def test_tasks_are_consumed_as_work_proceeds(address: str) -> None:
    taken: list[int] = []

    def tasks() -> Iterator[int]:
        for i in range(1000):
            taken.append(i)
            yield i

    with DaskEngine(address) as engine:
        results = engine.map(abs, tasks())
        assert next(results) == 0
        assert len(taken) <= engine.window + 1  # a bounded window, not the whole list up front
        assert list(results) == list(range(1, 1000))
        assert len(taken) == 1000


def test_a_task_error_is_raised_as_is(address: str) -> None:
    with DaskEngine(address) as engine:
        with pytest.raises(ZeroDivisionError):
            list(engine.map(invert, [1, 2, 0, 4]))
        with pytest.raises(InputError) as info:
            list(engine.map(refuse, ["/data/a.png"]))
    assert (info.value.path, info.value.reason) == ("/data/a.png", "refused on purpose")


def test_an_error_cancels_the_tasks_in_flight(address: str, cluster: LocalCluster) -> None:
    def ours() -> list[str]:
        return [k for k in list(cluster.scheduler.tasks) if str(k).startswith("normstat-invert")]

    with DaskEngine(address) as engine, time_limit(60):
        with pytest.raises(ZeroDivisionError) as info:
            list(engine.map(invert, [0] + [1] * 200))
        # The traceback keeps the generator's frame, with its window of futures, alive: only a
        # cancel makes the scheduler forget them (and stop the tasks not yet run).
        assert info.traceback
        while ours():
            time.sleep(0.01)


def test_retries_rerun_a_task_that_failed(address: str, tmp_path: Path) -> None:
    tasks = [(str(tmp_path), i) for i in range(4)]
    with DaskEngine(address, retries=1) as engine:
        assert list(engine.map(flaky, tasks)) == [0, 1, 2, 3]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"tried-{i}" for i in range(4)]
    again = [(str(tmp_path / "again"), i) for i in range(2)]
    (tmp_path / "again").mkdir()
    with DaskEngine(address, retries=0) as engine, pytest.raises(OSError, match="transient"):
        list(engine.map(flaky, again))


@pytest.fixture
def kill_address() -> Iterator[tuple[str, set[int]]]:
    """A cluster of its own for the test that kills a worker: the module's cluster stays whole
    for the tests after it (a nanny restarting a killed worker under load may take long)."""
    with (
        _cluster(1, n_workers=2, threads_per_worker=1) as c,
        Client(c, set_as_default=False) as client,
    ):
        client.wait_for_workers(2, timeout=60)
        yield str(c.scheduler_address), set(client.run(os.getpid).values())


def test_a_worker_killed_mid_run_loses_no_result(
    kill_address: tuple[str, set[int]], tmp_path: Path
) -> None:
    address, workers = kill_address
    with DaskEngine(address) as engine, time_limit(120):
        results = engine.map(held, [(str(tmp_path), i) for i in range(8)])
        got = [next(results), next(results)]
        while not (tmp_path / "ran-2").exists():
            time.sleep(0.01)
        victim = int((tmp_path / "ran-2").read_text().split()[0])
        assert victim in workers
        os.kill(victim, signal.SIGKILL)  # while it runs task 2
        (tmp_path / "go").touch()
        got += list(results)
    assert got == [i * i for i in range(8)]
    runs = [int(pid) for pid in (tmp_path / "ran-2").read_text().split()]
    assert len(runs) == 2 and runs[1] != victim  # rescheduled on another worker


def test_a_task_that_kills_its_workers_is_worker_died(crash_address: str) -> None:
    got: list[int] = []
    with DaskEngine(crash_address) as engine, time_limit(120):
        with pytest.raises(WorkerDied) as info:
            got.extend(engine.map(die_on_three, range(6)))
        assert got == [0, 1, 4]
        assert info.value.index == 3
        assert engine.crashes(die_on_three, 3)
        assert not engine.crashes(die_on_three, 2)
        assert not engine.crashes(invert, 0)  # an exception is not a crash


def test_the_verbs_name_the_item_that_kills_its_workers(crash_address: str) -> None:
    from normstat.verbs.common import reading, run_chunks

    chunks = [[0, 1], [2, 3, 4], [5]]
    with DaskEngine(crash_address) as engine, time_limit(120), pytest.raises(InputError) as info:
        list(run_chunks(engine, die_on_three_in, chunks, list, lambda c: f"item{c[0]}", reading))
    assert info.value.path == "item3"
    assert info.value.reason == "a worker process died reading it (a crash in a decoder)"


def test_tasks_killed_beside_the_crashing_one_still_give_their_results(tmp_path: Path) -> None:
    got: list[str] = []
    tasks = [(str(tmp_path), "innocent"), (str(tmp_path), "killer")]
    with (
        _cluster(CRASHES, n_workers=1, threads_per_worker=2) as threaded,
        time_limit(120),
        DaskEngine(threaded.scheduler_address) as engine,
    ):
        assert engine.workers == 2
        with pytest.raises(WorkerDied) as info:
            got.extend(engine.map(collateral, tasks))
    assert info.value.index == 1
    assert got == ["innocent"]
    together = CRASHES + 1  # runs side by side, each ended by the killer
    innocent, killer = (
        (tmp_path / f"{r}-runs").read_text().split() for r in ("innocent", "killer")
    )
    assert innocent[:together] == killer[:together]


def test_make_engine_with_a_scheduler_gives_the_dask_engine(address: str) -> None:
    with make_engine(None, address, 2) as engine:
        assert isinstance(engine, DaskEngine)
        assert engine.retries == 2 and engine.workers == 2


@pytest.fixture
def standalone(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``dask scheduler`` and ``dask worker`` processes, as a cluster deployed by hand runs
    them; the scheduler's Python cannot import this module (tasks' code lives on workers)."""
    info = tmp_path / "scheduler.json"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    loopback = ["--host", "127.0.0.1", "--dashboard-address", "127.0.0.1:0", "--no-dashboard"]
    common = [*loopback, "--scheduler-file", str(info)]
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--port", "0", *common],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.DEVNULL,
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_worker", "--nthreads", "1", *common],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(Path(__file__).parent)},
        stderr=subprocess.DEVNULL,
    )
    try:
        with time_limit(60):
            while not info.exists():
                time.sleep(0.05)
        with Client(scheduler_file=str(info), set_as_default=False) as c:
            c.wait_for_workers(1, timeout=60)
            address = str(c.scheduler.address)
        yield address, scheduler
    finally:
        for process in (worker, scheduler):
            process.kill()
            process.wait()


def test_a_standalone_scheduler_runs_tasks_it_cannot_import_and_its_loss_is_one_line(
    standalone: tuple[str, subprocess.Popen[bytes]],
) -> None:
    address, scheduler = standalone
    with DaskEngine(address) as engine:
        assert engine.workers == 1
        assert list(engine.map(slow_square, range(6))) == [i * i for i in range(6)]
        with time_limit(60), pytest.raises(ClusterError) as info:
            for i, _ in enumerate(engine.map(slow_square, range(10_000))):
                if i == 2:
                    scheduler.kill()
    assert info.value.path == address and "lost the connection" in info.value.reason


# ---------------------------------------------------------------- refusals


def test_workers_with_another_normstat_are_refused(address: str, client: Client) -> None:
    with DaskEngine(address) as engine:
        client.run(set_version, "9.9.9")
        try:
            with pytest.raises(ClusterError) as late:  # checked by each task too
                list(engine.map(abs, [1]))
            with pytest.raises(ClusterError) as info, DaskEngine(address):
                pass
        finally:
            client.run(set_version, normstat.__version__)
    message = str(info.value)
    assert info.value.path in client.nthreads()  # a worker's address
    assert "9.9.9" in message and normstat.__version__ in message and "\n" not in message
    assert "9.9.9" in str(late.value)
    with DaskEngine(address) as engine:  # restored
        assert list(engine.map(abs, [-1])) == [1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_scheduler_is_one_line_naming_it(client: Client) -> None:
    address = f"tcp://127.0.0.1:{_free_port()}"
    with pytest.raises(ClusterError) as info, DaskEngine(address, timeout=1):
        pass
    assert info.value.path == address
    assert "cannot reach the Dask scheduler" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ClusterError, match="nonsense://x"), DaskEngine("nonsense://x", timeout=1):
        pass
    assert client.submit(abs, -3).result() == 3  # the event loop it shares still runs


def test_without_distributed_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed: ImportError
    with pytest.raises(ClusterError, match=r"pip install 'normstat\[dask\]'"):
        DaskEngine("tcp://127.0.0.1:1").__enter__()


# ---------------------------------------------------------------- end to end


def _images(folder: Path) -> None:
    rng = np.random.default_rng(3)
    for i in range(40):
        shape = (int(rng.integers(8, 40)), int(rng.integers(8, 40)), 3)
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(folder / f"{i:03d}.png")
    Image.fromarray(rng.integers(0, 256, (20, 20), dtype=np.uint8)).save(folder / "gray.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")


def _on_cluster(folder: Path, address: str) -> normstat.Stats:
    return normstat.compute(str(folder), scheduler=address)


def _saved(stats: normstat.Stats, path: Path) -> tuple[dict[str, Any], bytes]:
    stats.save(str(path))
    data = json.loads(path.read_text(encoding="utf-8"))
    sidecar = (path.parent / data["sidecar"]["path"]).read_bytes()
    del data["created"]
    for engine_option in ("workers", "scheduler", "retries"):
        data["options"].pop(engine_option, None)
    return data, sidecar


def test_compute_on_the_cluster_saves_the_bytes_one_worker_saves(
    address: str, tmp_path: Path
) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    _images(folder)
    (tmp_path / "local").mkdir()
    (tmp_path / "cluster").mkdir()
    local = _saved(normstat.compute(str(folder), workers=1), tmp_path / "local" / "stats.json")
    remote = _saved(_on_cluster(folder, address), tmp_path / "cluster" / "stats.json")
    assert local[0]["images"] == 41 and len(local[0]["skipped"]) == 1
    assert remote == local


def test_a_worker_without_normstat_is_named_by_its_import_error_only() -> None:
    from normstat.engine.dask import _without_normstat

    missing = _without_normstat(ModuleNotFoundError("no normstat", name="normstat"), "tcp://s:1")
    assert isinstance(missing, ClusterError) and missing.path == "tcp://s:1"
    assert "pip install 'normstat[dask]'" in missing.reason
    own = ImportError("no PIL", name="PIL")
    assert _without_normstat(own, "tcp://s:1") is own  # a task's own ImportError, as raised
