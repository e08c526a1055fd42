"""NumPy ``.npy`` files as sources: one image (H×W, H×W×C) or a stack (N×H×W, N×H×W×C).

A file is an array when it starts with the ``.npy`` magic ``\\x93NUMPY`` (whatever its name). It
is opened memory-mapped with ``allow_pickle=False`` and read a slice of images at a time, so a
stack larger than memory streams. Shapes: 2 dimensions are one grayscale image; 4 are a stack
N×H×W×C; 3 are one H×W×C image when the last axis has 1-4 entries, else a grayscale stack N×H×W
(``layout="hwc"`` or ``"nhw"`` decides explicitly). dtypes: uint8 → L/LA/RGB/RGBA, uint16 →
I;16/RGB;16, float16/32/64 → F/RGB;F (float64 keeps its precision). 16-bit and float arrays have
no alpha modes: their alpha channel is dropped. Each image of a stack is one image for counts
and fingerprints, named ``stack.npy[i]``; a float image holding NaN or infinity is skipped with
that reason, like a float TIFF.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from .batchreduce import MAX_EXACT_PIXELS
from .decode import Probe, Skipped, _luma16, with_alpha_and_depth
from .modes import Mode

__all__ = [
    "LAYOUTS",
    "NPY_MAGIC",
    "ArrayProbe",
    "convert_batch",
    "image_name",
    "is_npy",
    "open_array",
    "probe_array",
    "read_batch",
]

NPY_MAGIC = b"\x93NUMPY"
LAYOUTS = ("auto", "hwc", "nhw")
_INT_MODES = {
    "uint8": {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"},
    "uint16": {1: "I;16", 2: "LA;16", 3: "RGB;16", 4: "RGBA;16"},
}
_FLOAT_MODES = {1: "F", 2: "LA;F", 3: "RGB;F", 4: "RGBA;F"}
_LUMA = (0.299, 0.587, 0.114)  # ITU-R 601-2, Pillow's weights


@dataclass(frozen=True)
class ArrayProbe(Probe):
    """A .npy source: ``count`` images of H×W×C ``dtype`` values (one unless ``stacked``)."""

    count: int
    height: int
    width: int
    channels: int
    dtype: str
    stacked: bool

    @property
    def nbytes(self) -> int:
        return self.count * self.height * self.width * self.channels * np.dtype(self.dtype).itemsize


def is_npy(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(len(NPY_MAGIC)) == NPY_MAGIC
    except OSError:
        return False


def open_array(path: str) -> np.ndarray:
    """The file's array, memory-mapped (nothing is read yet); never unpickles."""
    return np.load(path, mmap_mode="r", allow_pickle=False)


def _kind(dtype: np.dtype) -> str | None:
    if dtype.kind == "u" and dtype.itemsize in (1, 2):
        return f"uint{8 * dtype.itemsize}"
    if dtype.kind == "f" and dtype.itemsize in (2, 4, 8):
        return "float64" if dtype.itemsize == 8 else "float32"
    return None


def _shape(shape: tuple[int, ...], layout: str) -> tuple[int, int, int, int, bool] | str:
    """(count, height, width, channels, stacked), or why the shape is not an image or stack."""
    if len(shape) == 2:
        return 1, shape[0], shape[1], 1, False
    if len(shape) == 3:
        image = shape[2] <= 4 if layout == "auto" else layout == "hwc"
        if image:
            return 1, shape[0], shape[1], shape[2], False
        return shape[0], shape[1], shape[2], 1, True
    if len(shape) == 4:
        return shape[0], shape[1], shape[2], shape[3], True
    return f"array of shape {shape} is neither an image (H×W, H×W×C) nor a stack (N×H×W, N×H×W×C)"


def probe_array(
    path: str, keep_alpha: bool, max_pixels: int | None, layout: str = "auto"
) -> ArrayProbe | Skipped:
    """Read the header (and map the file): the images it holds, or why it holds none."""
    try:
        arr = open_array(path)
    except Exception as exc:
        text = str(exc).replace("\n", " ").strip() or type(exc).__name__
        return Skipped(path, f"unreadable .npy file: {text}")
    kind = _kind(arr.dtype)
    if kind is None:
        return Skipped(path, f"unsupported array dtype {arr.dtype} (uint8, uint16 or float)")
    shape = _shape(tuple(int(v) for v in arr.shape), layout)
    if isinstance(shape, str):
        return Skipped(path, shape)
    count, height, width, channels, stacked = shape
    if not 1 <= channels <= 4:
        return Skipped(path, f"array of shape {arr.shape}: {channels} channels (1-4 expected)")
    if count * height * width == 0:
        return Skipped(path, f"array of shape {arr.shape} holds no pixels")
    pixels = height * width
    if max_pixels is not None and pixels > max_pixels:
        return Skipped(path, f"image of {pixels} pixels over the limit of {max_pixels} pixels")
    if pixels > MAX_EXACT_PIXELS:
        return Skipped(path, f"image of {pixels} pixels over the exact-sum limit 2^31")
    if kind == "float64" or kind == "float32":
        native = _FLOAT_MODES[channels]
        canonical = "F" if channels <= 2 else "RGB;F"
    else:
        native = _INT_MODES[kind][channels]
        alpha = keep_alpha and kind == "uint8" and channels in (2, 4)
        canonical = _INT_MODES[kind][channels if alpha else (1 if channels <= 2 else 3)]
    dtype = "float16" if arr.dtype.itemsize == 2 and arr.dtype.kind == "f" else kind
    return ArrayProbe(native, canonical, count, height, width, channels, dtype, stacked)


def image_name(rel: str, probe: ArrayProbe, index: int) -> str:
    """``stack.npy[12]`` for an image of a stack; the file's own name for a single image."""
    return f"{rel}[{index}]" if probe.stacked else rel


def read_batch(arr: np.ndarray, probe: ArrayProbe, start: int, stop: int) -> np.ndarray:
    """Images ``start:stop`` as a B×H×W×C array in native byte order (read from the map)."""
    part = arr[start:stop] if probe.stacked else arr[None]
    batch = np.asarray(part).reshape(-1, probe.height, probe.width, probe.channels)
    native = batch.dtype.newbyteorder("=")
    if probe.dtype == "float16":
        native = np.dtype(np.float32)
    return np.ascontiguousarray(batch, dtype=native)


def convert_batch(batch: np.ndarray, target: Mode) -> np.ndarray | str:
    """B×H×W×C pixels converted to ``target`` as decode converts images; a str says why not."""
    channels = batch.shape[3]
    is_float = batch.dtype.kind == "f"
    if is_float and target.integer:
        return f"float array has no range to map to {target.name}"
    src_max = 1.0 if is_float else float(np.iinfo(batch.dtype).max)
    alpha = batch[..., channels - 1 :] if channels in (2, 4) else None
    x = batch[..., :3] if channels >= 3 else batch[..., :1]
    if target.color and x.shape[3] == 1:
        x = np.repeat(x, 3, axis=3)
    elif not target.color and x.shape[3] == 3:
        if is_float:
            wide = x.astype(np.float64)
            luma = wide[..., 0] * _LUMA[0] + wide[..., 1] * _LUMA[1] + wide[..., 2] * _LUMA[2]
            x = luma.astype(batch.dtype)[..., None]
        elif batch.dtype == np.uint8:  # Pillow's own RGB → L, as decode uses for 8-bit files
            x = np.stack([np.asarray(Image.fromarray(im).convert("L")) for im in x])[..., None]
        else:
            x = _luma16(x)
    return with_alpha_and_depth(x, alpha, src_max, target)
