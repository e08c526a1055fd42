"""The process-pool engine: a bounded window of tasks in flight, results in task order, and a
worker killed by a crashing C decoder reported as ``WorkerDied`` (never a hang)."""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import multiprocessing
import os
import signal
import sys
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from .base import SerialEngine, WorkerDied

__all__ = ["PoolEngine"]

T = TypeVar("T")
R = TypeVar("R")


def _worker_start() -> None:
    """Each worker: ends when its parent does, and keeps file descriptor 2 quiet.

    A SIGKILLed parent cannot stop its workers, so they watch it themselves: Linux kills the
    worker when its parent dies (PR_SET_PDEATHSIG), and a watchdog thread exits when the parent
    changes (elsewhere, and should the parent have died before the first line ran). The parent
    is the main process under fork, the fork server otherwise (which ends with the main process).
    C decoders (libtiff) print warnings straight to descriptor 2; from workers that chatter would
    bury the progress bar, and each file's outcome is reported anyway."""
    parent = os.getppid()
    _die_with_parent()
    if os.getppid() != parent or parent == 1:
        os._exit(1)
    threading.Thread(target=_watch, args=(parent,), daemon=True, name="parent-watch").start()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)


def _die_with_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


_PR_SET_PDEATHSIG = 1


class PoolEngine(SerialEngine):
    """A process pool with a bounded window of chunks in flight, so memory stays flat however
    long the input. Workers are started at once, while the caller prepares the first chunks."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool = _pool(workers)
        with warnings.catch_warnings():  # Python ≥ 3.12 warns of native (BLAS) threads: see _pool
            warnings.simplefilter("ignore", DeprecationWarning)
            self._pool.submit(int)

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        pending = iter(items)
        window: deque[tuple[T, Future[R] | None]] = deque(
            (item, self._submit(fn, item)) for item in itertools.islice(pending, self.workers * 4)
        )
        index = 0
        while window:
            item, future = window[0]
            try:
                if future is None:  # the pool broke before this item could be submitted
                    raise BrokenProcessPool
                result = future.result()
            except BrokenProcessPool:
                # Every unfinished item fails with the pool; rerun them alone to find the killer.
                yield from _isolate(fn, [item for item, _ in window], index)
                raise WorkerDied(index) from None  # no item crashes alone: still an error
            window.popleft()
            for item in itertools.islice(pending, 1):
                window.append((item, self._submit(fn, item)))
            index += 1
            yield result

    def _submit(self, fn: Callable[[T], R], item: T) -> Future[R] | None:
        """None when the pool is already broken (a worker died while others ran): the item is
        then rerun alone like the rest of the window, never an unexpected BrokenProcessPool."""
        try:
            return self._pool.submit(fn, item)
        except BrokenProcessPool:
            return None

    def crashes(self, fn: Callable[[T], R], item: T) -> bool:
        """Whether ``fn(item)`` kills the process it runs in (run alone in a fresh one)."""
        try:
            next(_isolate(fn, [item], 0))
        except WorkerDied:
            return True
        return False

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=exc[0] is not None)


def _start_method() -> str:
    """``fork`` when this process runs no other Python thread: workers start in milliseconds
    with the libraries already imported (spawn takes 0.3–0.5 s per pool re-importing NumPy),
    and no thread can hold a lock at fork time (OpenBLAS re-creates its own threads after a
    fork). With other threads running (the progress bar), ``forkserver``, else ``spawn``."""
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return "fork"
    return "forkserver" if "forkserver" in methods else "spawn"


def _pool(workers: int) -> ProcessPoolExecutor:
    context = multiprocessing.get_context(_start_method())
    return ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_start)


def _isolate(fn: Callable[[T], R], items: list[T], first_index: int) -> Iterator[R]:
    """Run ``items`` one at a time, each in a fresh process; the first that kills its process
    raises WorkerDied with its index. Only used after a pool broke, so cost does not matter."""
    for offset, item in enumerate(items):
        with _pool(1) as solo:
            try:
                result = solo.submit(fn, item).result()
            except BrokenProcessPool:
                raise WorkerDied(first_index + offset) from None
        yield result
