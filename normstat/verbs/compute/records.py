"""What one contributing image adds to the statistics, and what a chunk of work returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from normstat.errors import InputError
from normstat.fingerprints import perceptual, pixel_hash
from normstat.modes import Mode
from normstat.readers import Decoded, Skipped
from normstat.reduce import FloatMoments, IntMoments
from normstat.sources import Item

__all__ = ["ChunkResult", "ImageRecord", "image_record", "refuse_masked"]


@dataclass(frozen=True)
class ImageRecord:
    """One contributing image: its native mode, per-channel partials and fingerprints."""

    native: str
    moments: tuple[IntMoments | FloatMoments, ...]
    pixel_hash: bytes
    dhash: int
    height: int
    width: int
    phash: int
    products: tuple[int | float, ...] | None = None  # channel cross products (--covariance)


def image_record(
    dec: Decoded,
    mode: Mode,
    moments: tuple[IntMoments | FloatMoments, ...] = (),
    hashes: tuple[int, int] | None = None,
    products: tuple[int | float, ...] | None = None,
) -> ImageRecord:
    """The record of a decoded image; ``hashes`` (dHash, pHash) when already computed (a
    chunk's are computed together), else from the image's own thumbnail."""
    px = dec.pixels
    dhash, phash = perceptual(px, mode.max_value, dec.image) if hashes is None else hashes
    return ImageRecord(
        dec.native,
        moments,
        pixel_hash(px, mode.name),
        dhash,
        int(px.shape[0]),
        int(px.shape[1]),
        phash,
        products,
    )


def refuse_masked(path: str, covariance: bool, color: str | None) -> None:
    """InputError for an image masked by its file's nodata tag when the covariance or CIELAB
    is asked for: masks are decided per RGB channel, not per pair or per CIELAB channel (asked
    for with a mask, options refuse it before anything is read)."""
    if covariance or color:
        what = "--covariance" if covariance else "--color lab"
        raise InputError(path, f"has a nodata tag: {what} cannot be combined with masks")


@dataclass
class ChunkResult:
    """A shard's ``items`` (as its stream gave them), their outcomes in order (None: not an
    image, or an item left to the batch route, listed in ``deferred``), each item's canonical
    mode (None when its header is unreadable), and the summed histogram (integer modes only)."""

    outcomes: list[ImageRecord | Skipped | None]
    canonical: list[str | None]
    hist: np.ndarray | None
    deferred: list[int] = field(default_factory=list)
    items: list[Item] = field(default_factory=list)
