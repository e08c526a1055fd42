"""Run a function over chunks, in-process or on a process pool, yielding results in chunk order.

Results come back in submission order whatever the scheduling, which is what makes every output
independent of ``--workers``. ``workers == 1`` runs in this process (easy to debug and profile).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Any, TypeVar

__all__ = ["Executor", "default_workers", "make_executor"]

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class Executor(AbstractContextManager["Executor"]):
    """Serial runner; ``map`` is lazy and ordered."""

    workers = 1

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        return map(fn, items)

    def __exit__(self, *exc: object) -> None:
        return None


class PoolExecutor(Executor):
    """A spawn-context process pool: workers start clean (no inherited threads or locks)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool: Any = multiprocessing.get_context("spawn").Pool(workers)

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        return self._pool.imap(fn, items, chunksize=1)

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self._pool.close()
        else:
            self._pool.terminate()
        self._pool.join()


def make_executor(workers: int | None) -> Executor:
    n = default_workers() if workers is None or workers <= 0 else workers
    return Executor() if n == 1 else PoolExecutor(n)


def chunked(items: list[T], workers: int, largest: int = 64) -> list[list[T]]:
    """Chunks small enough to balance the workers and report progress, large enough to
    amortize inter-process overhead."""
    if not items:
        return []
    size = max(1, min(largest, -(-len(items) // (workers * 8))))
    return [items[i : i + size] for i in range(0, len(items), size)]
