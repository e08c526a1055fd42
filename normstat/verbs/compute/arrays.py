"""compute's batch route: the images of stacks (``.npy`` files) in batches of about 16 MB,
fingerprinted (and on the CPU reduced) in the engine's workers, after the per-file route, in
item order. Per-image records come back in order, so the manifest does not depend on the device
or on ``--workers``."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from normstat.modes import Mode, get_mode
from normstat.options import MaskOptions, ReadOptions
from normstat.readers import BatchReader, Decoded, Probe, Skipped, unreadable
from normstat.reduce import FloatMoments, IntMoments, histograms, int_partial
from normstat.reduce.batch import MAX_EXACT_PIXELS, BatchMoments, reduce_batch
from normstat.reduce.color import lab_mode, rgb_to_lab
from normstat.reduce.covariance import cross_products
from normstat.reduce.masks import NAN_LEFT, masked_batch, read_mode
from normstat.reduce.ranges import FloatRange, range_histograms
from normstat.sources import Item, Source
from normstat.verbs.common import ImageRef, open_item, probe_item

from .records import ChunkResult, ImageRecord, Prints, refuse_masked

__all__ = [
    "CPU_BATCH_BYTES",
    "DEVICE_BATCH_BYTES",
    "ArrayTask",
    "array_chunk",
    "array_tasks",
    "lab_batch",
    "probe_arrays",
    "read_task",
    "reduce_on_cpu",
]

CPU_BATCH_BYTES = 16 << 20  # per worker task: bounded memory, fine-grained progress
DEVICE_BATCH_BYTES = 128 << 20  # per transfer: launches and latency amortized over ~10 ms


@dataclass(frozen=True)
class ArrayTask:
    """Images ``start:stop`` of one stack; ``reduce`` False leaves moments to the device."""

    source: Source
    item: Item
    probe: Probe
    start: int
    stop: int
    mode_name: str
    reduce: bool
    mask: MaskOptions | None = None  # masks are reduced here, on the CPU (reduce is True)
    covariance: bool = False
    value_range: FloatRange | None = None  # float data histogrammed over it, on the CPU too
    color: str | None = None  # "lab": reduced as CIELAB (on the CPU), fingerprinted as RGB

    def ref(self, index: int) -> ImageRef:
        return ImageRef(self.item, index, self.probe.stacked)

    def __len__(self) -> int:
        return self.stop - self.start


def probe_arrays(
    source: Source, items: list[Item], opts: ReadOptions
) -> tuple[list[tuple[Item, Probe]], list[Skipped]]:
    """The deferred items' headers, probed in this process; images too large to sum exactly in
    int64 are skipped."""
    arrays: list[tuple[Item, Probe]] = []
    bad: list[Skipped] = []
    for item in items:
        p = probe_item(source, item, opts)
        if isinstance(p, Skipped):
            bad.append(p)
        elif p is not None:
            pixels = p.height * p.width  # type: ignore[attr-defined]
            if pixels > MAX_EXACT_PIXELS:
                bad.append(
                    Skipped(item.path, f"image of {pixels} pixels over the exact-sum limit 2^31")
                )
            else:
                arrays.append((item, p))
    return arrays, bad


def array_tasks(
    source: Source,
    item: Item,
    probe: Probe,
    mode_name: str,
    reduce: bool,
    mask: MaskOptions | None = None,
    covariance: bool = False,
    spec: FloatRange | None = None,
    color: str | None = None,
) -> list[ArrayTask]:
    """The stack cut into batches of about CPU_BATCH_BYTES (DEVICE_BATCH_BYTES for the device)."""
    image_bytes = max(1, probe.nbytes // probe.count)  # type: ignore[attr-defined]
    budget = CPU_BATCH_BYTES if reduce else DEVICE_BATCH_BYTES
    step = max(1, budget // image_bytes)
    return [
        ArrayTask(
            source,
            item,
            probe,
            i,
            min(i + step, probe.count),
            mode_name,
            reduce,
            mask,
            covariance,
            spec,
            color,
        )
        for i in range(0, probe.count, step)
    ]


def read_task(task: ArrayTask, mode: Mode) -> tuple[np.ndarray | None, list[str | None]]:
    """The task's images in ``mode`` and, per image, why it cannot contribute (None: it can)."""
    try:
        f, reader = open_item(task.source, task.item)
    except OSError as exc:
        return None, [unreadable(exc)] * (task.stop - task.start)
    with f:
        batch_reader: BatchReader = reader  # type: ignore[assignment]
        return batch_reader.batch(f, task.probe, task.start, task.stop, mode)


