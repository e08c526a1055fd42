"""compute's per-file route, run in the engine's workers: each shard streamed from its source,
each item probed and decoded by its reader from that one read, reduced and fingerprinted (or
decoded only, for the GPU). Items of batch readers (stacks) are left to ``arrays.py``. Per-image
failures come back as ``Skipped`` values."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np

from normstat.errors import DeviceError
from normstat.modes import Mode, get_mode
from normstat.options import MaskOptions, ReadOptions
from normstat.readers import Decoded, Probe, Skipped, unreadable
from normstat.reduce import FloatMoments, IntMoments, float_partial, histograms, int_partials
from normstat.reduce.color import lab_mode, rgb_to_lab
from normstat.reduce.covariance import cross_products
from normstat.reduce.masks import masked_image, read_mode
from normstat.reduce.ranges import FloatRange, range_histograms
from normstat.sources import Item, Shard, Source
from normstat.verbs.common import reader_of

from .records import ChunkResult, ImageRecord, Prints, refuse_masked

__all__ = ["DecodedChunk", "FileTask", "decode_chunk", "reduce_chunk"]

Loaded = tuple[Probe | Skipped | None, Decoded | Skipped | None, bool]


@dataclass(frozen=True)
class FileTask:
    """A shard to read in ``mode_name``, from ``source``."""

    source: Source
    shard: Shard
    mode_name: str
    read: ReadOptions
    mask: MaskOptions | None = None  # None: no mask asked for (a file's nodata tag still is)
    covariance: bool = False
    value_range: FloatRange | None = None  # float data histogrammed over it (--range)
    color: str | None = None  # "lab": reduced as CIELAB, fingerprinted as the RGB pixels


def _load(task: FileTask, item: Item, f: BinaryIO | OSError, mode: Mode) -> Loaded:
    """(probe, pixels, deferred) from the item's one read; a batch reader's item is deferred
    unread."""
    if isinstance(f, OSError):
        skip = Skipped(item.path, unreadable(f))
        return skip, skip, False
    with f:
        try:
            reader = reader_of(f)
        except OSError as exc:
            skip = Skipped(item.path, unreadable(exc))
            return skip, skip, False
        if reader.batched:
            return None, None, True
        return (*reader.load(f, item.path, mode, task.read), False)  # type: ignore[attr-defined]


def _loaded(task: FileTask, mode: Mode) -> Iterator[tuple[Item, Loaded]]:
    """Each item of the shard as its source streams it, loaded before the next is opened."""
    for item, f in task.source.stream(task.shard):
        yield item, _load(task, item, f, mode)


def masked(
    dec: Decoded, mode: Mode, mask: MaskOptions | None, name: str, spec: FloatRange | None = None
) -> tuple[Decoded, tuple[IntMoments | FloatMoments, ...], np.ndarray | None] | Skipped:
    """The image's colour pixels (the alpha channel of an alpha mask removed) and its partials
    over its valid pixels, or why it cannot contribute."""
    got = masked_image(dec.pixels, mode, mask or MaskOptions(), dec.nodata, spec)
    if isinstance(got, str):
        return Skipped(name, got)
    colour, moments, hists = got
    return Decoded(colour, dec.native), moments, hists


def partials(
    dec: Decoded,
    mode: Mode,
    spec: FloatRange | None = None,
    px: np.ndarray | None = None,
) -> tuple[tuple[IntMoments | FloatMoments, ...], np.ndarray | None]:
    """One image's per-channel partials, and its histograms (integer modes, or float ones
    over ``spec``'s range); ``px``: the values to reduce when they are not the decoded pixels
    (CIELAB)."""
    px = dec.pixels if px is None else px
    if mode.integer:
        hists = histograms(px, mode.bins, image=dec.image)
        return int_partials(hists), hists
    moments = tuple(float_partial(px[..., c]) for c in range(px.shape[2]))
    return moments, None if spec is None else range_histograms(px, spec)


def _outcome(
    item: Item, head: Probe | Skipped | None, dec: Decoded | Skipped | None
) -> Decoded | Skipped | None:
    """The pixels to reduce, or why the item does not contribute (None: not an image)."""
    if head is None or isinstance(head, Skipped):
        return head
    assert dec is not None
    if isinstance(dec, Decoded) and dec.pixels.size == 0:
        return Skipped(item.path, "image has no pixels")
    return dec


def reduce_chunk(task: FileTask) -> ChunkResult:
    """Probe and reduce each item from one open; the caller checks the mode guess afterwards.
    Perceptual hashes and references are computed for the whole chunk at once from the images'
    thumbnails."""
    mode = get_mode(task.mode_name)
    reduced = lab_mode() if task.color else mode  # the mode of the values reduced
    spec = None if reduced.integer else task.value_range
    bins = reduced.bins if reduced.integer else None if spec is None else spec.bins + 2
    total = None if bins is None else np.zeros((len(reduced.channels), bins), dtype=np.int64)
    result = ChunkResult([], [], total)
    prints = Prints(mode)
    for i, (item, (head, dec, deferred)) in enumerate(_loaded(task, read_mode(mode, task.mask))):
        result.items.append(item)
        result.canonical.append(head.canonical if isinstance(head, Probe) else None)
        if deferred:
            result.deferred.append(i)
        outcome = _outcome(item, head, dec)
        values = None
        if isinstance(outcome, Decoded) and (task.mask is not None or outcome.nodata is not None):
            refuse_masked(item.path, task.covariance, task.color)
            got = masked(outcome, mode, task.mask, item.path, spec)
            if isinstance(got, Skipped):
                outcome = got
            else:
                outcome, moments, hists = got
        elif isinstance(outcome, Decoded):
            values = rgb_to_lab(outcome.pixels) if task.color else None
            moments, hists = partials(outcome, reduced, spec, values)
        if not isinstance(outcome, Decoded):
            result.outcomes.append(outcome)
            continue
        if total is not None and hists is not None:
            total += hists
        products = None
        if task.covariance:
            px = outcome.pixels if values is None else values
            products = cross_products(px, reduced.integer)
        result.outcomes.append(prints.record(outcome, moments, products))
    prints.finish(result.outcomes)
    return result


@dataclass
class DecodedChunk:
    """A chunk probed, decoded and fingerprinted by a worker, pixels kept for the device."""

    outcomes: list[ImageRecord | Skipped | None]
    canonical: list[str | None]
    pixels: list[np.ndarray | None]
    deferred: list[int]
    items: list[Item]


def decode_chunk(task: FileTask) -> DecodedChunk:
    """Like ``reduce_chunk`` but returning the pixels instead of reducing them."""
    mode = get_mode(task.mode_name)
    out = DecodedChunk([], [], [], [], [])
    prints = Prints(mode)
    for i, (item, (head, dec, deferred)) in enumerate(_loaded(task, mode)):
        out.items.append(item)
        out.canonical.append(head.canonical if isinstance(head, Probe) else None)
        if deferred:
            out.deferred.append(i)
        outcome: Any = _outcome(item, head, dec)
        px = None
        if isinstance(outcome, Decoded) and outcome.nodata is not None:
            raise DeviceError(
                item.path, "has a nodata tag: masks are reduced on the CPU, use --device auto"
            )
        if isinstance(outcome, Decoded):
            px = outcome.pixels
            outcome = prints.record(outcome)
        out.outcomes.append(outcome)
        out.pixels.append(px)
    prints.finish(out.outcomes)
    return out
