"""apply's side of masks: the statistics' own rule (their ``options.nodata`` and
``alpha: mask``, else a file's nodata tag, as compute used) decides which pixels are valid, so
that invalid pixels can be written as 0 or NaN instead of as normalised nodata values."""

from __future__ import annotations

import math

import numpy as np

from normstat.modes import Mode
from normstat.options import MaskOptions
from normstat.readers import Decoded
from normstat.reduce.masks import alpha_mode, split_alpha

__all__ = ["read_mode", "valid_pixels"]


def read_mode(mode: Mode, mask: MaskOptions) -> Mode:
    """The mode to decode in: with alpha when the mask uses it."""
    return alpha_mode(mode) if mask.alpha else mode


def valid_pixels(dec: Decoded, mask: MaskOptions) -> tuple[np.ndarray, np.ndarray | None]:
    """The colour pixels, and which are valid (H×W×C; None: every pixel, nothing to mask)."""
    colour, opaque = split_alpha(dec.pixels, mask.alpha)
    nodata = mask.for_channels(colour.shape[-1], dec.nodata)
    if nodata is None and opaque is None:
        return colour, None
    valid = np.ones(colour.shape, dtype=bool)
    if nodata is not None:
        for c, v in enumerate(nodata):
            x = colour[..., c]
            if math.isnan(v):
                valid[..., c] = ~np.isnan(x) if x.dtype.kind == "f" else True
            else:
                valid[..., c] = x != v
    if opaque is not None:
        valid &= opaque[..., None]
    return colour, valid
