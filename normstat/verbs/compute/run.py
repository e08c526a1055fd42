"""compute: every image of a split reduced in one streaming pass, merged in item order.

The work is the source's shards (runs of files, or whole tar/parquet containers), planned
without regard to the engine, so any engine (a process pool, a Dask cluster) and any number of
workers give the same result. Each item is read once, probed and reduced in the mode a header
sample predicts; should the whole split's majority mode differ from the prediction, the pass is
repeated in that mode (a wrong guess costs time, never correctness). Stacks follow the
single-image files, in batches. With ``partials``, each finished shard is kept, and a rerun
reduces only the shards it does not find."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from itertools import islice
from types import ModuleType
from typing import Any

import numpy as np

from normstat.engine import Engine, make_engine
from normstat.errors import DeviceError, InputError
from normstat.manifest import Stats
from normstat.modes import MODES, Mode, get_mode
from normstat.options import ComputeOptions, ReadOptions
from normstat.readers import Probe, Skipped, unreadable
from normstat.reduce.color import LAB_FROM
from normstat.reduce.device import plan
from normstat.reduce.masks import alpha_mode, check_nodata
from normstat.reduce.ranges import FloatRange
from normstat.sources import Item, Shard, Source
from normstat.verbs.common import Progress, reader_of, reading, run_chunks, tick

from .accumulate import Accumulator
from .arrays import ArrayTask, array_chunk, array_tasks, probe_arrays
from .device import DeviceReducer
from .files import FileTask, decode_chunk, reduce_chunk
from .partials import Partials
from .records import ChunkResult

__all__ = ["compute"]

_MODE_PREFERENCE = ("RGB", "L", "RGBA", "LA", "RGB;16", "I;16", "F", "RGB;F")
_GUESS_SAMPLE = 64


def decide_mode(counts: Counter[str]) -> Mode:
    """The most common canonical mode; ties go to the more common kind of dataset (band modes,
    ``B<n>...``, after the fixed ones, by name)."""
    if not counts:
        return MODES["RGB"]
    best = max(counts.values())
    tied = [m for m in _MODE_PREFERENCE if counts.get(m) == best]
    return get_mode(tied[0] if tied else min(m for m, n in counts.items() if n == best))


def _streamed_probes(source: Source, shard: Shard, opts: ReadOptions, n: int) -> list[object]:
    """The header probes of a container's first ``n`` items, from its stream."""
    heads: list[object] = []
    stream = source.stream(shard)
    try:
        for item, f in islice(stream, n):
            if isinstance(f, OSError):
                heads.append(Skipped(item.path, unreadable(f)))
                continue
            with f:
                heads.append(reader_of(f).probe(f, item.path, opts))
    except OSError:
        pass  # a sample only: the pass reports it
    finally:
        getattr(stream, "close", lambda: None)()
    return heads