def array_chunk(task: ArrayTask) -> ChunkResult:
    """Fingerprints (and, when ``task.reduce``, partials) of one batch of a stack."""
    mode = get_mode(task.mode_name)
    tag = getattr(task.probe, "nodata", None)  # the file's own nodata (a TIFF's GDAL_NODATA)
    if task.mask is not None or tag is not None:
        refuse_masked(task.item.path, task.covariance, task.color)
        return _masked_chunk(task, mode, task.mask or MaskOptions(), tag)
    pixels, reasons = read_task(task, mode)
    outcomes: list[ImageRecord | Skipped | None] = []
    prints = Prints(mode)
    for offset, reason in enumerate(reasons):
        if reason is not None or pixels is None:
            outcomes.append(Skipped(task.ref(task.start + offset).name, reason or "unreadable"))
        else:
            outcomes.append(prints.record(Decoded(pixels[offset], task.probe.native)))
    prints.finish(outcomes)
    hist = None
    if task.reduce and pixels is not None:
        keep = [i for i, r in enumerate(reasons) if r is None]
        if keep:
            valid = pixels if len(keep) == len(pixels) else pixels[keep]
            if task.color:  # each part converted once, for everything asked
                reduced, products = lab_batch(valid, task.value_range, task.covariance)
                hist = reduced.hist
            else:
                reduced = reduce_on_cpu(valid, mode)
                hist = reduced.hist
                if task.value_range is not None and not mode.integer:
                    hist = range_histograms(valid, task.value_range)
                products = None
                if task.covariance:
                    products = [cross_products(px, mode.integer) for px in valid]
            attach(outcomes, keep, reduced, products)
    return ChunkResult(outcomes, [None] * len(outcomes), hist)


def _masked_chunk(
    task: ArrayTask, mode: Mode, mask: MaskOptions, tag: float | None = None
) -> ChunkResult:
    """``array_chunk`` over valid pixels: read with alpha for an alpha mask, NaN kept for a NaN
    nodata (the reader flags it; infinity is still a skip), each image reduced alone."""
    pixels, reasons = read_task(task, read_mode(mode, mask))
    nodata = mask.for_channels(len(mode.channels), tag)
    nan_ok = nodata is not None and any(v != v for v in nodata)
    if pixels is not None and nan_ok:
        reasons = [
            None if why == NAN_LEFT and not np.isinf(pixels[i]).any() else why
            for i, why in enumerate(reasons)
        ]
    keep = [i for i, r in enumerate(reasons) if r is None]
    hist = None
    colours: dict[int, np.ndarray] = {}  # the contributing images' colour pixels
    if pixels is not None and keep:
        spec = None if mode.integer else task.value_range
        reduced, got = masked_batch([pixels[i] for i in keep], mode, mask, tag, spec)
        for i, colour_or_why in zip(keep, got, strict=True):
            if isinstance(colour_or_why, str):
                reasons[i] = colour_or_why
            else:
                colours[i] = colour_or_why
        hist = reduced.hist
        moments = iter(reduced.moments)
    outcomes: list[ImageRecord | Skipped | None] = []
    prints = Prints(mode)
    for offset, reason in enumerate(reasons):
        if reason is not None or pixels is None:
            outcomes.append(Skipped(task.ref(task.start + offset).name, reason or "unreadable"))
            continue
        outcomes.append(prints.record(Decoded(colours[offset], task.probe.native), next(moments)))
    prints.finish(outcomes)
    return ChunkResult(outcomes, [None] * len(outcomes), hist)


Products = tuple[int | float, ...]


def attach(
    outcomes: list[ImageRecord | Skipped | None],
    keep: list[int],
    reduced: BatchMoments,
    products: list[Products] | None = None,
) -> None:
    """Each kept image's record gets its moments from the batch reduction, and its cross
    products when the covariance is asked for."""
    for k, (i, moments) in enumerate(zip(keep, reduced.moments, strict=True)):
        record = outcomes[i]
        assert isinstance(record, ImageRecord)
        if products is None:
            outcomes[i] = replace(record, moments=moments)
        else:
            outcomes[i] = replace(record, moments=moments, products=products[k])


LAB_BATCH_PIXELS = 1 << 20  # converted at a time: 24 MB of float64 CIELAB, and as much again


def lab_batch(
    pixels: np.ndarray, spec: FloatRange | None = None, covariance: bool = False
) -> tuple[BatchMoments, list[Products] | None]:
    """A B×H×W×3 RGB batch's CIELAB partials, converted a part at a time (float64 is 8× the
    bytes of 8-bit pixels) and reduced by the generic batch, as float data are. Each part is
    converted once and feeds everything asked of it: the moments, the histograms over
    ``spec``'s range (the batch's, summed) and, with ``covariance``, each image's cross
    products (None without)."""
    step = max(1, LAB_BATCH_PIXELS // max(1, pixels.shape[1] * pixels.shape[2]))
    moments: list[tuple[IntMoments | FloatMoments, ...]] = []
    hist: np.ndarray | None = None
    products: list[Products] | None = [] if covariance else None
    for start in range(0, len(pixels), step):
        lab = rgb_to_lab(pixels[start : start + step])
        moments += reduce_batch(lab, lab_mode()).moments
        if spec is not None:
            part = range_histograms(lab, spec)
            hist = part if hist is None else hist + part
        if products is not None:
            products += [cross_products(px, False) for px in lab]
    return BatchMoments(moments, hist), products


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
