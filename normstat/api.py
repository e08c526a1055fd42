"""The Python API: the verbs' public signatures and their option checks. Each call makes its
options into a frozen value and hands it, with the resolved source, to ``verbs``; nothing here
reads, reduces or prints. Progress is reported through ``progress(phase, done, total)``."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from .manifest import Stats
from .options import (
    DEFAULT_LOOK_ALIKE,
    DEFAULT_MARGIN,
    DEFAULT_MAX_PIXELS,
    DEFAULT_THRESHOLD,
    ApplyOptions,
    CheckOptions,
    ComputeOptions,
    float_list,
    percentile_list,
    range_pair,
)
from .sources import Source, resolve
from .verbs import apply as apply_verb
from .verbs import check as check_verb
from .verbs import compute as compute_verb
from .verbs import merge as merge_verb
from .verbs.apply import IMAGENET, ApplyResult
from .verbs.check import LeakReport
from .verbs.common import Progress
from .verbs.compute.partials import Partials

__all__ = [
    "DEFAULT_LOOK_ALIKE",
    "DEFAULT_MARGIN",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_THRESHOLD",
    "IMAGENET",
    "ApplyResult",
    "Partials",
    "Progress",
    "apply",
    "check",
    "compute",
    "is_leak_page",
    "merge",
    "write_leak_page",
]

Sources = str | os.PathLike[str] | Source | Sequence[str | os.PathLike[str] | Source]


def compute(
    srcs: Sources,
    *,
    workers: int | None = None,
    mode: str | None = None,
    alpha: str = "drop",
    strict: bool = False,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    device: str = "auto",
    npy_layout: str = "auto",
    storage_options: Mapping[str, Any] | None = None,
    column: str | None = None,
    scheduler: str | None = None,
    retries: int = 0,
    partials_dir: str | os.PathLike[str] | Partials | None = None,
    progress: Progress | None = None,
    nodata: float | str | Sequence[float] | None = None,
    percentiles: str | Sequence[float] | None = None,
    covariance: bool = False,
    value_range: str | Sequence[float] | None = None,
    color: str | None = None,
) -> Stats:
    """Statistics of every image under ``srcs`` (paths, or a ``Source``), in one streaming pass:
    each file is opened once, probed and reduced in the mode a header sample predicts; should
    the whole dataset's majority mode differ from the prediction, the pass is repeated.

    ``mode`` forces the dataset mode (default: the most common); ``alpha="keep"`` keeps alpha
    channels; ``strict`` raises InputError on the first image that cannot contribute.
    ``device`` is ``auto``, ``cpu`` or ``gpu`` (DeviceError if none is usable); ``npy_layout``
    reads 3-D .npy arrays as one H×W×C image (``hwc``) or an N×H×W stack (``nhw``).

    ``srcs`` may be fsspec URLs (``s3://bucket/prefix``; ``storage_options`` go to the file
    system, never into the manifest), WebDataset ``.tar`` shards (brace patterns expand) and
    parquet shards (``column``: the image column, found automatically by default).
    ``scheduler``: the address of a Dask cluster to run on (``tcp://host:8786``), each shard
    retried up to ``retries`` times. ``partials_dir`` (a folder, a URL, or a ``Partials``
    whose counts say what was kept) keeps each finished shard, so a rerun reduces only what
    is missing. The result is byte-identical whatever ran it.

    Masks: ``nodata`` (one value, or one per channel; ``"nan"`` for float data) and
    ``alpha="mask"`` (alpha 0 is invalid; the alpha channel is then not a statistic) leave
    invalid pixels out of every statistic, channel by channel. ``percentiles`` chooses the
    reported percentiles of integer data (default 0.5, 1, 5, 50, 95, 99, 99.5).
    ``covariance`` adds the exact channel covariance, correlation and PCA (on the CPU; with
    ``device="gpu"`` a DeviceError). ``color="lab"``: the statistics of the images' CIELAB
    values (L*, a*, b*; D65, 2° observer, as scikit-image's ``rgb2lab``) instead of their RGB
    values, for RGB datasets (8- or 16-bit); fingerprints stay those of the RGB pixels.

    ``value_range`` (``(lo, hi)`` or ``"lo,hi"``; the CLI's ``--range``) histograms float data
    into 65536 equal bins over [lo, hi], values outside counted as below and above: their
    percentiles are then reported as bin lower edges, exact to one bin width. Integer data have
    exact histograms: a range for them is an InputError.
    """
    opts = ComputeOptions(
        mode=mode,
        alpha=alpha,
        strict=strict,
        max_pixels=max_pixels,
        device=device,
        npy_layout=npy_layout,
        column=column,
        nodata=None if nodata is None else float_list("nodata", nodata),
        percentiles=None if percentiles is None else percentile_list(percentiles),
        covariance=covariance,
        value_range=None if value_range is None else range_pair(value_range),
        color=color,
    )
    if retries < 0:
        raise ValueError("retries must be 0 or more")
    source = resolve(srcs, storage_options, column)
    partials: Partials | None = None
    if isinstance(partials_dir, Partials):
        partials = partials_dir
    elif partials_dir is not None:
        partials = Partials(os.fspath(partials_dir), dict(storage_options or {}))
    return compute_verb.compute(
        source,
        opts,
        workers,
        progress,
        scheduler=scheduler,
        retries=retries,
        partials=partials,
    )


def apply(
    srcs: Sources,
    stats: Stats | str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    workers: int | None = None,
    scale: str = "standard",
    std: str = "pooled",
    dtype: str = "float32",
    layout: str = "chw",
    overwrite: bool = False,
    strict: bool = False,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    storage_options: Mapping[str, Any] | None = None,
    column: str | None = None,
    progress: Progress | None = None,
    invalid: str = "zero",
    stack: bool = False,
    color: str | None = None,
) -> ApplyResult:
    """Write every image of ``srcs`` as a normalized array ``OUT_DIR/<rel path>.npy`` (images
    of a stack: ``OUT_DIR/stack.npy[i].npy``).

    ``stats`` is a manifest path, a loaded ``Stats`` or ``"imagenet"``. Existing outputs are kept
    (resume) unless ``overwrite``; output is refused inside a source folder, and over output
    made from other statistics or options. Statistics computed with masks mask the same way
    (their nodata and alpha rule; else a file's own nodata tag): invalid pixels are written
    as 0 after normalisation, or NaN with ``invalid="nan"``.

    ``stack``: instead, one ``OUT_DIR/stack.npy`` (N×C×H×W, or N×H×W×C for ``layout="hwc"``)
    and ``OUT_DIR/stack.txt`` naming each row's image; every image must have one size
    (InputError naming the first that differs, before anything is written).

    CIELAB statistics (computed with ``color="lab"``) convert each image to CIELAB before
    normalizing it; ``color="lab"`` here only insists on such a manifest (ManifestError else).
    """
    opts = ApplyOptions(
        scale=scale,
        std=std,
        dtype=dtype,
        layout=layout,
        overwrite=overwrite,
        strict=strict,
        max_pixels=max_pixels,
        invalid=invalid,
        stack=stack,
        color=color,
    )
    given = stats if isinstance(stats, Stats) else os.fspath(stats)
    source = resolve(srcs, storage_options, column)
    return apply_verb.apply(source, given, os.fspath(out_dir), opts, workers, progress)


def check(
    test_srcs: Sources,
    stats: Stats | str | os.PathLike[str],
    *,
    workers: int | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    margin: float = DEFAULT_MARGIN,
    look_alike: float = DEFAULT_LOOK_ALIKE,
    fail_on: str = "leak",
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    storage_options: Mapping[str, Any] | None = None,
    column: str | None = None,
    progress: Progress | None = None,
) -> LeakReport:
    """Find test images that were among the statistics' contributors: exact copies (same decoded
    pixels) and near-duplicates, verified against what the manifest stores (no train file is
    read, unless the manifest predates 0.3).

    A near-duplicate must stand out from the test image's neighbourhood: be ``margin`` times
    closer to it than the nearest other contributor, and agree to ``threshold`` (the
    correlation of the blurred luma thumbnails). Matches that stand out by ``look_alike`` only
    are listed in ``LeakReport.look_alikes`` for review; ``fail_on="look-alike"`` makes them
    fail the gate too (``LeakReport.clean``)."""
    opts = CheckOptions(threshold, max_pixels, margin, look_alike, fail_on)
    source = resolve(test_srcs, storage_options, column)
    loaded = stats if isinstance(stats, Stats) else Stats.load(os.fspath(stats))
    return check_verb.check(source, loaded, opts, workers, progress, storage_options)


def write_leak_page(
    report: LeakReport,
    path: str | os.PathLike[str],
    test_srcs: Sources,
    stats: Stats | str | os.PathLike[str],
    *,
    storage_options: Mapping[str, Any] | None = None,
    column: str | None = None,
) -> None:
    """Write ``report`` as an HTML page (atomically): each reported pair side by side (the test
    image, and the contributor as the manifest stores it), its kind, score, distinctness and
    the transformation found."""
    source = resolve(test_srcs, storage_options, column)
    loaded = stats if isinstance(stats, Stats) else Stats.load(os.fspath(stats))
    check_verb.write_page(report, os.fspath(path), source, loaded)


def is_leak_page(head: bytes) -> bool:
    """Whether a file's first bytes are those of a page ``write_leak_page`` wrote."""
    return check_verb.is_page(head)


def merge(manifests: Sequence[Stats | str | os.PathLike[str]]) -> Stats:
    """The manifest (and sidecar) one pass over the union of disjoint parts gives: statistics,
    histograms and contributors combined exactly. InputError when two parts share an image or a
    container; ManifestError when they differ in schema, mode or options."""
    parts = [m if isinstance(m, Stats) else Stats.load(os.fspath(m)) for m in manifests]
    return merge_verb.merge(parts)
