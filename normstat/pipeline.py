"""Per-chunk work run inside the executors: probe headers, or decode → reduce → fingerprint.

Each function takes one picklable argument and returns plain values, so the same code runs
in-process and in pool workers; per-image failures come back as ``Skipped`` values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .decode import Decoded, Probe, Skipped, decode, load, probe
from .fingerprint import gray_image, hashes_of, perceptual, pixel_hash, thumbnail
from .modes import Mode, get_mode
from .neardup import query_hashes
from .reduce import FloatMoments, IntMoments, float_partial, histograms, int_partials

__all__ = [
    "ChunkResult",
    "ImagePrint",
    "ImageRecord",
    "fingerprint_chunk",
    "probe_chunk",
    "reduce_chunk",
]


@dataclass(frozen=True)
class ImageRecord:
    """What one contributing image adds: per-channel partials and its fingerprints."""

    native: str
    moments: tuple[IntMoments | FloatMoments, ...]
    pixel_hash: bytes
    dhash: int
    height: int
    width: int
    phash: int


@dataclass
class ChunkResult:
    """Outcomes in file order (None: not an image), each file's canonical mode (None when its
    header is unreadable), and the chunk's summed histogram (integer modes only)."""

    outcomes: list[ImageRecord | Skipped | None]
    canonical: list[str | None]
    hist: np.ndarray | None


def probe_chunk(args: tuple[list[str], int | None, bool]) -> list[Probe | Skipped | None]:
    paths, max_pixels, keep_alpha = args
    return [probe(p, max_pixels, keep_alpha) for p in paths]


def _partials(
    dec: Decoded, mode: Mode
) -> tuple[tuple[IntMoments | FloatMoments, ...], np.ndarray | None]:
    """One image's per-channel partials, and its histograms (integer modes)."""
    px = dec.pixels
    if mode.integer:
        hists = histograms(px, mode.bins, image=dec.image)
        return int_partials(hists), hists
    return tuple(float_partial(px[..., c]) for c in range(px.shape[2])), None


def reduce_image(dec: Decoded, mode_name: str) -> tuple[ImageRecord, np.ndarray | None]:
    """One image's record and histograms: what reduce_chunk gives for it, one image at a time."""
    mode = get_mode(mode_name)
    px = dec.pixels
    moments, hists = _partials(dec, mode)
    dhash, phash = perceptual(px, mode.max_value, dec.image)
    record = ImageRecord(
        dec.native,
        moments,
        pixel_hash(px, mode.name),
        dhash,
        int(px.shape[0]),
        int(px.shape[1]),
        phash,
    )
    return record, hists


def reduce_chunk(args: tuple[list[str], str, int | None, bool]) -> ChunkResult:
    """Probe and reduce each file from one open; the caller checks the mode guess afterwards.
    Perceptual hashes are computed for the whole chunk at once from the images' thumbnails."""
    paths, mode_name, max_pixels, keep_alpha = args
    mode = get_mode(mode_name)
    total = np.zeros((len(mode.channels), mode.bins), dtype=np.int64) if mode.integer else None
    outcomes: list[Any] = []
    canonical: list[str | None] = []
    thumbs: list[np.ndarray] = []
    for path in paths:
        head, dec = load(path, mode, max_pixels, keep_alpha)
        canonical.append(head.canonical if isinstance(head, Probe) else None)
        if head is None or isinstance(head, Skipped):
            outcomes.append(head)
            continue
        assert dec is not None
        if isinstance(dec, Skipped):
            outcomes.append(dec)
            continue
        px = dec.pixels
        if px.size == 0:
            outcomes.append(Skipped(path, "image has no pixels"))
            continue
        moments, hists = _partials(dec, mode)
        if total is not None and hists is not None:
            total += hists
        fields = (dec.native, moments, pixel_hash(px, mode.name), px.shape[0], px.shape[1])
        outcomes.append((len(thumbs), fields))
        thumbs.append(thumbnail(gray_image(px, mode.max_value, dec.image)))
    if thumbs:
        dhashes, phashes = (h.tolist() for h in hashes_of(np.stack(thumbs)))
        for i, outcome in enumerate(outcomes):
            if isinstance(outcome, tuple):
                k, (native, moments, digest, height, width) = outcome
                outcomes[i] = ImageRecord(
                    native, moments, digest, dhashes[k], int(height), int(width), phashes[k]
                )
    return ChunkResult(outcomes, canonical, total)


@dataclass(frozen=True)
class ImagePrint:
    """Fingerprints of one test image, for leakage checks; ``queries`` are its pHashes over the
    crop boxes and mirror images that near-duplicate search tries."""

    pixel_hash: bytes
    height: int
    width: int
    queries: np.ndarray


def fingerprint_chunk(args: tuple[list[str], str, int | None]) -> list[ImagePrint | Skipped]:
    paths, mode_name, max_pixels = args
    mode = get_mode(mode_name)
    out: list[ImagePrint | Skipped] = []
    for path in paths:
        dec = decode(path, mode, max_pixels)
        if isinstance(dec, Skipped):
            out.append(dec)
            continue
        px = dec.pixels
        out.append(
            ImagePrint(
                pixel_hash(px, mode.name),
                int(px.shape[0]),
                int(px.shape[1]),
                query_hashes(px, mode.max_value),
            )
        )
    return out
