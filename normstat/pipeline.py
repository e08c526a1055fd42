"""Per-chunk work run inside the executors: probe headers, or decode → reduce → fingerprint.

Each function takes one picklable argument and returns plain values, so the same code runs
in-process and in pool workers; per-image failures come back as ``Skipped`` values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .decode import Decoded, Probe, Skipped, decode, probe
from .fingerprint import dhash, pixel_hash
from .modes import get_mode
from .npysource import is_npy, probe_array
from .reduce import FloatMoments, IntMoments, float_partial, histograms, int_partial

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


@dataclass
class ChunkResult:
    """Outcomes in file order, plus the chunk's summed histogram (integer modes only)."""

    outcomes: list[ImageRecord | Skipped]
    hist: np.ndarray | None


def probe_chunk(
    args: tuple[list[str], int | None, bool, str | None],
) -> list[Probe | Skipped | None]:
    """Header probes; with an array layout (``args[3]``), .npy files are probed as arrays."""
    paths, max_pixels, keep_alpha, layout = args
    out = [probe(p, max_pixels, keep_alpha) for p in paths]
    if layout is None:
        return out
    return [  # only files Pillow does not know are sniffed for the .npy magic
        probe_array(p, keep_alpha, max_pixels, layout) if r is None and is_npy(p) else r
        for p, r in zip(paths, out, strict=True)
    ]


def reduce_image(dec: Decoded, mode_name: str) -> tuple[ImageRecord, list[np.ndarray]]:
    mode = get_mode(mode_name)
    px = dec.pixels
    channels = px.shape[2]
    hists: list[np.ndarray] = []
    moments: tuple[IntMoments | FloatMoments, ...]
    if mode.integer:
        hists = list(histograms(px, mode.bins))
        moments = tuple(int_partial(h) for h in hists)
    else:
        moments = tuple(float_partial(px[..., c]) for c in range(channels))
    record = ImageRecord(
        dec.native,
        moments,
        pixel_hash(px, mode.name),
        dhash(px, mode.max_value),
        int(px.shape[0]),
        int(px.shape[1]),
    )
    return record, hists


def reduce_chunk(args: tuple[list[str], str, int | None]) -> ChunkResult:
    paths, mode_name, max_pixels = args
    mode = get_mode(mode_name)
    total = np.zeros((len(mode.channels), mode.bins), dtype=np.int64) if mode.integer else None
    outcomes: list[ImageRecord | Skipped] = []
    for path in paths:
        dec = decode(path, mode, max_pixels)
        if isinstance(dec, Skipped):
            outcomes.append(dec)
            continue
        if dec.pixels.size == 0:
            outcomes.append(Skipped(path, "image has no pixels"))
            continue
        record, hists = reduce_image(dec, mode_name)
        if total is not None:
            for c, h in enumerate(hists):
                total[c] += h
        outcomes.append(record)
    return ChunkResult(outcomes, total)


@dataclass(frozen=True)
class ImagePrint:
    """Fingerprints of one test image, for leakage checks."""

    pixel_hash: bytes
    dhash: int
    height: int
    width: int


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
                dhash(px, mode.max_value),
                int(px.shape[0]),
                int(px.shape[1]),
            )
        )
    return out
