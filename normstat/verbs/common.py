"""What every verb does the same way: open an item through its source and choose its reader,
scan a split's headers, read images by reference, the strict-or-skip rule, and chunks run on an
engine (a worker killed by a crashing decoder named by the chunk's first image, never a hang)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sized
from dataclasses import dataclass, replace
from typing import Any, BinaryIO, TypeVar

from normstat.engine import Engine, WorkerDied, chunked
from normstat.errors import InputError
from normstat.modes import Mode
from normstat.options import ReadOptions
from normstat.readers import (
    HEAD,
    Decoded,
    Probe,
    Reader,
    Skipped,
    image_name,
    parse_image_name,
    reader_for,
    unreadable,
)
from normstat.sources import Item, Shard, Source

__all__ = [
    "ImageRef",
    "Progress",
    "Skips",
    "first_name",
    "image_refs",
    "none_read",
    "open_item",
    "probe_item",
    "read_reference",
    "read_refs",
    "reader_of",
    "reading",
    "run_chunks",
    "scan",
    "split",
    "tick",
]

Progress = Callable[[str, int, int], None]
C = TypeVar("C")
R = TypeVar("R")


def tick(progress: Progress | None, phase: str, done: int, total: int) -> None:
    if progress is not None:
        progress(phase, done, total)


def split(items: list[C], workers: int) -> list[list[C]]:
    """The chunks every verb hands to its engine."""
    return chunked(items, workers)


class Skips:
    """Images that do not contribute: listed with their reason, or, when ``strict``, the first
    one is an InputError."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.items: list[Skipped] = []

    def add(self, skipped: Skipped) -> None:
        if self.strict:
            raise InputError(skipped.path, skipped.reason)
        self.items.append(skipped)

    def sorted(self) -> list[Skipped]:
        return sorted(self.items, key=lambda s: s.path)


def none_read(source_name: str, skipped: list[Skipped]) -> InputError:
    """The error when every image was skipped: a run that did nothing must not pass."""
    first = min(skipped, key=lambda s: s.path, default=None)
    why = f"; first: {first.path}: {first.reason}" if first else ""
    return InputError(source_name, f"no image could be read ({len(skipped)} skipped{why})")


def run_chunks(
    engine: Engine,
    fn: Callable[[Any], R],
    chunks: list[C],
    task_for: Callable[[C], Any],
    first: Callable[[C], str],
    doing: Callable[[C], str],
    splits: bool = True,
) -> Iterator[tuple[C, R]]:
    """Each chunk with its result, in order (tasks made by ``task_for`` as the window moves). A
    worker killed by a decoder crash is an InputError naming the file: each item of the dead
    chunk is rerun alone to find it (``splits``: a chunk is a list of items to do so)."""
    try:
        yield from zip(chunks, engine.map(fn, map(task_for, chunks)), strict=True)
    except WorkerDied as exc:
        chunk = chunks[exc.index]
        for piece in _pieces(chunk) if splits else []:
            if engine.crashes(fn, task_for(piece)):
                chunk = piece
                break
        raise InputError(
            first(chunk), f"a worker process died {doing(chunk)} (a crash in a decoder)"
        ) from None


def _pieces(chunk: Any) -> list[Any]:
    """A chunk's items as one-item chunks of its own kind, to find the one that crashes (a
    container's items are known only to its worker: it is named as a whole)."""
    if isinstance(chunk, list) and len(chunk) > 1:
        return [[element] for element in chunk]
    if isinstance(chunk, Shard) and chunk.items is not None and len(chunk.items) > 1:
        return [replace(chunk, items=(item,)) for item in chunk.items]
    return []


def open_item(source: Source, item: Item) -> tuple[BinaryIO, Reader]:
    """The item opened and the reader its first bytes call for; OSError if it cannot be read."""
    f = source.open(item)
    try:
        return f, reader_of(f)
    except BaseException:
        f.close()
        raise


def reader_of(f: BinaryIO) -> Reader:
    """The reader an open file's first bytes call for, the file rewound; OSError if it cannot
    be read."""
    head = f.read(HEAD)
    f.seek(0)
    return reader_for(head)


def probe_item(source: Source, item: Item, opts: ReadOptions) -> Probe | Skipped | None:
    """The item's header probe; None: not an image, ignored silently."""
    try:
        f, reader = open_item(source, item)
    except OSError as exc:
        return Skipped(item.path, unreadable(exc))
    with f:
        return reader.probe(f, item.path, opts)


@dataclass(frozen=True)
class ScanTask:
    source: Source
    items: list[Item]
    read: ReadOptions


