"""compute: every image of a split reduced in one streaming pass, merged in item order.

Each item is opened once, probed and reduced in the mode a header sample predicts; should the
whole split's majority mode differ from the prediction, the pass is repeated in that mode (a
wrong guess costs time, never correctness). Stacks follow the single-image files, in batches."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from types import ModuleType

import numpy as np

from normstat.engine import Engine, make_engine
from normstat.errors import InputError
from normstat.manifest import Stats
from normstat.modes import MODES, Mode, get_mode
from normstat.options import ComputeOptions, ReadOptions
from normstat.readers import Probe
from normstat.reduce.device import plan
from normstat.sources import Item, Source
from normstat.verbs.common import Progress, first_name, probe_item, reading, run_chunks, split, tick

from .accumulate import Accumulator
from .arrays import ArrayTask, array_chunk, array_tasks, probe_arrays
from .device import DeviceReducer
from .files import FileTask, decode_chunk, reduce_chunk
from .records import ChunkResult

__all__ = ["compute"]

_MODE_PREFERENCE = ("RGB", "L", "RGBA", "LA", "RGB;16", "I;16", "F", "RGB;F")
_GUESS_SAMPLE = 64


def decide_mode(counts: Counter[str]) -> Mode:
    """The most common canonical mode; ties go to the more common kind of dataset."""
    if not counts:
        return MODES["RGB"]
    best = max(counts.values())
    return MODES[next(m for m in _MODE_PREFERENCE if counts.get(m) == best)]


def _guess_mode(source: Source, items: list[Item], opts: ReadOptions) -> Mode:
    """The majority mode of an evenly spread sample of headers: the mode the single reduce
    pass assumes."""
    step = max(1, len(items) // _GUESS_SAMPLE)
    heads = [probe_item(source, item, opts) for item in items[::step][:_GUESS_SAMPLE]]
    votes: Counter[str] = Counter()
    for h in heads:
        if isinstance(h, Probe):
            votes[h.canonical] += h.count
    return decide_mode(votes)


def compute(
    source: Source, opts: ComputeOptions, workers: int | None, progress: Progress | None
) -> Stats:
    """Statistics of every image of ``source`` (see the module docstring)."""
    files_xp = plan(opts.device, 0).files  # --device gpu fails before anything is read
    read = opts.read
    items = source.items()
    if not items:
        raise InputError(source.name, "no files found")
    target = get_mode(opts.mode) if opts.mode else _guess_mode(source, items, read)
    arrays: list[tuple[Item, Probe]] | None = None
    with make_engine(workers) as engine:
        while True:
            acc, counts, deferred = _reduce_pass(
                engine, source, items, target, opts, progress, files_xp
            )
            if arrays is None:  # stacks: their headers, read here
                arrays, bad_arrays = probe_arrays(source, deferred, read)
            for _, p in arrays:  # each image of a stack is one vote
                counts[p.canonical] += p.count
            if opts.mode or not counts or decide_mode(counts) is target:
                break
            target = decide_mode(counts)
        for bad in bad_arrays:
            acc.skips.add(bad)
        if arrays:
            xp = plan(opts.device, sum(p.nbytes for _, p in arrays)).arrays  # type: ignore[attr-defined]
            _add_arrays(engine, source, arrays, acc, xp, progress)
    if not counts:
        if not acc.skips.items:
            raise InputError(source.name, "no images found")
        raise InputError(source.name, "no readable images found")
    if acc.images == 0:
        reason = acc.skips.items[0].reason if acc.skips.items else "no images"
        raise InputError(source.name, f"no image could be read (first reason: {reason})")
    return acc.finish(opts.manifest())


def _reduce_pass(
    engine: Engine,
    source: Source,
    items: list[Item],
    target: Mode,
    opts: ComputeOptions,
    progress: Progress | None,
    xp: ModuleType = np,
) -> tuple[Accumulator, Counter[str], list[Item]]:
    """Every item reduced in ``target``, merged in item order; plus the canonical mode counts
    and the items left to the batch route. ``xp`` not NumPy: reduced on the GPU here."""
    acc = Accumulator(target, opts.strict, source.manifest_root)
    counts: Counter[str] = Counter()
    deferred: list[Item] = []
    chunks = split(items, engine.workers)

    def task(c: list[Item]) -> FileTask:
        return FileTask(source, c, target.name, opts.read)

    done = 0
    results: Iterator[tuple[list[Item], ChunkResult]]
    if xp is np:
        results = run_chunks(engine, reduce_chunk, chunks, task, _first, reading)
    else:  # decoded by the workers, reduced on the GPU here
        decoded = run_chunks(engine, decode_chunk, chunks, task, _first, reading)
        results = DeviceReducer(target, xp).files(decoded)
    for chunk, result in results:
        counts.update(m for m in result.canonical if m is not None)
        for item, outcome in zip(chunk, result.outcomes, strict=True):
            acc.add_outcome(item.root, item.rel, outcome)
        deferred.extend(chunk[i] for i in result.deferred)
        acc.add_histogram(result.hist)
        done += len(chunk)
        tick(progress, "compute", done, len(items))
    return acc, counts, deferred


def _same(task: ArrayTask) -> ArrayTask:
    return task


def _first(chunk: list[Item] | ArrayTask) -> str:
    return chunk.ref(chunk.start).name if isinstance(chunk, ArrayTask) else first_name(chunk)


def _add_arrays(
    engine: Engine,
    source: Source,
    arrays: list[tuple[Item, Probe]],
    acc: Accumulator,
    xp: ModuleType,
    progress: Progress | None,
) -> None:
    """Reduce stacks in batches (after the single-image files, in item order): in the workers
    with NumPy, or fingerprinted there and reduced here on the device."""
    tasks = [
        task
        for item, p in arrays
        for task in array_tasks(source, item, p, acc.mode.name, reduce=xp is np)
    ]
    results: Iterator[tuple[ArrayTask, ChunkResult]]
    results = run_chunks(engine, array_chunk, tasks, _same, _first, reading, splits=False)
    if xp is not np:  # fingerprinted by the workers, reduced on the GPU here
        results = DeviceReducer(acc.mode, xp).arrays(results)
    done, total = 0, sum(p.count for _, p in arrays)
    for task, result in results:
        for i, outcome in enumerate(result.outcomes):
            ref = task.ref(task.start + i)
            acc.add_outcome(ref.item.root, ref.rel, outcome)
        acc.add_histogram(result.hist)
        done += task.stop - task.start
        tick(progress, "arrays", done, total)
