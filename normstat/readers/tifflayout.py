"""What a TIFF's pages mean: which pages are images (and how many pages make one), their bands,
and the mode they map to without loss. Only tags are read here, never pixel data.

The rules (README "Formats"): reduced-resolution pages (pyramid levels, thumbnails) and mask
pages never contribute. The remaining pages must share shape and type; then, when tifffile
reports one multi-dimensional series (tifffile-, ImageJ- or OME-written):

- pages of one row each (an H×W×C array written by tifffile as H pages of W×C: the last axis
  is shorter than each of the two before it) are rows of ONE image;
- a channel axis just before Y and X (ImageJ/OME ``...CYX``) makes each run of C pages the
  bands of one image;

otherwise each page is one image (a stack when there are several, ``file.tif[i]``).
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from normstat.modes import MAX_BANDS, band_mode

from .convert import fixed_modes

__all__ = [
    "Layout",
    "band_names",
    "layout_of",
    "main_pages",
    "modes",
    "nodata_of",
    "page_fits",
    "page_kind",
    "segments_problem",
    "work_dtype",
]

NATIVE_PHOTOMETRIC = (1, 2)  # MinIsBlack, RGB: samples are values (others go to Pillow)
_NOT_IMAGES = 1 | 4  # NewSubfileType bits: reduced resolution, transparency mask
_ALPHA = (1, 2)  # ExtraSamples: associated, unassociated alpha
GDAL_METADATA, GDAL_NODATA, ORIENTATION = 42112, 42113, 274


@dataclass(frozen=True)
class Layout:
    """``count`` images of H×W×C; each is ``per_image`` consecutive main pages (the file's
    pages ``pages``) joined as ``join``: "page" (one page), "bands" (one band per page) or
    "rows" (one row per page)."""

    count: int
    height: int
    width: int
    channels: int
    join: str
    per_image: int
    stored: str  # the stored dtype, native byte order ("uint16", "int32", "float64"...)
    photometric: int
    alpha: bool  # the last sample is alpha (ExtraSamples)
    orientation: int
    pages: Sequence[int]  # the main pages' indices in the file: a batch reads only its own
    page_shape: tuple[int, int, int]  # (height, width, samples) of every page


def _is_main(page: Any) -> bool:
    return not (int(getattr(page, "subfiletype", 0) or 0) & _NOT_IMAGES)


def main_pages(tif: Any) -> list[Any]:
    """The pages that may be images: not reduced-resolution, not masks."""
    return [p for p in tif.pages if _is_main(p)]


def _indices(pages: list[Any]) -> Sequence[int]:
    """The pages' indices in the file; a range when evenly spaced (every page, or every other
    one beside masks), so that a stack's probe stays small however many pages it has."""
    found = [int(p.index) for p in pages]
    step = found[1] - found[0] if len(found) > 1 else 1
    even = range(found[0], found[-1] + 1, step) if step > 0 else None
    return even if even is not None and list(even) == found else tuple(found)


def page_kind(page: Any) -> str | None:
    """Why the page is not one this reader decodes itself (Pillow may: palette, CMYK, YCbCr,
    1-bit...); None when it is: MinIsBlack or RGB samples of 8-64 bits, not subsampled."""
    photometric = int(page.photometric)
    if photometric not in NATIVE_PHOTOMETRIC:
        return f"photometric {page.photometric.name.lower()}"
    if page.dtype is None or page.bitspersample not in (8, 16, 32, 64):
        return f"{page.bitspersample}-bit samples"
    if page.dtype.kind not in "uif" or (page.dtype.kind in "ui" and page.dtype.itemsize == 8):
        return f"sample type {page.dtype}"
    if page.is_subsampled or page.shaped[1] != 1:
        return "subsampled or volumetric data"
    return None


def _page_shape(page: Any) -> tuple[int, int, int]:
    """(height, width, samples) of one page."""
    separate, _, height, width, contig = page.shaped
    return int(height), int(width), int(separate) * int(contig)


def _series(tif: Any, pages: list[Any]) -> tuple[tuple[int, ...], str, str] | None:
    """(shape, axes, kind) of the one multi-dimensional series covering every main page."""
    if not (tif.is_shaped or tif.is_imagej or tif.is_ome):
        return None
    series = [s for s in tif.series if s.kind in ("shaped", "imagej", "ome")]
    if len(series) != 1 or len(series[0].pages) != len(pages):
        return None
    s = series[0]
    return tuple(int(n) for n in s.shape), str(s.axes), str(s.kind)


def _orientation(page: Any) -> int:
    return int(page.tags.valueof(ORIENTATION, 1) or 1)


