"""What one contributing image adds to the statistics, and what a chunk of work returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from normstat.fingerprints import perceptual, pixel_hash
from normstat.modes import Mode
from normstat.readers import Decoded, Skipped
from normstat.reduce import FloatMoments, IntMoments
from normstat.sources import Item

__all__ = ["ChunkResult", "ImageRecord", "image_record"]


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
