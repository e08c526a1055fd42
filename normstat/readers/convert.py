"""The one conversion to the dataset mode, for image files and arrays alike: channels (grey
replicated, luma with Pillow's weights), alpha, sample depth, and EXIF orientation.

Conversions follow torchvision's default loader (Pillow's ``convert``) where Pillow can do them,
and are exact in integers where it cannot (16-bit data, which Pillow would clip).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from normstat.modes import LUMA, Mode

from .base import Decoded

__all__ = [
    "FIXED_MODES",
    "convert",
    "fixed_modes",
    "luma16",
    "orient",
    "oriented",
    "with_alpha_and_depth",
]

_PERMILLE = tuple(round(w * 1000) for w in LUMA)  # 299, 587, 114

# The mode names of 1-4 channels on disk, by sample type (2 and 4 channels end with alpha).
FIXED_MODES = {
    "uint8": {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"},
    "uint16": {1: "I;16", 2: "LA;16", 3: "RGB;16", 4: "RGBA;16"},
    "float32": {1: "F", 2: "LA;F", 3: "RGB;F", 4: "RGBA;F"},
}


def fixed_modes(dtype: str, channels: int, keep_alpha: bool) -> tuple[str, str]:
    """(native, canonical) modes of ``channels`` (1-4) samples of ``dtype`` (any float uses the
    float names), for arrays and TIFFs alike: the canonical mode loses nothing but alpha,
    which it keeps only when asked and for 8 bits (no 16-bit or float dataset mode has it)."""
    table = FIXED_MODES[dtype if dtype in ("uint8", "uint16") else "float32"]
    alpha = keep_alpha and dtype == "uint8" and channels in (2, 4)
    return table[channels], table[channels if alpha else (1 if channels <= 2 else 3)]


def luma16(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601-2 luma with Pillow's weights, in integers so 16-bit values stay exact."""
    r, g, b = (rgb[..., i].astype(np.uint64) for i in range(3))
    wr, wg, wb = _PERMILLE
    return ((r * wr + g * wg + b * wb + 500) // 1000).astype(np.uint16)[..., None]


def _luma8(rgb: np.ndarray) -> np.ndarray:
    """Pillow's own RGB → L for 8-bit pixels (…×H×W×3), as for 8-bit image files."""
    h, w = rgb.shape[-3:-1]
    flat = rgb.reshape(-1, h, w, 3)
    gray = np.stack([np.asarray(Image.fromarray(im).convert("L")) for im in flat])
    return gray.reshape(*rgb.shape[:-1], 1)


def convert(x: np.ndarray, target: Mode) -> np.ndarray | str:
    """…×H×W×C pixels (one image or a batch; colour when C ≥ 3, alpha when C is 2 or 4) in
    ``target``; a str says why they cannot be."""
    channels = x.shape[-1]
    is_float = x.dtype.kind == "f"
    if is_float and target.integer:
        return f"float array has no range to map to {target.name}"
    src_max = 1.0 if is_float else float(np.iinfo(x.dtype).max)
    if target.bands or channels > 4:  # bands have no colour meaning: as many, or none
        if not target.bands or channels != len(target.channels):
            return f"{channels}-band pixels have no conversion to {target.name}"
        return with_alpha_and_depth(x, None, src_max, target)
    alpha = x[..., channels - 1 :] if channels in (2, 4) else None
    x = x[..., :3] if channels >= 3 else x[..., :1]
    if target.color and x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    elif not target.color and x.shape[-1] == 3:
        if is_float:
            wide = x.astype(np.float64)
            luma = wide[..., 0] * LUMA[0] + wide[..., 1] * LUMA[1] + wide[..., 2] * LUMA[2]
            x = luma.astype(x.dtype)[..., None]
        elif x.dtype == np.uint8:
            x = _luma8(x)
        else:
            x = luma16(x)
    return with_alpha_and_depth(x, alpha, src_max, target)


def with_alpha_and_depth(
    arr: np.ndarray, alpha: np.ndarray | None, src_max: float, target: Mode
) -> np.ndarray:
    """The last steps of every conversion, for any leading axes (…×C): alpha appended when the
    target has one (kept, else opaque), then the sample depth: floats as they are, integers
    exactly (8 → 16 bits), rounded (16 → 8) or scaled to [0, 1]."""
    if target.alpha:
        if alpha is None:
            alpha = np.full((*arr.shape[:-1], 1), src_max, dtype=arr.dtype)
        arr = np.concatenate([arr, alpha.astype(arr.dtype)], axis=-1)
    if target.dtype == "float32":
        if arr.dtype.kind == "f":
            return np.ascontiguousarray(arr)
        return (arr.astype(np.float32) / np.float32(src_max)).astype(np.float32)
    if src_max == target.max_value:
        return np.ascontiguousarray(arr, dtype=target.dtype)
    if target.max_value == 65535:  # 8 → 16 bits: v·257 maps 255 onto 65535 exactly
        return arr.astype(np.uint16) * np.uint16(257)
    wide = arr.astype(np.uint64)  # 16 → 8 bits, rounded
    return ((wide * 255 + 32767) // 65535).astype(np.uint8)


_ORIENT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: a.transpose(1, 0, 2)[:, ::-1],
    7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1],
    8: lambda a: a.transpose(1, 0, 2)[::-1],
}


def orient(arr: np.ndarray, orientation: int) -> np.ndarray:
    """EXIF orientation (1–8) applied to an H×W×C array, as ImageOps.exif_transpose does."""
    op = _ORIENT.get(orientation)
    return np.ascontiguousarray(op(arr)) if op else arr


def oriented(arr: np.ndarray, native: str, image: Image.Image | None, orientation: int) -> Decoded:
    """EXIF orientation applied; the Pillow image is kept only when it still shows the pixels."""
    if orientation != 1:
        return Decoded(orient(arr, orientation), native)
    return Decoded(arr, native, image)
