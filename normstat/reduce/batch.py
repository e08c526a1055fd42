"""Reduce a batch of same-shape images in one pass per quantity, on NumPy or CuPy (``xp``).

The batch is a ``B×H×W×C`` array in the dataset mode's dtype. It yields exactly what the
per-image CPU path (``pipeline.reduce_image``) yields, per image and in order, so the merge in
``api`` is the same Chan merge whichever device reduced:

- integer images: per-image ``IntMoments`` from int64 segment sums (exact, see
  ``MAX_EXACT_PIXELS``) and the batch's per-channel histograms from one ``bincount`` over
  ``channel·bins + value`` (exact counts);
- float images: per-image ``FloatMoments`` with the arithmetic of ``reduce.float_partial``
  (shift by the first value, Björck's corrected two-pass) done for all images and channels at
  once on a ``B×C×HW`` float64 copy, so each row is summed like the 1-D per-image array.

Only array operations that NumPy and CuPy share are used, so CI runs this very code with NumPy.
The sum of squares may be delegated to a fused device kernel (``kernels.py``) that never
materializes the squares; it is only used after it matched this generic path on the device.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from normstat.modes import Mode

from .moments import FloatMoments, IntMoments

__all__ = [
    "MAX_EXACT_PIXELS",
    "BatchMoments",
    "batch_histogram",
    "reduce_batch",
    "sum_sq",
    "to_host",
]

# Σx² of one channel of one image fits int64 when (2^16 - 1)² · pixels < 2^63: with at most
# 2^31 pixels, Σx² ≤ (2^16 - 1)² · 2^31 < 2^32 · 2^31 = 2^63. Larger images are skipped.
MAX_EXACT_PIXELS = 2**31

SumSq = Callable[[Any, int], Any]  # (array, axis) → Σ x² along axis (int64 or float64)


@dataclass
class BatchMoments:
    """Per-image, per-channel partials in batch order, plus the batch histogram (integer)."""

    moments: list[tuple[IntMoments | FloatMoments, ...]]
    hist: np.ndarray | None  # channels × bins, int64, on the host


def to_host(a: Any) -> np.ndarray:
    """A device array's values as a NumPy array (CuPy's ``get``; NumPy arrays as they are)."""
    get = getattr(a, "get", None)
    return np.asarray(get() if callable(get) else a)


def sum_sq(x: Any, axis: int, xp: ModuleType = np) -> Any:
    """Σ x² along ``axis``: int64 for integer input (exact), float64 otherwise. Generic; the
    fused kernel computes the same without the temporary of squares."""
    acc = xp.int64 if np.issubdtype(x.dtype, np.integer) else xp.float64
    wide = x.astype(acc, copy=False)
    return (wide * wide).sum(axis=axis)


def batch_histogram(x: Any, bins: int, xp: ModuleType = np) -> Any:
    """Per-channel histograms (channels × bins, int64) of a ``…×C`` integer batch, one bincount."""
    channels = x.shape[-1]
    offsets = xp.arange(channels, dtype=xp.int64) * bins
    index = x.reshape(-1, channels).astype(xp.int64) + offsets
    counts = xp.bincount(index.ravel(), minlength=channels * bins)
    return counts.reshape(channels, bins)


def reduce_batch(
    x: Any, mode: Mode, xp: ModuleType = np, fused: SumSq | None = None
) -> BatchMoments:
    """Per-image partials of a ``B×H×W×C`` batch in ``mode``; ``fused`` replaces ``sum_sq``."""
    if x.ndim != 4 or x.shape[3] != len(mode.channels):
        raise ValueError(f"expected B×H×W×{len(mode.channels)} pixels, got {tuple(x.shape)}")
    b, h, w, c = (int(v) for v in x.shape)
    n = h * w
    if b == 0 or n == 0:
        raise ValueError("empty batch")
    square_sum: SumSq = fused or (lambda a, axis: sum_sq(a, axis, xp))
    if mode.integer:
        if n > MAX_EXACT_PIXELS:
            raise ValueError(f"{n} pixels per image exceed the exact int64 bound")
        # B×C×HW in the source dtype (a cheap copy): each reduction runs along contiguous rows
        planes = xp.ascontiguousarray(xp.moveaxis(x.reshape(b, n, c), 2, 1))
        sums = to_host(planes.sum(axis=2, dtype=xp.int64))
        squares = to_host(square_sum(planes, 2))
        hist = to_host(batch_histogram(x, mode.bins, xp)).astype(np.int64)
        moments: list[tuple[IntMoments | FloatMoments, ...]] = [
            tuple(IntMoments(n, int(sums[i, k]), int(squares[i, k])) for k in range(c))
            for i in range(b)
        ]
        return BatchMoments(moments, hist)
    planes = xp.ascontiguousarray(xp.moveaxis(x.reshape(b, n, c), 2, 1), dtype=xp.float64)
    shift = planes[:, :, 0]
    d = planes - shift[:, :, None]
    mean = d.sum(axis=2) / n
    r = d - mean[:, :, None]
    del d
    resid = r.sum(axis=2)
    m2 = square_sum(r, 2) - resid * resid / n
    del r
    parts = [to_host(a) for a in (shift, mean + resid / n, xp.maximum(m2, 0.0))]
    lo, hi = to_host(planes.min(axis=2)), to_host(planes.max(axis=2))
    shift_h, mean_h, m2_h = parts
    moments = [
        tuple(
            FloatMoments(
                n,
                float(shift_h[i, k]),
                float(mean_h[i, k]),
                float(m2_h[i, k]),
                float(lo[i, k]),
                float(hi[i, k]),
            )
            for k in range(c)
        )
        for i in range(b)
    ]
    return BatchMoments(moments, None)
