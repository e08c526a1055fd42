"""The Dask engine: the pool engine's contract (ordered results, a bounded window, a crashing
task named) on a Dask cluster that is already running: a LocalCluster, dask-jobqueue,
Kubernetes, reached by its scheduler's address. normstat only connects a client; starting and
stopping the cluster is its owner's business.

Tasks reach the workers pickled by reference to normstat's functions, so every worker must run
the client's normstat: checked on connection, and again by each task (a worker that joins an
adaptive cluster later is checked too). The scheduler needs none (see ``_Call``).
``distributed`` is imported only here, on connection.
"""

from __future__ import annotations

import contextlib
import pickle
import sys
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import CancelledError
from dataclasses import dataclass
from itertools import islice
from typing import Any, TypeVar

from normstat._version import __version__
from normstat.errors import NormstatError, describe

from .base import WorkerDied

__all__ = ["CONNECT_TIMEOUT", "ClusterError", "DaskEngine"]

T = TypeVar("T")
R = TypeVar("R")

CONNECT_TIMEOUT = 10.0  # seconds; a scheduler that is up answers in milliseconds
WINDOW_PER_THREAD = 3  # tasks in flight per worker thread: one running, the next ones queued
_INSTALL = "pip install 'normstat[dask]'"


class ClusterError(NormstatError):
    """The Dask cluster cannot be used: unreachable, lost, or its workers run another normstat."""


def _worker_version() -> str:
    """The worker's ``normstat.__version__``: the package is imported, since this module is."""
    return str(sys.modules["normstat"].__version__)


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return "a Dask worker"


def _mismatch(worker: str, client: str) -> str:
    return (
        f"this worker runs normstat {worker}, the client {client}:"
        " install the same normstat version on the client and every worker"
    )


def _checked(fn: Callable[[Any], Any], task: Any, version: str) -> Any:
    """``fn(task)`` on a worker, once that worker's normstat is known to be the client's."""
    have = _worker_version()
    if have != version:
        raise ClusterError(_worker_address(), _mismatch(have, version))
    return fn(task)


@dataclass(frozen=True)
class _Call:
    """``fn(task)`` as bytes whose unpickling runs it: the scheduler, which unpickles every
    task it is given, then sees only ``pickle.loads`` and bytes, so it needs no normstat (nor
    the task's source classes); only the workers do."""

    fn: Callable[[Any], Any]
    task: Any

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return _checked, (self.fn, self.task, __version__)