def layout_of(tif: Any, pages: list[Any]) -> Layout | str:
    """The images of ``pages`` (all of one kind this reader decodes), or why they are none."""
    first = pages[0]
    page_shape = height, width, samples = _page_shape(first)
    orientation = _orientation(first)
    for p in pages[1:]:
        if _page_shape(p) != page_shape or p.dtype != first.dtype:
            return (
                f"pages of different shapes or types ({height}×{width}×{samples} {first.dtype},"
                f" {'×'.join(map(str, _page_shape(p)))} {p.dtype}): neither one image nor a stack"
            )
        if _orientation(p) != orientation:
            return "pages of different orientations: neither one image nor a stack"
    n = len(pages)
    join, per_image, channels = "page", 1, samples
    series = _series(tif, pages)
    if series is not None and samples == 1:
        shape, axes, kind = series
        if (
            kind == "shaped"
            and len(shape) >= 3
            and axes.endswith("YX")
            and shape[-1] < shape[-2]
            and shape[-1] < shape[-3]
            and shape[-2:] == (height, width)
        ):  # H pages of W×C: rows of one H×W×C image
            join, per_image, channels = "rows", shape[-3], width
            height, width = shape[-3], shape[-2]
        elif len(shape) >= 3 and axes.endswith("CYX") and shape[-3] > 1:
            join, per_image, channels = "bands", shape[-3], shape[-3]
    if n % per_image:
        return f"{n} pages do not make whole images of {per_image} pages"
    if channels > MAX_BANDS:
        return f"{channels} bands (at most {MAX_BANDS})"
    extras = tuple(getattr(first, "extrasamples", ()) or ())
    alpha = join == "page" and bool(extras) and extras[-1] in _ALPHA
    return Layout(
        n // per_image,
        height,
        width,
        channels,
        join,
        per_image,
        first.dtype.newbyteorder("=").name,
        int(first.photometric),
        alpha,
        orientation,
        _indices(pages),
        page_shape,
    )


def page_fits(page: Any, layout: Layout) -> bool:
    """Whether ``page`` is still one of ``layout``'s pages, by the tests its probe made (a main
    page of a kind this reader decodes, of the layout's shape, type and orientation): a page
    changed since the probe is refused, not misread."""
    return (
        _is_main(page)
        and page_kind(page) is None
        and int(page.photometric) == layout.photometric
        and _page_shape(page) == layout.page_shape
        and page.dtype.newbyteorder("=").name == layout.stored
        and _orientation(page) == layout.orientation
    )


def work_dtype(stored: str) -> str:
    """The dtype pixels are kept in: integers of 8/16 bits as they are, every other value type
    as the float that holds it exactly (float64 for 32-bit integers, as for float64 data)."""
    if stored in ("uint8", "uint16", "float32", "float64"):
        return stored
    return "float64" if stored in ("int32", "uint32") else "float32"


def modes(layout: Layout, names: tuple[str, ...] | None, keep_alpha: bool) -> tuple[str, str]:
    """(native, canonical) mode names. One or three bands, and grey or RGB with an alpha
    sample, keep the fixed modes (alpha only for 8 bits, as for arrays); any other band count
    is a band mode, its bands named by the file when it names them all."""
    dtype = work_dtype(layout.stored)
    kind = "uint8" if dtype == "uint8" else "uint16" if dtype == "uint16" else "float32"
    c = layout.channels
    fixed = c in (1, 3) or (layout.alpha and c in (2, 4))
    if fixed:
        native, canonical = fixed_modes(kind, c, layout.alpha and keep_alpha)
    else:
        if names is None and layout.photometric == 2:
            names = ("R", "G", "B", *(f"B{i}" for i in range(4, c + 1)))
        native = canonical = band_mode(c, kind, names).name
    if layout.stored not in ("uint8", "uint16", "float32"):
        native = f"{native}({layout.stored})"  # converted exactly to float
    return native, canonical


_ITEM = re.compile(r"<Item\b([^>]*)>([^<]*)</Item>", re.IGNORECASE)
_ATTR = re.compile(r'(\w+)\s*=\s*"([^"]*)"')


def band_names(page: Any, channels: int) -> tuple[str, ...] | None:
    """The bands' descriptions from GDAL_METADATA (``<Item name="DESCRIPTION" sample="i"
    role="description">``), when every band has one; parsed with a pattern, not an XML parser
    (the tag is untrusted)."""
    value = page.tags.valueof(GDAL_METADATA)
    if not isinstance(value, str) or len(value) > 1 << 20:
        return None
    found: dict[int, str] = {}
    for attrs, text in _ITEM.findall(value):
        a = {k.lower(): v for k, v in _ATTR.findall(attrs)}
        if a.get("name", "").upper() == "DESCRIPTION" and a.get("sample", "").isdigit():
            found[int(a["sample"])] = html.unescape(text).strip()
    names = tuple(found.get(i, "") for i in range(channels))
    return names if all(names) else None


def nodata_of(page: Any) -> float | None:
    """GDAL_NODATA (an ASCII number, or "nan"); None when absent or not a number."""
    value = page.tags.valueof(GDAL_NODATA)
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str):
        return None
    try:
        return float(value.strip().rstrip("\x00"))
    except ValueError:
        return None


def segments_problem(page: Any, size: int) -> str | None:
    """Why the page's strips or tiles cannot all be read from a file of ``size`` bytes (tifffile
    would fill a missing one with zeros, silently); None when they can."""
    offsets, counts = page.dataoffsets, page.databytecounts
    expected = math.prod(int(n) for n in page.chunked)
    if len(offsets) != expected or len(counts) != expected:
        return f"{len(offsets)} strips or tiles where {expected} are needed"
    for offset, count in zip(offsets, counts, strict=True):
        if offset <= 0 or count <= 0 or offset + count > size:
            return f"strip or tile of {count} bytes at offset {offset} outside the file"
    if int(page.compression) == 1:
        need = math.prod(_page_shape(page)) * page.dtype.itemsize
        if sum(int(c) for c in counts) < need:
            return "uncompressed strips hold fewer bytes than the image"
    return None
