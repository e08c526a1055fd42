"""The ``.npy`` reader: one image (H×W, H×W×C) or a stack (N×H×W, N×H×W×C) per file.

A file is an array when it starts with the ``.npy`` magic (whatever its name). Its header is
parsed, never unpickled (object arrays are refused). A local file is memory-mapped and any other
file object is read by ranges, a slice of images at a time, so a stack larger than memory
streams. Shapes: 2 dimensions are one grayscale image; 4 are a stack N×H×W×C; 3 are one H×W×C
image when the last axis has 1-4 entries, else a grayscale stack N×H×W (``npy_layout`` "hwc" or
"nhw" decides explicitly). dtypes: uint8 → L/LA/RGB/RGBA, uint16 → I;16/RGB;16, float16/32/64
→ F/RGB;F (float64 keeps its precision). 16-bit and float arrays have no alpha modes: their
alpha channel is dropped. Each image of a stack is one image for counts and fingerprints, named
``stack.npy[i]``; a float image holding NaN or infinity is skipped alone, like a float TIFF.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np

from normstat.errors import describe
from normstat.modes import Mode
from normstat.options import ReadOptions

from .base import Decoded, Probe, Skipped, image_name
from .convert import convert

__all__ = ["MAGIC", "READER", "ArrayProbe", "NpyReader", "read_batch"]

MAGIC = b"\x93NUMPY"
_INT_MODES = {
    "uint8": {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"},
    "uint16": {1: "I;16", 2: "LA;16", 3: "RGB;16", 4: "RGBA;16"},
}
_FLOAT_MODES = {1: "F", 2: "LA;F", 3: "RGB;F", 4: "RGBA;F"}
NON_FINITE = "non-finite pixel values (NaN or infinity)"


@dataclass(frozen=True)
class ArrayProbe(Probe):
    """A .npy source: ``count`` images of H×W×C ``dtype`` values (one unless ``stacked``)."""

    count: int = field()  # field(): no default, although Probe has a class attribute of the name
    height: int = field()
    width: int = field()
    channels: int = field()
    dtype: str = field()
    stacked: bool = field()

    @property
    def nbytes(self) -> int:
        return self.count * self.height * self.width * self.channels * np.dtype(self.dtype).itemsize


class _Array:
    """The array of a .npy file object: header parsed, data mapped (files with a descriptor)
    or read by ranges (any other seekable file object)."""

    def __init__(self, f: BinaryIO) -> None:
        f.seek(0)
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:  # 3.0: a UTF-8 header; NumPy has no public reader for it
            read_header = np.lib.format._read_array_header  # type: ignore[attr-defined]
            shape, fortran, dtype = read_header(f, version)
        if dtype.hasobject:
            raise ValueError("Array can't be memory-mapped: Python objects in dtype.")
        self.f, self.shape, self.dtype, self.fortran = f, tuple(shape), dtype, fortran
        self.offset = f.tell()
        self.map: Any = None
        try:
            f.fileno()
        except (OSError, AttributeError, io.UnsupportedOperation):
            need = self.offset + math.prod(self.shape) * dtype.itemsize
            size = f.seek(0, io.SEEK_END)
            if size < need:
                raise ValueError(f"file holds {size} bytes, the array needs {need}") from None
            return
        order = "F" if fortran else "C"
        self.map = np.memmap(f, dtype=dtype, mode="r", offset=self.offset, shape=shape, order=order)  # type: ignore[call-overload]

    def images(self, probe: ArrayProbe, start: int, stop: int) -> np.ndarray:
        """Images ``start:stop`` as B×H×W×C in native byte order."""
        if self.map is not None:
            return read_batch(self.map, probe, start, stop)
        if self.fortran:  # no contiguous rows to seek to: the whole array, then the slice
            self.f.seek(0)
            whole = np.lib.format.read_array(self.f, allow_pickle=False)
            return read_batch(whole, probe, start, stop)
        per_image = math.prod(self.shape[1:] if probe.stacked else self.shape)
        first, count = (start, stop - start) if probe.stacked else (0, 1)
        self.f.seek(self.offset + first * per_image * self.dtype.itemsize)
        data = self.f.read(count * per_image * self.dtype.itemsize)
        shape = (count, *self.shape[1:]) if probe.stacked else self.shape
        part = np.frombuffer(data, dtype=self.dtype).reshape(shape)
        return read_batch(part, probe, 0, count)


def _unreadable(exc: BaseException) -> str:
    return f"unreadable .npy file: {describe(exc)}"


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


def _probe(arr: _Array, name: str, opts: ReadOptions) -> ArrayProbe | Skipped:
    kind = _kind(arr.dtype)
    if kind is None:
        return Skipped(name, f"unsupported array dtype {arr.dtype} (uint8, uint16 or float)")
    shape = _shape(tuple(int(v) for v in arr.shape), opts.npy_layout)
    if isinstance(shape, str):
        return Skipped(name, shape)
    count, height, width, channels, stacked = shape
    if not 1 <= channels <= 4:
        return Skipped(name, f"array of shape {arr.shape}: {channels} channels (1-4 expected)")
    if count * height * width == 0:
        return Skipped(name, f"array of shape {arr.shape} holds no pixels")
    pixels = height * width
    if opts.max_pixels is not None and pixels > opts.max_pixels:
        return Skipped(name, f"image of {pixels} pixels over the limit of {opts.max_pixels} pixels")
    if kind == "float64" or kind == "float32":
        native = _FLOAT_MODES[channels]
        canonical = "F" if channels <= 2 else "RGB;F"
    else:
        native = _INT_MODES[kind][channels]
        alpha = opts.keep_alpha and kind == "uint8" and channels in (2, 4)
        canonical = _INT_MODES[kind][channels if alpha else (1 if channels <= 2 else 3)]
    dtype = "float16" if arr.dtype.itemsize == 2 and arr.dtype.kind == "f" else kind
    return ArrayProbe(native, canonical, count, height, width, channels, dtype, stacked)


def read_batch(arr: Any, probe: ArrayProbe, start: int, stop: int) -> np.ndarray:
    """Images ``start:stop`` of an array (mapped or in memory) as B×H×W×C, native byte order."""
    part = arr[start:stop] if probe.stacked else arr[None]
    batch = np.asarray(part).reshape(-1, probe.height, probe.width, probe.channels)
    native = batch.dtype.newbyteorder("=")
    if probe.dtype == "float16":
        native = np.dtype(np.float32)
    return np.ascontiguousarray(batch, dtype=native)


def _converted(
    arr: _Array, probe: ArrayProbe, start: int, stop: int, target: Mode
) -> tuple[np.ndarray | None, list[str | None]]:
    """Images ``start:stop`` in ``target``, and per image why it cannot contribute."""
    try:
        batch = arr.images(probe, start, stop)
    except Exception as exc:  # the file changed or is damaged past its header
        return None, [_unreadable(exc)] * (stop - start)
    converted = convert(batch, target)
    if isinstance(converted, str):
        return None, [converted] * len(batch)
    if converted.dtype.kind != "f":
        return converted, [None] * len(batch)
    finite = np.isfinite(converted).all(axis=(1, 2, 3))
    return converted, [None if ok else NON_FINITE for ok in finite]


class NpyReader:
    """NumPy ``.npy`` files: single images and stacks, read a batch of images at a time."""

    name = "npy"
    batched = True

    def probe(self, f: BinaryIO, name: str, opts: ReadOptions) -> ArrayProbe | Skipped:
        """The header (and the data's extent): the images the file holds, or why none."""
        try:
            arr = _Array(f)
        except Exception as exc:
            return Skipped(name, _unreadable(exc))
        return _probe(arr, name, opts)

    def batch(
        self, f: BinaryIO, probe: ArrayProbe, start: int, stop: int, target: Mode
    ) -> tuple[np.ndarray | None, list[str | None]]:
        """Images ``start:stop`` in ``target`` (B×H×W×C) and, per image, why it cannot
        contribute (None: it can); no pixels when none can."""
        try:
            arr = _Array(f)
        except Exception as exc:  # the file changed or is damaged past its header
            return None, [_unreadable(exc)] * (stop - start)
        return _converted(arr, probe, start, stop, target)

    def read(
        self,
        f: BinaryIO,
        name: str,
        target: Mode,
        opts: ReadOptions,
        start: int = 0,
        stop: int | None = None,
    ) -> Iterator[Decoded | Skipped]:
        try:
            arr = _Array(f)  # parsed once for the probe and the pixels
        except Exception as exc:
            yield Skipped(name, _unreadable(exc))
            return
        probe = _probe(arr, name, opts)
        if isinstance(probe, Skipped):
            yield probe
            return
        stop = probe.count if stop is None else min(stop, probe.count)
        if start >= stop:
            return
        pixels, reasons = _converted(arr, probe, start, stop, target)
        for i, why in enumerate(reasons):
            if why is not None or pixels is None:
                yield Skipped(image_name(name, start + i, probe.stacked), why or "unreadable")
            else:
                yield Decoded(pixels[i], probe.native)


READER = NpyReader()
