"""What ``check`` verifies a near-duplicate against, stored per contributor at compute time so
that no train file is needed later: about 1 KiB per image, made from what compute already has.

- ``thumb``: the 32×32 luma thumbnail the perceptual hashes come from (no extra resize),
  stretched to its own range and rounded to uint8 (1,024 bytes). Verification correlates
  thumbnails, which ignores brightness and contrast, so the stretch loses nothing it uses and
  spends all 256 levels on the image's own contrast, however dark or flat the picture.
- ``lo``, ``hi``: that thumbnail's range in [0, 1] units (what the stretch removed): a flat
  image has ``hi - lo`` near 0.
- ``colour``: the mean of the first three channels in [0, 1] units (grey images: their one
  channel thrice), over a strided sample of at most ~4,096 pixels: luma alone cannot tell a
  red square from a green one of the same brightness.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .hashes import THUMB

__all__ = ["FLAT_RANGE", "REF_BYTES", "Reference", "reference_of", "stretched"]

REF_BYTES = THUMB * THUMB  # the thumbnail's bytes; lo, hi and colour add 20 more
FLAT_RANGE = 1e-6  # a thumbnail whose range is below this (in [0, 1] units) is stored as zeros
_SAMPLE = 4096  # pixels the mean colour is taken over, at most (about)


@dataclass(frozen=True)
class Reference:
    """One contributor's verification data (see the module docstring)."""

    thumb: bytes  # THUMB × THUMB uint8, row-major
    lo: float
    hi: float
    colour: tuple[float, float, float]


def stretched(thumb01: np.ndarray) -> tuple[np.ndarray, float, float]:
    """A [0, 1] thumbnail as uint8 over its own range, with that range (float32 values)."""
    t = np.nan_to_num(np.asarray(thumb01, dtype=np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    lo, hi = float(t.min()), float(t.max())
    if not hi - lo > FLAT_RANGE:
        return np.zeros(t.shape, dtype=np.uint8), lo, hi
    q = np.rint((t - np.float32(lo)) * np.float32(255 / (hi - lo)))
    return np.clip(q, 0, 255).astype(np.uint8), lo, hi


def mean_colour(pixels: np.ndarray, max_value: float) -> tuple[float, float, float]:
    """Mean of channels 0-2 (or channel 0 thrice) over a strided sample, in [0, 1] units."""
    h, w = pixels.shape[:2]
    step = max(1, math.ceil(math.sqrt(h * w / _SAMPLE)))
    sample = pixels[::step, ::step]
    chans = sample[..., :3] if sample.shape[2] >= 3 else sample[..., :1]
    flat = chans.reshape(-1, chans.shape[-1]).astype(np.float64)
    finite = np.isfinite(flat).all(axis=1)  # a masked float image may hold NaN
    means = (flat[finite].mean(axis=0) if finite.any() else np.zeros(flat.shape[1])) / max_value
    if len(means) == 1:
        means = np.repeat(means, 3)
    r, g, b = (float(np.float32(v)) for v in means)
    return r, g, b


def reference_of(thumb: np.ndarray, pixels: np.ndarray, max_value: float) -> Reference:
    """The reference of an H×W×C image whose hash thumbnail is ``thumb`` (as
    ``hashes.thumbnail`` returns it: 0-255 for 8-bit pixels, [0, 1] otherwise)."""
    scale = np.float32(255) if pixels.dtype == np.uint8 else np.float32(1)
    q, lo, hi = stretched(np.asarray(thumb, dtype=np.float32) / scale)
    return Reference(q.tobytes(), lo, hi, mean_colour(pixels, max_value))