class DaskEngine:
    """Tasks on the cluster at ``address``, each retried up to ``retries`` times when it raises
    (a transient read error); a task whose workers keep dying is Dask's ``KilledWorker`` after
    ``distributed.scheduler.allowed-failures`` reschedules, reported as ``WorkerDied``."""

    def __init__(self, address: str, retries: int = 0, timeout: float = CONNECT_TIMEOUT) -> None:
        self.address = address
        self.retries = max(0, retries)
        self.timeout = timeout
        self.workers = 1
        self.window = WINDOW_PER_THREAD
        self._client: Any = None

    def __enter__(self) -> DaskEngine:
        try:
            client = _client(self.address, self.timeout)
        except ImportError:
            raise ClusterError(
                self.address, f"running on a Dask cluster needs distributed: {_INSTALL}"
            ) from None
        except Exception as exc:  # OSError when unreachable, ValueError for a malformed address
            raise ClusterError(
                self.address, f"cannot reach the Dask scheduler ({describe(exc)})"
            ) from None
        try:
            _check_versions(client)
            threads = client.nthreads()
        except BaseException:
            client.close()
            raise
        self._client = client
        self.workers = max(1, sum(threads.values()))
        self.window = WINDOW_PER_THREAD * self.workers
        return self

    def __exit__(self, *exc: object) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()  # the client only: the cluster is not ours

    def map(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[R]:
        """Results in task order; earlier tasks have the higher priority, so results come back
        roughly in the order they are consumed. Outstanding tasks are cancelled on early exit."""
        client = self._connected()
        from distributed import KilledWorker

        pending = enumerate(tasks)
        window: deque[tuple[int, T, Any, bool]] = deque()  # index, task, future, run alone

        def submit(index: int, task: T) -> tuple[int, T, Any, bool]:
            return index, task, self._submit(fn, task, index, self.retries, -index), False

        try:
            window.extend(submit(index, task) for index, task in islice(pending, self.window))
            while window:
                index, task, future, alone = window[0]
                try:
                    result = future.result()
                except KilledWorker:
                    if alone:
                        raise WorkerDied(index) from None
                    # Dask counts a death against every task assigned to the dead worker, the
                    # queued ones and those on its other threads too: the culprit is the task
                    # that still kills its worker when it runs ahead of all others (by then a
                    # culprit beside it has failed: its count is at least theirs).
                    window[0] = (
                        index,
                        task,
                        self._submit(fn, task, "alone", self.retries, 1),
                        True,
                    )
                    continue
                except ImportError as exc:
                    raise _without_normstat(exc, self.address) from None
                except CancelledError:
                    raise self._lost() from None
                window.popleft()
                window.extend(submit(index, task) for index, task in islice(pending, 1))
                yield result
        finally:
            if window and client.status == "running":
                client.cancel([future for _, _, future, _ in window])

    def _submit(
        self, fn: Callable[[T], R], task: T, tag: object, retries: int, priority: int
    ) -> Any:
        """``fn(task)`` as one Dask task, keyed as the dashboard and logs show it."""
        name = getattr(fn, "__name__", type(fn).__name__)
        payload = pickle.dumps(_Call(fn, task), pickle.HIGHEST_PROTOCOL)
        return self._connected().submit(
            pickle.loads,
            payload,
            key=f"normstat-{name}-{tag}-{uuid.uuid4().hex}",
            retries=retries,
            pure=False,
            priority=priority,
        )

    def crashes(self, fn: Callable[[T], R], task: T) -> bool:
        """Whether ``fn(task)``, run alone (never retried), kills the worker it runs on: Dask
        reschedules it until ``allowed-failures`` workers have died, then says KilledWorker."""
        from distributed import KilledWorker

        future = self._submit(fn, task, "alone", 0, 1)
        try:
            future.result()
        except KilledWorker:
            return True
        except CancelledError:
            raise self._lost() from None
        except Exception:
            return False
        return False

    def _connected(self) -> Any:
        if self._client is None:
            raise RuntimeError("DaskEngine is used inside 'with', which connects it")
        return self._client

    def _lost(self) -> ClusterError:
        return ClusterError(self.address, "lost the connection to the Dask scheduler")


def _client(address: str, timeout: float) -> Any:
    """A client connected to ``address``. One that fails to connect stops the event-loop thread
    it started (distributed leaves it running: a thread per failed attempt, and any running
    thread makes the process pool start workers from a fork server instead of forking)."""
    from distributed import Client

    class _Client(Client):
        def start(self, **kwargs: Any) -> None:
            try:
                super().start(**kwargs)
            except BaseException:
                with contextlib.suppress(Exception):
                    self._loop_runner.stop()
                    self.status = "closed"  # nothing left to close (at garbage collection)
                raise

    return _Client(address, timeout=timeout, set_as_default=False)


def _without_normstat(exc: ImportError, address: str) -> Exception:
    """A task that could not start: its worker (one that joined after the connection's check)
    cannot import normstat. Any other ImportError is the task's own, passed on as is."""
    if (exc.name or "").partition(".")[0] != "normstat":
        return exc
    return ClusterError(
        address, f"a worker cannot import normstat ({describe(exc)}): {_INSTALL} on every worker"
    )


def _check_versions(client: Any) -> None:
    """Every worker connected now runs the client's normstat (later ones: ``_checked``)."""
    answers = client.run(_worker_version, on_error="return")
    for worker, answer in sorted(answers.items()):
        if isinstance(answer, BaseException):
            raise ClusterError(
                worker,
                f"normstat cannot be imported on this worker ({describe(answer)}):"
                f" install normstat {__version__} there",
            )
        if answer != __version__:
            raise ClusterError(worker, _mismatch(answer, __version__))
