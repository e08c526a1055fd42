"""sRGB pixels to CIELAB (D65 white, 2° observer), the conversion ``--color lab`` reduces and
applies: scikit-image's ``rgb2lab`` with its default illuminant, its matrix and its constants
(the 0.008856 / 7.787 approximations of (6/29)^3 and 1/(3·(6/29)^2)), in float64.

The sRGB linearisation depends on one 8- or 16-bit value, so it is a table (256 or 65536
entries, built once per process); the 3×3 product and the cube root run on whole planes. That
is what keeps the conversion at a few milliseconds per photo (``benchmarks/color.py``)."""

from __future__ import annotations

import functools
import threading

import numpy as np

from normstat.modes import DERIVED_MODES, Mode

__all__ = ["LAB_FROM", "lab_mode", "rgb_to_lab"]

LAB_FROM = ("RGB", "RGB;16")  # the dataset modes a CIELAB conversion reads images in

# sRGB (linear) to XYZ, as scikit-image's ``xyz_from_rgb``, rows divided by the D65 2° white.
_XYZ_FROM_RGB = np.array(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ]
)
_WHITE = np.array([0.95047, 1.0, 1.08883])
_MATRIX = _XYZ_FROM_RGB / _WHITE[:, None]
_EPSILON = 0.008856  # f(t) = t^(1/3) above, 7.787·t + 16/116 at and below (scikit-image's)
_KAPPA = 7.787


def lab_mode() -> Mode:
    """The mode CIELAB statistics are reported in: float data, channels L, a, b, scale 1."""
    return DERIVED_MODES["LAB;F"]


@functools.cache
def _linear(levels: int) -> np.ndarray:
    """sRGB decoding (companding undone) of every value 0..levels-1, as scikit-image does it on
    ``value / (levels - 1)``."""
    v = np.arange(levels, dtype=np.float64) / (levels - 1)
    return np.where(v > 0.04045, ((v + 0.055) / 1.055) ** 2.4, v / 12.92)


_KEEP_PIXELS = 1 << 22
_SCRATCH = threading.local()  # per thread: Dask workers may run tasks in threads


def _scratch(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Working planes for images of ``shape``, kept between calls: fresh ones cost a page fault
    per 4 KB written, which doubled the conversion's time in compute."""
    kept = getattr(_SCRATCH, "planes", None)
    if kept is None or kept[1].shape != shape:
        kept = (
            np.empty((3, *shape), dtype=np.float64),
            np.empty(shape, dtype=np.float64),
            np.empty(shape, dtype=bool),
        )
        # Kept for images up to 4 megapixels (132 MB); larger ones are rare and pay the faults.
        _SCRATCH.planes = kept if int(np.prod(shape)) <= _KEEP_PIXELS else None
    return kept


def rgb_to_lab(pixels: np.ndarray) -> np.ndarray:
    """H×W×3 (or B×H×W×3) uint8 or uint16 sRGB pixels as float64 L*, a*, b* (L in [0, 100]),
    the same shape, channels last (a view of three contiguous planes: each channel's reduction
    reads contiguous memory); ValueError for another dtype or channel count."""
    if pixels.shape[-1] != 3 or pixels.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"CIELAB needs 8- or 16-bit RGB pixels, not {pixels.dtype} {pixels.shape}")
    table = _linear(256 if pixels.dtype == np.uint8 else 65536)
    shape = pixels.shape[:-1]
    rgb, tmp, low = _scratch(shape)
    for c in range(3):  # contiguous float64 planes of linear light
        np.take(table, pixels[..., c], out=rgb[c])
    lab = np.empty((3, *shape), dtype=np.float64)  # f(Y), f(X), f(Z), then L*, a*, b* in place
    for t, row in zip(lab, _MATRIX[[1, 0, 2]], strict=True):
        np.multiply(rgb[0], row[0], out=t)
        for c in (1, 2):
            t += np.multiply(rgb[c], row[c], out=tmp)
        np.less_equal(t, _EPSILON, out=low)
        np.multiply(t, _KAPPA, out=tmp)
        tmp += 16.0 / 116.0
        np.cbrt(t, out=t)
        np.copyto(t, tmp, where=low)
    fy, fx, fz = lab
    np.subtract(fx, fy, out=fx)
    fx *= 500.0
    np.subtract(fy, fz, out=fz)
    fz *= 200.0
    fy *= 116.0
    fy -= 16.0
    return np.moveaxis(lab, 0, -1)
