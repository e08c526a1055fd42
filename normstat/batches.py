"""Batched compute: .npy arrays and decoded image files reduced by ``batchreduce``.

Workers (``array_chunk``, ``decode_chunk``) read or decode and fingerprint; the reduction runs
either in the worker with NumPy (CPU) or in this process on the device (``xp`` = CuPy), where
each batch is staged through pinned memory and reduced in one pass. Per-image records come back
in file order in both cases, so the manifest does not depend on the device or ``--workers``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from types import ModuleType
from typing import Any, TypeVar

import numpy as np

from .batchreduce import BatchMoments, reduce_batch
from .decode import Probe, Skipped, load
from .device import Stager
from .fingerprint import perceptual, pixel_hash
from .kernels import fused_sum_sq
from .modes import Mode, get_mode
from .npysource import ArrayProbe, convert_batch, image_name, open_array, read_batch
from .pipeline import ChunkResult, ImageRecord
from .reduce import FloatMoments, IntMoments, histograms, int_partial

__all__ = [
    "CPU_BATCH_BYTES",
    "DEVICE_BATCH_BYTES",
    "ArrayTask",
    "DeviceReducer",
    "array_chunk",
    "array_tasks",
    "decode_chunk",
    "reduce_on_cpu",
]

C = TypeVar("C")
CPU_BATCH_BYTES = 16 << 20  # per worker task: bounded memory, fine-grained progress
DEVICE_BATCH_BYTES = 128 << 20  # per transfer: launches and latency amortized over ~10 ms


@dataclass(frozen=True)
class ArrayTask:
    """Images ``start:stop`` of one .npy file; ``reduce`` False leaves moments to the device."""

    path: str
    rel: str
    probe: ArrayProbe
    start: int
    stop: int
    mode_name: str
    reduce: bool


def array_tasks(
    path: str, rel: str, probe: ArrayProbe, mode_name: str, reduce: bool
) -> list[ArrayTask]:
    """The file cut into batches of about CPU_BATCH_BYTES (DEVICE_BATCH_BYTES for the device)."""
    image_bytes = max(1, probe.nbytes // probe.count)
    budget = CPU_BATCH_BYTES if reduce else DEVICE_BATCH_BYTES
    step = max(1, budget // image_bytes)
    return [
        ArrayTask(path, rel, probe, i, min(i + step, probe.count), mode_name, reduce)
        for i in range(0, probe.count, step)
    ]


def _converted(task: ArrayTask, mode: Mode) -> tuple[np.ndarray | None, list[str | None]]:
    """The task's images in ``mode`` and, per image, why it cannot contribute (None: it can)."""
    batch = read_batch(open_array(task.path), task.probe, task.start, task.stop)
    converted = convert_batch(batch, mode)
    if isinstance(converted, str):
        return None, [converted] * len(batch)
    if converted.dtype.kind != "f":
        return converted, [None] * len(batch)
    finite = np.isfinite(converted).all(axis=(1, 2, 3))
    reasons = [None if ok else "non-finite pixel values (NaN or infinity)" for ok in finite]
    return converted, reasons


def _record(native: str, px: np.ndarray, mode: Mode) -> ImageRecord:
    dhash, phash = perceptual(px, mode.max_value)
    return ImageRecord(
        native,
        (),
        pixel_hash(px, mode.name),
        dhash,
        int(px.shape[0]),
        int(px.shape[1]),
        phash,
    )


def array_chunk(task: ArrayTask) -> ChunkResult:
    """Fingerprints (and, when ``task.reduce``, partials) of one batch of a .npy file."""
    mode = get_mode(task.mode_name)
    try:
        pixels, reasons = _converted(task, mode)
    except Exception as exc:  # the file changed or is damaged past its header
        text = str(exc).replace("\n", " ").strip() or type(exc).__name__
        pixels, reasons = None, [f"unreadable .npy file: {text}"] * (task.stop - task.start)
    outcomes: list[ImageRecord | Skipped] = []
    for offset, reason in enumerate(reasons):
        name = _skip_name(task, task.start + offset)
        if reason is not None or pixels is None:
            outcomes.append(Skipped(name, reason or "unreadable"))
        else:
            outcomes.append(_record(task.probe.native, pixels[offset], mode))
    hist = None
    if task.reduce and pixels is not None:
        keep = [i for i, r in enumerate(reasons) if r is None]
        if keep:
            valid = pixels if len(keep) == len(pixels) else pixels[keep]
            reduced = reduce_on_cpu(valid, mode)
            for i, moments in zip(keep, reduced.moments, strict=True):
                record = outcomes[i]
                assert isinstance(record, ImageRecord)
                outcomes[i] = replace(record, moments=moments)
            hist = reduced.hist
    return ChunkResult(list(outcomes), [None] * len(outcomes), hist)


def reduce_on_cpu(pixels: np.ndarray, mode: Mode) -> BatchMoments:
    """On the CPU, integer images take the image files' route (Pillow's one-pass C histogram
    for 8 bits, bincount for 16): 10-20× the generic batch's bincount and int64 sums, with the
    identical exact result (tests check both against each other). Floats: the generic batch,
    which is bit-identical to ``float_partial`` per image."""
    if not mode.integer:
        return reduce_batch(pixels, mode)
    total = np.zeros((len(mode.channels), mode.bins), dtype=np.int64)
    moments: list[tuple[IntMoments | FloatMoments, ...]] = []
    for px in pixels:
        hists = histograms(px, mode.bins)
        total += hists
        moments.append(tuple(int_partial(h) for h in hists))
    return BatchMoments(moments, total)


