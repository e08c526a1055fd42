"""Engines: where work runs (this process, or a process pool); one contract, in ``base.py``."""

from __future__ import annotations

from .base import Engine, SerialEngine, WorkerDied, chunked, default_workers
from .pool import PoolEngine

__all__ = [
    "Engine",
    "PoolEngine",
    "SerialEngine",
    "WorkerDied",
    "chunked",
    "default_workers",
    "make_engine",
]


def make_engine(workers: int | None) -> Engine:
    """``workers`` processes (None or < 1: all cores); one runs in this process."""
    n = default_workers() if workers is None or workers <= 0 else workers
    return SerialEngine() if n == 1 else PoolEngine(n)
