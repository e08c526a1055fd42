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

import ast
import io
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np

from normstat.errors import describe
from normstat.modes import Mode
from normstat.options import ReadOptions

from .base import Decoded, Probe, Skipped, batch_outcomes, finite_reasons
from .convert import convert, fixed_modes
from .limits import file_size, plausible_size

__all__ = ["MAGIC", "READER", "ArrayProbe", "NpyReader", "read_batch"]

MAGIC = b"\x93NUMPY"


@dataclass(frozen=True)
class ArrayProbe(Probe):
    """``count`` images of H×W×C ``dtype`` values (one unless ``stacked``), the size of each
    known from the header: a .npy file's, and a TIFF's (``TiffProbe``)."""

    count: int = field()  # field(): no default, although Probe has a class attribute of the name
    height: int = field()
    width: int = field()
    channels: int = field()
    dtype: str = field()
    stacked: bool = field()

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", (self.height, self.width))

    @property
    def nbytes(self) -> int:
        return self.count * self.height * self.width * self.channels * np.dtype(self.dtype).itemsize


_MAX_HEADER = 10_000  # bytes: NumPy's own limit for headers it parses without trust
_KEYS = {"descr", "fortran_order", "shape"}


def _header(f: BinaryIO) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """(shape, fortran order, dtype, data offset) of a ``.npy`` file, parsed here rather than by
    NumPy: every format version (1.0-3.0), and every refusal a short reason that is the same
    each run (NumPy's messages quote the header and reprs with memory addresses)."""
    f.seek(0)
    magic = f.read(8)
    if len(magic) < 8 or not magic.startswith(MAGIC):
        raise ValueError("truncated .npy magic")
    major, minor = magic[6], magic[7]
    if major not in (1, 2, 3):
        raise ValueError(f"unsupported .npy format version {major}.{minor}")
    width = 2 if major == 1 else 4
    length = int.from_bytes(f.read(width), "little")
    if length > _MAX_HEADER:
        raise ValueError(f"header of {length} bytes (at most {_MAX_HEADER})")
    raw = f.read(length)
    if len(raw) < length:
        raise ValueError(f"truncated header ({len(raw)} of {length} bytes)")
    try:
        header = ast.literal_eval(raw.decode("utf-8" if major == 3 else "latin1"))
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError, UnicodeError):
        raise ValueError("header is not a Python literal") from None
    if not isinstance(header, dict) or set(header) != _KEYS:
        raise ValueError("header is not a dictionary of descr, fortran_order and shape")
    shape, fortran = header["shape"], header["fortran_order"]
    if not isinstance(shape, tuple) or not all(type(n) is int and 0 <= n < 1 << 62 for n in shape):
        raise ValueError("header shape is not a tuple of sizes")
    if type(fortran) is not bool:
        raise ValueError("header fortran_order is not True or False")
    try:
        dtype = np.lib.format.descr_to_dtype(header["descr"])
    except Exception:
        raise ValueError("header descr is not a NumPy dtype") from None
    if dtype.hasobject:
        raise ValueError("array of Python objects (never unpickled)")
    return shape, fortran, dtype, 8 + width + length


class _Array:
    """The array of a .npy file object: header parsed, data mapped (files with a descriptor)
    or read by ranges (any other seekable file object). The file's size must be what the
    header declares (a shorter file has lost data; a far longer one is not this array) before
    anything is mapped or allocated."""

    def __init__(self, f: BinaryIO) -> None:
        shape, fortran, dtype, self.offset = _header(f)
        self.f, self.shape, self.dtype, self.fortran = f, shape, dtype, fortran
        self.map: Any = None
        need = self.offset + math.prod(shape) * dtype.itemsize
        size = file_size(f)
        if size < need:
            raise ValueError(f"file holds {size} bytes, its header declares {need}")
        if size > plausible_size(need):
            raise ValueError(f"file of {size} bytes is far larger than its array ({need} bytes)")
        try:
            f.fileno()
        except (OSError, AttributeError, io.UnsupportedOperation):
            return
        if math.prod(shape) == 0:
            return  # nothing to map (mmap refuses empty ranges); the probe skips it
        order = "F" if fortran else "C"
        self.map = np.memmap(f, dtype=dtype, mode="r", offset=self.offset, shape=shape, order=order)  # type: ignore[call-overload]

    def images(self, probe: ArrayProbe, start: int, stop: int) -> np.ndarray:
        """Images ``start:stop`` as B×H×W×C in native byte order."""
        if self.map is not None:
            return read_batch(self.map, probe, start, stop)
        if self.fortran:  # no contiguous rows to seek to: the whole array, then the slice
            self.f.seek(self.offset)
            data = self.f.read(math.prod(self.shape) * self.dtype.itemsize)
            whole = np.frombuffer(data, dtype=self.dtype).reshape(self.shape, order="F")
            return read_batch(whole, probe, start, stop)
        per_image = math.prod(self.shape[1:] if probe.stacked else self.shape)
        first, count = (start, stop - start) if probe.stacked else (0, 1)
        self.f.seek(self.offset + first * per_image * self.dtype.itemsize)
        data = self.f.read(count * per_image * self.dtype.itemsize)
        shape = (count, *self.shape[1:]) if probe.stacked else self.shape
        part = np.frombuffer(data, dtype=self.dtype).reshape(shape)
        return read_batch(part, probe, 0, count)


def _unreadable(exc: BaseException) -> str:
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror else describe(exc)
    return f"unreadable .npy file: {text}"


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
    native, canonical = fixed_modes(kind, channels, opts.keep_alpha)
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
    arr: _Array, probe: ArrayProbe, start: int, stop: int, target: Mode, allow_nan: bool = False
) -> tuple[np.ndarray | None, list[str | None]]:
    """Images ``start:stop`` in ``target``, and per image why it cannot contribute."""
    try:
        batch = arr.images(probe, start, stop)
    except Exception as exc:  # the file changed or is damaged past its header
        return None, [_unreadable(exc)] * (stop - start)
    converted = convert(batch, target)
    if isinstance(converted, str):
        return None, [converted] * len(batch)
    return converted, finite_reasons(converted, [None] * len(batch), allow_nan)


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
        pixels, reasons = _converted(arr, probe, start, stop, target, opts.allow_nan)
        yield from batch_outcomes(name, probe, start, pixels, reasons)


READER = NpyReader()
