"""Partials over valid pixels only (rasterio's ``stats()`` with nodata, MONAI's foreground): a
pixel of channel c is invalid when it equals that channel's nodata value (NaN matches NaN) or,
with an alpha mask, when its alpha is 0. Channels are masked independently, so each has its own
count.

Integer images stay exact and nearly as cheap as unmasked ones: nodata removes one bin of the
image's exact histogram, an alpha mask histograms the opaque pixels only, and the moments come
from those histograms as always. Float images reduce the valid values of each channel with the
unmasked per-image arithmetic (``float_partial``), so nothing masked gives the unmasked partial
bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from normstat.modes import MODES, Mode
from normstat.options import MaskOptions
from normstat.readers import NON_FINITE

from .batch import BatchMoments
from .histograms import histograms
from .moments import FloatMoments, IntMoments, float_partial, int_partials
from .ranges import FloatRange, range_histogram

__all__ = [
    "NAN_LEFT",
    "alpha_mode",
    "check_nodata",
    "masked_batch",
    "masked_image",
    "masked_partials",
    "read_mode",
    "split_alpha",
    "valid_mask",
]

NAN_LEFT = NON_FINITE  # the readers' words for the same skip
_ALPHA_MODES = {"RGB": "RGBA", "L": "LA"}
Moments = IntMoments | FloatMoments


def alpha_mode(mode: Mode) -> Mode:
    """The mode images are read in for ``--alpha mask``: ``mode`` with its alpha channel."""
    name = _ALPHA_MODES.get(mode.name)
    if name is None:
        raise ValueError(
            f"--alpha mask needs an 8-bit mode without alpha (RGB or L), not {mode.name}"
        )
    return MODES[name]


def read_mode(mode: Mode, mask: MaskOptions | None) -> Mode:
    """The mode images are decoded in: ``alpha_mode`` when the mask uses alpha (None: no mask
    asked for), else ``mode``."""
    return alpha_mode(mode) if mask is not None and mask.alpha else mode


def check_nodata(mode: Mode, nodata: tuple[float, ...] | None) -> None:
    """ValueError when ``nodata`` cannot apply to ``mode``: a count other than one or one per
    channel, or for integer modes a value no pixel can hold (a typo must not mask nothing)."""
    if nodata is None:
        return
    n = len(mode.channels)
    if len(nodata) not in (1, n):
        raise ValueError(
            f"--nodata holds {len(nodata)} values: give one, or one per channel "
            f"({n} for mode {mode.name})"
        )
    if mode.integer:
        top = int(mode.max_value)
        for v in nodata:
            if math.isnan(v) or not v.is_integer() or not 0 <= v <= top:
                raise ValueError(
                    f"--nodata {v:g} is no pixel value of mode {mode.name} (integers 0..{top})"
                )


def split_alpha(pixels: np.ndarray, alpha: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """The colour channels, and (``alpha``) which pixels are opaque enough to count (alpha > 0)."""
    if not alpha:
        return pixels, None
    return np.ascontiguousarray(pixels[..., :-1]), pixels[..., -1] > 0


def valid_mask(x: np.ndarray, value: float | None, opaque: np.ndarray | None) -> np.ndarray | None:
    """Which pixels of the channel ``x`` are valid: those not equal to its nodata ``value``
    (NaN matches NaN; an integer channel holds none) and, with ``opaque``, opaque; None: all."""
    keep = None
    if value is not None and math.isnan(value):
        keep = ~np.isnan(x) if x.dtype.kind == "f" else None
    elif value is not None:
        keep = x != value
    if opaque is not None:
        keep = opaque if keep is None else keep & opaque
    return keep


def masked_partials(
    pixels: np.ndarray,
    mode: Mode,
    nodata: tuple[float, ...] | None,
    opaque: np.ndarray | None,
    spec: FloatRange | None = None,
) -> tuple[tuple[Moments, ...], np.ndarray | None] | str:
    """One H×W×C image's per-channel partials over its valid pixels, and its histograms
    (integer modes, or float ones over ``spec``'s range); a str says why the image cannot
    contribute (a NaN in a channel whose nodata is not NaN)."""
    channels = pixels.shape[-1]
    if mode.integer:
        if opaque is None:
            hists = histograms(np.ascontiguousarray(pixels), mode.bins)
        else:
            hists = np.stack(
                [np.bincount(pixels[..., c][opaque], minlength=mode.bins) for c in range(channels)]
            ).astype(np.int64)
        if nodata is not None:
            hists = hists.copy()
            for c, v in enumerate(nodata):
                if not math.isnan(v) and v.is_integer() and 0 <= v < mode.bins:
                    hists[c, int(v)] = 0
        return int_partials(hists), hists
    moments: list[Moments] = []
    ranged = None if spec is None else np.empty((channels, spec.bins + 2), dtype=np.int64)
    for c in range(channels):
        x = pixels[..., c]
        value = None if nodata is None else nodata[c]
        if (value is None or not math.isnan(value)) and np.isnan(x).any():
            return NAN_LEFT
        keep = valid_mask(x, value, opaque)
        valid = x if keep is None else x[keep]  # selected once, for the moments and the range
        moments.append(float_partial(valid))
        if ranged is not None and spec is not None:
            ranged[c] = range_histogram(valid, spec)
    return tuple(moments), ranged


def masked_image(
    pixels: np.ndarray,
    mode: Mode,
    mask: MaskOptions,
    tag: float | None = None,
    spec: FloatRange | None = None,
) -> tuple[np.ndarray, tuple[Moments, ...], np.ndarray | None] | str:
    """One decoded image's colour pixels (an alpha mask's alpha channel removed), partials over
    its valid pixels and histograms, or why it cannot contribute: ``masked_partials`` with the
    mask applied to the image (``tag``: the file's own nodata value, used when the mask gives
    none)."""
    colour, opaque = split_alpha(pixels, mask.alpha)
    got = masked_partials(colour, mode, mask.for_channels(colour.shape[-1], tag), opaque, spec)
    return got if isinstance(got, str) else (colour, *got)


def masked_batch(
    images: Iterable[np.ndarray],
    mode: Mode,
    mask: MaskOptions,
    tag: float | None = None,
    spec: FloatRange | None = None,
) -> tuple[BatchMoments, list[np.ndarray | str]]:
    """``masked_image`` of each H×W×C image (read in ``alpha_mode`` when the mask uses alpha;
    a batch, or views of some of its images: nothing is copied), the summed histogram, and per
    image its colour pixels or why it cannot contribute; ``tag``: the file's own nodata value,
    used when the mask gives none; ``spec``: float data's range."""
    bins = mode.bins if mode.integer else None if spec is None else spec.bins + 2
    total = None if bins is None else np.zeros((len(mode.channels), bins), dtype=np.int64)
    moments: list[tuple[Moments, ...]] = []
    out: list[np.ndarray | str] = []
    for px in images:
        got = masked_image(px, mode, mask, tag, spec)
        if isinstance(got, str):
            out.append(got)
            continue
        out.append(got[0])
        moments.append(got[1])
        if total is not None and got[2] is not None:
            total += got[2]
    return BatchMoments(moments, total), out
