"""compute on a GPU: batches reduced in this process on ``xp``'s device (CuPy), after the
workers read, decoded and fingerprinted them. Each batch is staged through pinned memory and
reduced in one pass; records come back in item order, as on the CPU."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace
from types import ModuleType
from typing import Any, TypeVar

import numpy as np

from normstat.modes import Mode
from normstat.reduce.batch import reduce_batch
from normstat.reduce.device import Stager
from normstat.reduce.kernels import fused_sum_sq

from .arrays import DEVICE_BATCH_BYTES, ArrayTask, attach, read_task
from .files import DecodedChunk
from .records import ChunkResult, ImageRecord

__all__ = ["DeviceReducer"]

C = TypeVar("C")


class DeviceReducer:
    """Reduces batches on ``xp``'s device in this process: stage, reduce, attach moments."""

    def __init__(self, mode: Mode, xp: ModuleType, per_chunk: bool = False) -> None:
        self.mode = mode
        self.per_chunk = per_chunk  # a batch per chunk: each chunk's result holds its histogram
        self.xp = xp
        self.stager = Stager(xp)
        self.fused = fused_sum_sq(xp)

    def _reduce(self, host: np.ndarray) -> Any:
        return reduce_batch(self.stager.put(host), self.mode, self.xp, self.fused)

    def files(self, results: Iterable[tuple[C, DecodedChunk]]) -> Iterator[tuple[C, ChunkResult]]:
        """Decoded chunks → ChunkResults, in order. Chunks are buffered up to
        DEVICE_BATCH_BYTES of pixels; consecutive images of one shape form one batch (a dataset
        of varied sizes gets smaller batches: the device helps little there)."""
        pending: list[tuple[C, DecodedChunk]] = []
        size = 0
        for chunk, decoded in results:
            pending.append((chunk, decoded))
            size += sum(px.nbytes for px in decoded.pixels if px is not None)
            if size >= DEVICE_BATCH_BYTES or self.per_chunk:
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
                if reduced.hist is not None:
                    hist = reduced.hist if hist is None else hist + reduced.hist
                start = end
        for k, (chunk, decoded) in enumerate(pending):  # the histogram rides on the first chunk
            yield (
                chunk,
                ChunkResult(
                    outcomes[k],
                    decoded.canonical,
                    hist if k == 0 else None,
                    decoded.deferred,
                    decoded.items,
                ),
            )

    def arrays(
        self, results: Iterable[tuple[ArrayTask, ChunkResult]]
    ) -> Iterator[tuple[ArrayTask, ChunkResult]]:
        """Worker-fingerprinted stack batches → with moments reduced on the device; the batch
        is read again here."""
        for task, result in results:
            keep = [i for i, o in enumerate(result.outcomes) if isinstance(o, ImageRecord)]
            if not keep:
                yield task, result
                continue
            pixels, _ = read_task(task, self.mode)
            assert pixels is not None
            valid = pixels if len(keep) == len(pixels) else pixels[keep]
            reduced = self._reduce(valid)
            outcomes = list(result.outcomes)
            attach(outcomes, keep, reduced)
            yield task, ChunkResult(outcomes, result.canonical, reduced.hist)
