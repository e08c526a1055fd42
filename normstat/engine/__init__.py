"""Engines: where work runs (this process, or a process pool); one contract, in ``base.py``."""

from __future__ import annotations

import os

from .base import Engine, SerialEngine, WorkerDied, chunked, default_workers
from .pool import PoolEngine

__all__ = [
    "IN_PROCESS",
    "Engine",
    "PoolEngine",
    "SerialEngine",
    "WorkerDied",
    "chunked",
    "default_workers",
    "make_engine",
]


IN_PROCESS = "NORMSTAT_IN_PROCESS"


def make_engine(workers: int | None, scheduler: str | None = None, retries: int = 0) -> Engine:
    """``workers`` processes (None or < 1: all usable CPUs; never more than those). Even one
    worker is a process, so a decoder that crashes it is named instead of killing normstat;
    work runs in this process only when the environment sets NORMSTAT_IN_PROCESS=1 (--debug,
    for tracebacks and debuggers). ``scheduler``: the tasks run on that Dask cluster instead,
    each retried up to ``retries`` times on transient errors."""
    if scheduler:
        from .dask import DaskEngine

        return DaskEngine(scheduler, retries)
    if os.environ.get(IN_PROCESS) == "1":
        return SerialEngine()
    usable = default_workers()
    n = usable if workers is None or workers <= 0 else min(workers, usable)
    return PoolEngine(n)