def _guess_mode(source: Source, shards: list[Shard], opts: ReadOptions) -> Mode:
    """The majority mode of an evenly spread sample of headers (the first few images of some
    containers): the mode the single reduce pass assumes."""
    items = [item for s in shards if s.items is not None for item in s.items]
    step = max(1, len(items) // _GUESS_SAMPLE)
    sample = tuple(items[::step][:_GUESS_SAMPLE])
    heads: list[object] = []
    if sample:  # streamed as one shard: a remote source fetches the sample concurrently
        run = Shard(sample[0].root, sample[0].rel, sample, "")
        heads += _streamed_probes(source, run, opts, len(sample))
    containers = [s for s in shards if s.items is None]
    for shard in containers[:: max(1, len(containers) // 8)][:8]:
        heads += _streamed_probes(source, shard, opts, _GUESS_SAMPLE // 8)
    votes: Counter[str] = Counter()
    for h in heads:
        if isinstance(h, Probe):
            votes[h.canonical] += h.count
    return decide_mode(votes)


def compute(
    source: Source,
    opts: ComputeOptions,
    workers: int | None,
    progress: Progress | None,
    *,
    scheduler: str | None = None,
    retries: int = 0,
    partials: Partials | None = None,
) -> Stats:
    """Statistics of every image of ``source`` (see the module docstring); on the Dask cluster
    at ``scheduler`` when given, keeping each finished shard in ``partials`` when given."""
    # masks, the covariance, float ranges and CIELAB are reduced on the CPU (gpu refused)
    slow = opts.mask.requested or opts.covariance or opts.value_range or opts.color
    device = "cpu" if slow else opts.device
    files_xp = plan(device, 0).files  # --device gpu fails before anything is read
    read = opts.read
    shards = source.shards()
    if not shards:
        raise InputError(source.name, "no files found")
    target = get_mode(opts.mode) if opts.mode else _guess_mode(source, shards, read)
    _check_masks(source, opts, target)
    arrays: list[tuple[Item, Probe]] | None = None
    with make_engine(workers, scheduler, retries) as engine:
        while True:
            acc, counts, deferred = _reduce_pass(
                engine, source, shards, target, opts, progress, files_xp, partials
            )
            if arrays is None:  # stacks: their headers, read here
                arrays, bad_arrays = probe_arrays(source, deferred, read)
            for _, p in arrays:  # each image of a stack is one vote
                counts[p.canonical] += p.count
            if opts.mode or not counts or decide_mode(counts) == target:
                break
            target = decide_mode(counts)
            _check_masks(source, opts, target)
        for bad in bad_arrays:
            acc.skips.add(bad)
        if arrays:
            tagged = next((i for i, p in arrays if getattr(p, "nodata", None) is not None), None)
            if tagged is not None and device == "gpu":
                why = "has a nodata tag: masks are reduced on the CPU, use --device auto"
                raise DeviceError(tagged.path, why)
            on = "cpu" if tagged is not None else device  # masked batches: on the CPU
            xp = plan(on, sum(p.nbytes for _, p in arrays)).arrays  # type: ignore[attr-defined]
            _add_arrays(engine, source, arrays, acc, xp, progress, partials, opts)
    if not counts:
        if not acc.skips.items:
            raise InputError(source.name, "no images found")
        raise InputError(source.name, "no readable images found")
    if acc.images == 0:
        reason = acc.skips.items[0].reason if acc.skips.items else "no images"
        raise InputError(source.name, f"no image could be read (first reason: {reason})")
    for name, m in zip(acc.moments.mode.channels, acc.moments.moments, strict=True):
        if m.count == 0:
            raise InputError(
                source.name, f"channel {name} has no valid pixel (all nodata or transparent)"
            )
    return acc.finish(opts.manifest())


def _check_masks(source: Source, opts: ComputeOptions, target: Mode) -> None:
    """InputError when the mask, range or colour options cannot apply to the dataset's mode."""
    if opts.color and target.name not in LAB_FROM:
        hint = " (--mode RGB reads grey images as RGB)" if target.name in ("L", "LA") else ""
        raise InputError(
            source.name,
            f"--color lab needs an 8- or 16-bit RGB dataset (RGB or RGB;16), not mode "
            f"{target.name}{hint}",
        )
    try:
        check_nodata(target, opts.nodata)
        if opts.mask.alpha:
            alpha_mode(target)
    except ValueError as exc:
        raise InputError(source.name, str(exc)) from None
    if opts.value_range is not None and target.integer and not opts.color:  # CIELAB: float
        reason = f"--range is for float data: mode {target.name} has exact histograms"
        raise InputError(source.name, f"{reason} (drop --range)")


def _spec(opts: ComputeOptions) -> FloatRange | None:
    return None if opts.value_range is None else FloatRange(*opts.value_range)


def _reduce_pass(
    engine: Engine,
    source: Source,
    shards: list[Shard],
    target: Mode,
    opts: ComputeOptions,
    progress: Progress | None,
    xp: ModuleType = np,
    partials: Partials | None = None,
) -> tuple[Accumulator, Counter[str], list[Item]]:
    """Every shard reduced in ``target``, merged in shard order; plus the canonical mode counts
    and the items left to the batch route. ``xp`` not NumPy: reduced on the GPU here."""
    spec = _spec(opts)
    acc = Accumulator(
        target,
        opts.strict,
        source.manifest_root,
        opts.covariance,
        None if spec is None else spec.bins + 2,
        opts.color,
    )
    counts: Counter[str] = Counter()
    deferred: list[Item] = []

    mask = opts.mask if opts.mask.requested else None

    def task(shard: Shard) -> FileTask:
        return FileTask(
            source, shard, target.name, opts.read, mask, opts.covariance, spec, opts.color
        )

    def reduced(todo: list[Shard]) -> Iterator[tuple[Shard, ChunkResult]]:
        if xp is np:
            return run_chunks(engine, reduce_chunk, todo, task, _first, reading)
        # decoded by the workers, reduced on the GPU here (a shard at a time when kept, so
        # each shard's partial holds its own histogram)
        decoded = run_chunks(engine, decode_chunk, todo, task, _first, reading)
        return DeviceReducer(target, xp, per_chunk=partials is not None).files(decoded)

    keys = [partials.key("shard", target.name, opts, s) for s in shards] if partials else []
    # Progress in images when every shard's count is known; in shards when containers are
    # listed by their workers only.
    counted = all(s.items is not None for s in shards)
    total = sum(len(s.items or ()) for s in shards) if counted else len(shards)
    images = 0
    for done, (_, result) in enumerate(_kept_or_reduced(shards, keys, partials, reduced), 1):
        counts.update(m for m in result.canonical if m is not None)
        for item, outcome in zip(result.items, result.outcomes, strict=True):
            acc.add_outcome(item.root, item.rel, outcome)
        deferred.extend(result.items[i] for i in result.deferred)
        acc.add_histogram(result.hist)
        images += len(result.items)
        tick(progress, *(("compute", images) if counted else ("shards", done)), total)
    return acc, counts, deferred


def _kept_or_reduced(
    chunks: Sequence[Any],
    keys: list[str],
    partials: Partials | None,
    reduce: Callable[[list[Any]], Iterator[tuple[Any, ChunkResult]]],
) -> Iterator[tuple[Any, ChunkResult]]:
    """Each chunk's result in order: its kept partial when there is one, else reduced (by
    ``reduce``, given the chunks left to do) and kept."""
    if partials is None:
        yield from reduce(list(chunks))
        return
    # Which partials exist is known up front (the engine gets the rest at once); each is read
    # only when its turn comes, so the driver never holds more than one.
    present = [partials.exists(key) for key in keys]
    todo = [c for c, there in zip(chunks, present, strict=True) if not there]
    fresh = reduce(todo) if todo else iter(())
    for chunk, key, there in zip(chunks, keys, present, strict=True):
        result = partials.load(key) if there else None
        if result is None:
            # absent, or present but unreadable now: reduced (alone, in the second case)
            _, result = next(fresh) if not there else next(reduce([chunk]))
            partials.save(key, result)
        yield chunk, result


def _same(task: ArrayTask) -> ArrayTask:
    return task


def _first(chunk: Shard | ArrayTask) -> str:
    return chunk.ref(chunk.start).name if isinstance(chunk, ArrayTask) else chunk.name


def _add_arrays(
    engine: Engine,
    source: Source,
    arrays: list[tuple[Item, Probe]],
    acc: Accumulator,
    xp: ModuleType,
    progress: Progress | None,
    partials: Partials | None,
    opts: ComputeOptions,
) -> None:
    """Reduce stacks in batches (after the single-image files, in item order): in the workers
    with NumPy, or fingerprinted there and reduced here on the device."""
    mask = opts.mask if opts.mask.requested else None
    spec = _spec(opts)
    tasks = [
        task
        for item, p in arrays
        for task in array_tasks(
            source, item, p, acc.mode.name, xp is np, mask, opts.covariance, spec, opts.color
        )
    ]

    def reduced(todo: list[ArrayTask]) -> Iterator[tuple[ArrayTask, ChunkResult]]:
        results = run_chunks(engine, array_chunk, todo, _same, _first, reading, splits=False)
        if xp is not np:  # fingerprinted by the workers, reduced on the GPU here
            results = DeviceReducer(acc.mode, xp).arrays(results)
        return results

    keys = [partials.key("stack", acc.mode.name, None, t) for t in tasks] if partials else []
    done, total = 0, sum(p.count for _, p in arrays)
    for task, result in _kept_or_reduced(tasks, keys, partials, reduced):
        assert isinstance(task, ArrayTask)
        for i, outcome in enumerate(result.outcomes):
            ref = task.ref(task.start + i)
            acc.add_outcome(ref.item.root, ref.rel, outcome)
        acc.add_histogram(result.hist)
        done += task.stop - task.start
        tick(progress, "arrays", done, total)
