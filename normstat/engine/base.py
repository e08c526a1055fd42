"""The engine contract: ``map(fn, tasks)`` yields each task's result in task order, whatever ran
it and in whatever order the work finished; that order is what makes every output independent
of ``--workers``. The serial engine runs in this process (easy to debug and profile)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Protocol, TypeVar

__all__ = ["Engine", "SerialEngine", "WorkerDied", "chunked", "default_workers"]

T = TypeVar("T")
R = TypeVar("R")


class WorkerDied(Exception):
    """A worker process ended abruptly (a crash in a C decoder) while running task ``index``."""

    def __init__(self, index: int) -> None:
        self.index = index
        super().__init__(f"a worker process died while running item {index}")


class Engine(Protocol):
    """Where work runs; conformance: tests/test_contracts.py. ``fn`` and the tasks must be
    picklable (a module-level function, plain values), for engines that run elsewhere."""

    workers: int

    def map(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[R]:
        """Results in task order; tasks are consumed as the work proceeds (a bounded window)."""
        ...

    def crashes(self, fn: Callable[[T], R], task: T) -> bool:
        """Whether ``fn(task)`` kills the process it runs in: finds the file that did."""
        ...

    def __enter__(self) -> Engine: ...

    def __exit__(self, *exc: object) -> None: ...


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class SerialEngine(AbstractContextManager["SerialEngine"]):
    """In this process; ``map`` is lazy and ordered."""

    workers = 1

    def map(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[R]:
        return map(fn, tasks)

    def crashes(self, fn: Callable[[T], R], item: T) -> bool:
        """Whether ``fn(item)`` kills its process; unknowable in this one (it would die too)."""
        return False

    def __exit__(self, *exc: object) -> None:
        return None


def chunked(items: list[T], workers: int, largest: int = 64) -> list[list[T]]:
    """Chunks small enough to balance the workers and report progress, large enough to
    amortize inter-process overhead."""
    if not items:
        return []
    size = max(1, min(largest, -(-len(items) // (workers * 8))))
    return [items[i : i + size] for i in range(0, len(items), size)]
