"""apply's side of masks: the statistics' own rule (their ``options.nodata`` and
``alpha: mask``, else a file's nodata tag, as compute used) decides which pixels are valid, so
that invalid pixels can be written as 0 or NaN instead of as normalised nodata values."""

from __future__ import annotations

import numpy as np

from normstat.options import MaskOptions
from normstat.readers import Decoded
from normstat.reduce.masks import read_mode, split_alpha, valid_mask

__all__ = ["read_mode", "valid_pixels"]


def valid_pixels(dec: Decoded, mask: MaskOptions) -> tuple[np.ndarray, np.ndarray | None]:
    """The colour pixels, and which are valid (H×W×C; None: every pixel, nothing to mask)."""
    colour, opaque = split_alpha(dec.pixels, mask.alpha)
    nodata = mask.for_channels(colour.shape[-1], dec.nodata)
    if nodata is None and opaque is None:
        return colour, None
    valid = np.ones(colour.shape, dtype=bool)
    for c in range(colour.shape[-1]):
        keep = valid_mask(colour[..., c], None if nodata is None else nodata[c], opaque)
        if keep is not None:
            valid[..., c] = keep
    return colour, valid
