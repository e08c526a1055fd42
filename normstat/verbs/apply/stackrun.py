"""apply --stack's driver: decide which slots a rerun keeps (an interrupted run's partial, or
the finished stack.npy expanded back when some source changed), hand the rest to the engine's
workers in chunks, then finish the stack."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from normstat.engine import Engine
from normstat.fileops import atomic_write_bytes
from normstat.options import MaskOptions, ReadOptions
from normstat.readers import Skipped
from normstat.sources import Item, Source
from normstat.verbs.common import ImageRef, Progress, Skips, first_name, reading, run_chunks, tick
from normstat.verbs.common import split as split_chunks

from .journal import Version
from .normalize import Normalizer
from .stack import (
    NAMES,
    STACK,
    RowJournal,
    RowTask,
    expand_final,
    finish,
    names_current,
    names_text,
    new_partial,
    open_stack,
    plan_digest,
    remove_stack,
    reopen_partial,
    write_rows,
)

__all__ = ["StackJob", "apply_stack"]


@dataclass(frozen=True)
class StackJob:
    """One stack to make: where, from which images, and how each row is normalized."""

    out: str
    source: Source
    refs: list[ImageRef]
    row: tuple[int, ...]
    dtype: str
    mode: str
    normalizer: Normalizer
    read: ReadOptions
    fresh: bool  # other options before, or --overwrite: nothing of an earlier run is kept
    # the statistics' mask (none: only files' nodata tags)
    mask: MaskOptions = field(default_factory=MaskOptions)


def apply_stack(
    job: StackJob, engine: Engine, skips: Skips, progress: Progress | None
) -> tuple[int, int]:
    """(rows written now, rows kept from an earlier run); (0, 0) when every image was skipped
    (and nothing is left behind)."""
    refs, out = job.refs, job.out
    shape = (len(refs), *job.row)
    journal = RowJournal(out, plan_digest(refs, shape, job.dtype))
    if job.fresh:
        remove_stack(out)
    rows = journal.load()
    stamps: dict[Item, Version | None] = {}
    now = [stamps.setdefault(r.item, job.source.version(r.item)) for r in refs]
    todo = [
        k
        for k, ref in enumerate(refs)
        if not (
            (e := rows.get(k)) is not None
            and e.skipped is None
            and e.rel == ref.rel
            and e.version == now[k]
        )
    ]
    partial = reopen_partial(out, shape, job.dtype) if rows else None
    if partial is None:
        finished = bool(rows) and len(rows) == len(refs)
        before = {k for k, e in rows.items() if e.skipped is not None}
        if finished and not todo:
            final = open_stack(os.path.join(out, STACK), shape, job.dtype)
            if final is not None:  # complete and current: nothing to do
                del final
                if not names_current(out, refs, set()):  # a crash between the two renames
                    atomic_write_bytes(os.path.join(out, NAMES), names_text(refs, set()))
                return 0, len(refs)
        partial = expand_final(out, shape, job.dtype, before) if finished else None
        if partial is None:
            journal.start()
            partial = new_partial(out, shape, job.dtype)
            todo = list(range(len(refs)))
    kept = len(refs) - len(todo)
    chunks = split_chunks([(refs[k], k, now[k]) for k in todo], engine.workers)

    def task(c: list[tuple[ImageRef, int, Version | None]]) -> RowTask:
        slots = [(k, ref, v) for ref, k, v in c]
        return RowTask(
            job.source, slots, job.mode, job.normalizer, job.read, partial, journal, job.mask
        )

    holes: set[int] = set()
    done = kept
    for chunk, outcomes in run_chunks(engine, write_rows, chunks, task, first_name, reading):
        for (_, k, _), outcome in zip(chunk, outcomes, strict=True):
            if isinstance(outcome, Skipped):
                skips.add(outcome)
                holes.add(k)
        done += len(chunk)
        tick(progress, "apply", done, len(refs))
    if len(holes) == len(refs):
        remove_stack(out)
        return 0, 0
    return finish(out, partial, refs, holes) - kept, kept