def _probe_chunk(task: ScanTask) -> list[Probe | Skipped | None]:
    return [probe_item(task.source, item, task.read) for item in task.items]


def scan(
    source: Source,
    engine: Engine,
    opts: ReadOptions,
    progress: Progress | None = None,
) -> tuple[list[tuple[Item, Probe]], list[Skipped]]:
    """The source's items whose content is an image (or a stack), with their header probe, in
    item order; unreadable files named like images are returned as skipped."""
    items = source.items()
    if not items:
        raise InputError(source.name, "no files found")
    chunks = split(items, engine.workers)
    images: list[tuple[Item, Probe]] = []
    skipped: list[Skipped] = []
    done = 0

    def task(c: list[Item]) -> ScanTask:
        return ScanTask(source, c, opts)

    for chunk, results in run_chunks(engine, _probe_chunk, chunks, task, first_name, reading):
        for item, res in zip(chunk, results, strict=True):
            if isinstance(res, Probe):
                images.append((item, res))
            elif isinstance(res, Skipped):
                skipped.append(res)
        done += len(chunk)
        tick(progress, "scan", done, len(items))
    if not images and not skipped:
        raise InputError(source.name, "no images found")
    return images, skipped


def first_name(chunk: list[Any]) -> str:
    """The name of a chunk's first image (of items, images, or (image, ...) pairs)."""
    head = chunk[0]
    head = head[0] if isinstance(head, tuple) else head
    return head.name if isinstance(head, ImageRef) else str(head.path)


def reading(chunk: Sized | Shard) -> str:
    """What a worker was doing with a chunk (of items, images, a shard, or a stack's batch)."""
    if isinstance(chunk, Shard):
        if chunk.items is None:
            return "reading this container"
        chunk = list(chunk.items)
    if not isinstance(chunk, list):
        return "reading this stack"
    return (
        "reading it" if len(chunk) == 1 else f"reading it or one of the {len(chunk) - 1} after it"
    )


@dataclass(frozen=True, slots=True)
class ImageRef:
    """One image: an item, and its index when the item is a stack."""

    item: Item
    index: int = 0
    stacked: bool = False

    @property
    def name(self) -> str:
        """As reports and ``skipped`` name it: ``stack.npy[12]`` for a stack's image."""
        return image_name(self.item.path, self.index, self.stacked)

    @property
    def rel(self) -> str:
        """Relative to its root, as the sidecar stores it and apply names its output."""
        return image_name(self.item.rel, self.index, self.stacked)


def image_refs(found: list[tuple[Item, Probe]]) -> list[ImageRef]:
    """Every image of the scanned items, stacks expanded, in order."""
    return [ImageRef(item, i, probe.stacked) for item, probe in found for i in range(probe.count)]


def _runs(refs: list[ImageRef]) -> Iterator[list[ImageRef]]:
    """Consecutive images of one item: read from one open."""
    run: list[ImageRef] = []
    for ref in refs:
        if run and (ref.item != run[-1].item or ref.index != run[-1].index + 1):
            yield run
            run = []
        run.append(ref)
    if run:
        yield run


def read_refs(
    source: Source, refs: list[ImageRef], target: Mode, opts: ReadOptions
) -> Iterator[Decoded | Skipped]:
    """The pixels of each image in ``target``, or why not, in order, one image at a time
    (consecutive images of one stack from one open)."""
    for run in _runs(refs):
        item = run[0].item
        try:
            f, reader = open_item(source, item)
        except OSError as exc:
            yield from (Skipped(ref.name, unreadable(exc)) for ref in run)
            continue
        given, why = 0, "the file holds fewer images now"
        with f:
            for got in reader.read(f, item.path, target, opts, run[0].index, run[-1].index + 1):
                if isinstance(got, Skipped) and got.path == item.path and run[0].stacked:
                    why = got.reason  # the stack itself failed: each of its images says so
                    break
                yield got
                given += 1
        yield from (Skipped(ref.name, why) for ref in run[given:])


def read_reference(
    source: Source, root: str, rel: str, target: Mode, opts: ReadOptions
) -> Decoded | Skipped:
    """A contributor's pixels, by the name the sidecar stores (``stack.npy[12]`` for a stack's
    image: the file of that name when one exists, else image 12 of ``stack.npy``)."""
    ref = ImageRef(Item(root, rel))
    member = parse_image_name(rel)
    if member is not None:
        try:
            source.open(ref.item).close()
        except OSError:
            ref = ImageRef(Item(root, member[0]), member[1], True)
    return next(read_refs(source, [ref], target, opts))
