"""The TIFF reader (extra ``formats``: tifffile + imagecodecs): any number of bands, 8-64-bit
integer and float samples, planar or contiguous, striped or tiled, every compression and
predictor tifffile decodes, BigTIFF; a file holds one image or a stack (``file.tif[i]``), by
the page rules of ``tifflayout.py``.

Values are exact: 8- and 16-bit unsigned samples stay integers, every other type becomes the
float that holds it exactly (32-bit integers and float64 in float64, as float64 arrays do).
Pages of kinds whose samples are not values (palette, CMYK, YCbCr, Lab, 1-bit) are Pillow's,
as before, when the file has a single page. Everything is checked from the tags before pixel
data are read: the bomb limit (pixels, and samples for many bands), the file's size against
its pixels, and every strip or tile inside the file (tifffile would fill a missing one with
zeros). tifffile's log messages are silenced: an outcome is a value, never printed.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import imagecodecs  # noqa: F401  # tifffile's decoders: without them the extra is missing
import numpy as np
import tifffile
from PIL import Image

from normstat.errors import describe
from normstat.modes import Mode
from normstat.options import ReadOptions

from .base import Decoded, Probe, Skipped, batch_outcomes
from .convert import convert, orient
from .limits import file_size, oversized
from .pillow import READER as PILLOW
from .tifflayout import (
    Layout,
    band_names,
    layout_of,
    main_pages,
    modes,
    nodata_of,
    page_kind,
    segments_problem,
    work_dtype,
)

__all__ = ["MAGICS", "READER", "TiffProbe", "TiffReader"]

MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF, both orders
MAX_PAGES = 100_000
NON_FINITE = "non-finite pixel values (NaN or infinity)"


@dataclass(frozen=True)
class TiffProbe(Probe):
    """A TIFF's images: ``count`` of H×W×C ``dtype`` values; ``layout`` None: Pillow reads the
    one image. ``nodata`` is the file's GDAL_NODATA value."""

    count: int = field()  # field(): no default, although Probe has a class attribute of the name
    height: int = field()
    width: int = field()
    channels: int = field()
    dtype: str = field()
    stacked: bool = field()
    layout: Layout | None = field()
    nodata: float | None = field()
    max_pixels: int | None = field()
    keep_alpha: bool = field()

    @property
    def nbytes(self) -> int:
        return self.count * self.height * self.width * self.channels * np.dtype(self.dtype).itemsize


@contextmanager
def _quiet() -> Iterator[None]:
    """tifffile logs every odd tag; the reasons here are the outcome, so it says nothing."""
    logger = logging.getLogger("tifffile")
    before, logger.disabled = logger.disabled, True
    try:
        yield
    finally:
        logger.disabled = before


def _opened(f: BinaryIO) -> tifffile.TiffFile:
    f.seek(0)
    return tifffile.TiffFile(f, name="image.tif")  # sources may open files by descriptor