def _skip_name(task: ArrayTask, index: int) -> str:
    return image_name(task.path, task.probe, index)


@dataclass
class DecodedChunk:
    """A chunk probed, decoded and fingerprinted by a worker, pixels kept for the device."""

    outcomes: list[ImageRecord | Skipped | None]
    canonical: list[str | None]
    pixels: list[np.ndarray | None]


def decode_chunk(args: tuple[list[str], str, int | None, bool]) -> DecodedChunk:
    """Like ``pipeline.reduce_chunk`` but returning the pixels instead of reducing them."""
    paths, mode_name, max_pixels, keep_alpha = args
    mode = get_mode(mode_name)
    out = DecodedChunk([], [], [])
    for path in paths:
        head, dec = load(path, mode, max_pixels, keep_alpha)
        out.canonical.append(head.canonical if isinstance(head, Probe) else None)
        outcome: ImageRecord | Skipped | None
        px = None
        if head is None or isinstance(head, Skipped):
            outcome = head
        elif dec is None or isinstance(dec, Skipped):
            outcome = dec
        elif dec.pixels.size == 0:
            outcome = Skipped(path, "image has no pixels")
        else:
            px = dec.pixels
            dhash, phash = perceptual(px, mode.max_value, dec.image)
            outcome = ImageRecord(
                dec.native,
                (),
                pixel_hash(px, mode.name),
                dhash,
                int(px.shape[0]),
                int(px.shape[1]),
                phash,
            )
        out.outcomes.append(outcome)
        out.pixels.append(px)
    return out


class DeviceReducer:
    """Reduces batches on ``xp``'s device in this process: stage, reduce, attach moments."""

    def __init__(self, mode: Mode, xp: ModuleType) -> None:
        self.mode = mode
        self.xp = xp
        self.stager = Stager(xp)
        self.fused = fused_sum_sq(xp)

    def _reduce(self, host: np.ndarray) -> Any:
        return reduce_batch(self.stager.put(host), self.mode, self.xp, self.fused)

    def _add_hist(self, total: np.ndarray | None, hist: np.ndarray | None) -> np.ndarray | None:
        if hist is None:
            return total
        return hist if total is None else total + hist

    def files(self, results: Iterable[tuple[C, DecodedChunk]]) -> Iterator[tuple[C, ChunkResult]]:
        """Decoded chunks → ChunkResults, in order. Chunks are buffered up to
        DEVICE_BATCH_BYTES of pixels; consecutive images of one shape form one batch (a dataset
        of varied sizes gets smaller batches: the device helps little there)."""
        pending: list[tuple[C, DecodedChunk]] = []
        size = 0
        for chunk, decoded in results:
            pending.append((chunk, decoded))
            size += sum(px.nbytes for px in decoded.pixels if px is not None)
            if size >= DEVICE_BATCH_BYTES:
                yield from self._flush(pending)
                pending, size = [], 0
        yield from self._flush(pending)

    def _flush(self, pending: list[tuple[C, DecodedChunk]]) -> Iterator[tuple[C, ChunkResult]]:
        outcomes = [list(decoded.outcomes) for _, decoded in pending]
        images = [
            (k, i, px)
            for k, (_, decoded) in enumerate(pending)
            for i, px in enumerate(decoded.pixels)
            if px is not None
        ]
        hist: np.ndarray | None = None
        start = 0
        for end in range(1, len(images) + 1):
            if end == len(images) or images[end][2].shape != images[start][2].shape:
                run = images[start:end]
                reduced = self._reduce(np.stack([px for _, _, px in run]))
                for (k, i, _), moments in zip(run, reduced.moments, strict=True):
                    record = outcomes[k][i]
                    assert isinstance(record, ImageRecord)
                    outcomes[k][i] = replace(record, moments=moments)
                hist = self._add_hist(hist, reduced.hist)
                start = end
        for k, (chunk, decoded) in enumerate(pending):  # the histogram rides on the first chunk
            yield chunk, ChunkResult(outcomes[k], decoded.canonical, hist if k == 0 else None)

    def arrays(
        self, results: Iterable[tuple[list[tuple[Any, ArrayTask]], ChunkResult]]
    ) -> Iterator[tuple[list[tuple[Any, ArrayTask]], ChunkResult]]:
        """Worker-fingerprinted array batches (chunks of one ``(file, task)``) → with moments
        reduced on the device; the batch is read again here from the memory map."""
        for chunk, result in results:
            task = chunk[0][1]
            keep = [i for i, o in enumerate(result.outcomes) if isinstance(o, ImageRecord)]
            if not keep:
                yield chunk, result
                continue
            pixels, _ = _converted(task, self.mode)
            assert pixels is not None
            valid = pixels if len(keep) == len(pixels) else pixels[keep]
            reduced = self._reduce(valid)
            outcomes = list(result.outcomes)
            for i, moments in zip(keep, reduced.moments, strict=True):
                record = outcomes[i]
                assert isinstance(record, ImageRecord)
                outcomes[i] = replace(record, moments=moments)
            yield chunk, ChunkResult(outcomes, result.canonical, reduced.hist)