def _pillow_probe(f: BinaryIO, name: str, opts: ReadOptions, why: str) -> TiffProbe | Skipped:
    """The probe of a single-image TIFF that Pillow reads (as before this reader existed)."""
    f.seek(0)
    head = PILLOW.probe(f, name, opts)
    if head is None:
        return Skipped(name, f"unreadable TIFF: {why}")
    if isinstance(head, Skipped):
        return head
    try:
        f.seek(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's probe has judged the file already
            with Image.open(f) as im:
                width, height = im.size
    except Exception as exc:  # Pillow's probe opened it: this does not happen in practice
        return Skipped(name, f"unreadable TIFF: {describe(exc)}")
    channels = 3 if head.canonical.startswith("RGB") else 1
    channels += head.canonical in ("LA", "RGBA")
    dtype = "uint8" if head.canonical in ("L", "LA", "RGB", "RGBA") else "uint16"
    dtype = "float32" if head.canonical.endswith("F") else dtype
    return TiffProbe(
        head.native, head.canonical, 1, height, width, channels, dtype, False, None, None,
        opts.max_pixels, opts.keep_alpha,
    )  # fmt: skip


def _probe(f: BinaryIO, name: str, opts: ReadOptions) -> TiffProbe | Skipped:
    size = file_size(f)
    try:
        with _quiet(), _opened(f) as tif:
            if len(tif.pages) > MAX_PAGES:
                return Skipped(name, f"TIFF of {len(tif.pages)} pages (at most {MAX_PAGES})")
            pages = main_pages(tif)
            if not pages:
                return Skipped(name, "TIFF holds no full-resolution page")
            other = next((k for k in map(page_kind, pages) if k is not None), None)
            if other is not None:
                if len(pages) == 1:
                    return _pillow_probe(f, name, opts, other)
                return Skipped(
                    name, f"TIFF of {len(pages)} pages of {other}: only single pages of this kind"
                )
            layout = layout_of(tif, pages)
            if isinstance(layout, str):
                return Skipped(name, layout)
            names = band_names(pages[0], layout.channels)
            nodata = nodata_of(pages[0])
    except Exception as exc:  # not a TIFF tifffile can parse: Pillow may, or says why not
        return _pillow_probe(f, name, opts, describe(exc))
    height, width = layout.height, layout.width
    if layout.orientation in (5, 6, 7, 8):
        height, width = width, height
    pixels, c = height * width, layout.channels
    if pixels * c == 0:
        return Skipped(name, f"TIFF image of {layout.height}×{layout.width}×{c} holds no pixels")
    limit = opts.max_pixels
    if limit is not None and pixels > limit:
        return Skipped(
            name, f"decompression bomb: {pixels} pixels over the limit of {limit} pixels"
        )
    if limit is not None and pixels * c > 4 * limit:
        return Skipped(
            name, f"decompression bomb: {pixels}×{c} samples over the limit of 4×{limit}"
        )
    raw = layout.count * pixels * c * np.dtype(layout.stored).itemsize
    too_big = oversized(size, raw, f"{layout.count} image(s) of {height}×{width}×{c}")
    if too_big:
        return Skipped(name, too_big)
    native, canonical = modes(layout, names, opts.keep_alpha)
    dtype = work_dtype(layout.stored)
    stacked = layout.count > 1
    return TiffProbe(
        native, canonical, layout.count, height, width, c, dtype, stacked, layout, nodata,
        opts.max_pixels, opts.keep_alpha,
    )  # fmt: skip


def _page_pixels(page: Any) -> np.ndarray:
    """One page as H×W×S in native byte order."""
    arr = page.asarray(squeeze=False, maxworkers=1)
    separate, _, height, width, contig = (int(n) for n in page.shaped)
    arr = arr.reshape(separate, height, width, contig)
    arr = arr.transpose(1, 2, 0, 3).reshape(height, width, separate * contig)
    return arr.astype(arr.dtype.newbyteorder("="), copy=False)


def _image(group: list[Any], layout: Layout, size: int) -> np.ndarray | str:
    """One image (its run of pages) as H×W×C in the work dtype, or why it cannot be read."""
    for page in group:
        problem = segments_problem(page, size)
        if problem:
            return f"damaged TIFF: {problem}"
    try:
        parts = [_page_pixels(p) for p in group]
    except Exception as exc:
        return f"damaged TIFF: {describe(exc)}"
    if layout.join == "rows":
        arr = np.stack([p[:, :, 0] for p in parts])
    elif layout.join == "bands":
        arr = np.concatenate(parts, axis=2)
    else:
        arr = parts[0]
    return orient(arr.astype(work_dtype(layout.stored), copy=False), layout.orientation)


def _compatible(probe: TiffProbe, target: Mode) -> str | None:
    """Why the probe's images have no conversion to ``target``: band modes convert only to band
    modes of as many bands (the bands have no colour meaning)."""
    banded = probe.canonical.startswith("B")
    if banded != target.bands or (banded and probe.channels != len(target.channels)):
        return f"{probe.channels}-band {probe.canonical} image has no conversion to {target.name}"
    return None


def _batch(
    f: BinaryIO, probe: TiffProbe, start: int, stop: int, target: Mode
) -> tuple[np.ndarray | None, list[str | None]]:
    n = stop - start
    if probe.layout is None:  # Pillow's one image
        f.seek(0)
        opts = ReadOptions(probe.max_pixels, probe.keep_alpha, allow_nan=True)  # judged below
        dec = PILLOW.load(f, "", target, opts)[1]
        if isinstance(dec, Decoded):
            return _finite(dec.pixels[None], [None])
        return None, [dec.reason if dec is not None else "unreadable"]
    why = _compatible(probe, target)
    if why:
        return None, [why] * n
    layout = probe.layout
    try:
        size = file_size(f)
        with _quiet(), _opened(f) as tif:
            pages = main_pages(tif)
            if layout_of(tif, pages) != layout:
                return None, ["the file changed since it was probed"] * n
            k = layout.per_image
            images = [_image(pages[i * k : (i + 1) * k], layout, size) for i in range(start, stop)]
    except Exception as exc:  # the file changed or is damaged past its header
        return None, [f"unreadable TIFF: {describe(exc)}"] * n
    reasons: list[str | None] = [im if isinstance(im, str) else None for im in images]
    if all(reasons):
        return None, reasons
    batch = np.zeros((n, probe.height, probe.width, probe.channels), dtype=probe.dtype)
    for i, im in enumerate(images):
        if not isinstance(im, str):
            batch[i] = im
    converted = convert(batch, target)
    if isinstance(converted, str):
        return None, [converted] * n
    return _finite(converted, reasons)


def _finite(pixels: np.ndarray, reasons: list[str | None]) -> tuple[np.ndarray, list[str | None]]:
    """Float images with a NaN or infinity do not contribute (as .npy stacks): said per image,
    with its pixels kept, so that a NaN nodata mask can still take them (reduce.masks)."""
    if pixels.dtype.kind != "f":
        return pixels, reasons
    finite = np.isfinite(pixels).all(axis=(1, 2, 3))
    return pixels, [
        why or (None if ok else NON_FINITE) for why, ok in zip(reasons, finite, strict=True)
    ]


class TiffReader:
    """TIFF files: single images and stacks of any number of bands, read a batch at a time."""

    name = "tiff"
    batched = True

    def probe(self, f: BinaryIO, name: str, opts: ReadOptions) -> TiffProbe | Skipped:
        """The tags only: the images the file holds, or why none."""
        return _probe(f, name, opts)

    def batch(
        self, f: BinaryIO, probe: TiffProbe, start: int, stop: int, target: Mode
    ) -> tuple[np.ndarray | None, list[str | None]]:
        """Images ``start:stop`` in ``target`` (B×H×W×C) and, per image, why it cannot
        contribute (None: it can); no pixels when none can."""
        return _batch(f, probe, start, stop, target)

    def read(
        self,
        f: BinaryIO,
        name: str,
        target: Mode,
        opts: ReadOptions,
        start: int = 0,
        stop: int | None = None,
    ) -> Iterator[Decoded | Skipped]:
        probe = _probe(f, name, opts)
        if isinstance(probe, Skipped):
            yield probe
            return
        stop = probe.count if stop is None else min(stop, probe.count)
        if start >= stop:
            return
        pixels, reasons = _batch(f, probe, start, stop, target)
        if opts.allow_nan and pixels is not None:  # NaN is nodata: only infinity is a skip
            reasons = [
                None if why == NON_FINITE and not np.isinf(pixels[i]).any() else why
                for i, why in enumerate(reasons)
            ]
        yield from batch_outcomes(name, probe, start, pixels, reasons, probe.nodata)

    def load(
        self, f: BinaryIO, name: str, target: Mode | None, opts: ReadOptions
    ) -> tuple[Probe | Skipped | None, Decoded | Skipped | None]:
        """The probe and (when ``target`` is given) the first image: for one-image callers."""
        probe = _probe(f, name, opts)
        if target is None:
            return probe, None
        if isinstance(probe, Skipped):
            return probe, probe
        return probe, next(self.read(f, name, target, opts, 0, 1))


READER = TiffReader()
