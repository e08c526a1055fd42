"""The Pillow reader: one image file → pixels in the dataset's mode, or a ``Skipped`` value.

Nothing here raises for a bad image: crashers, bombs, truncated files and formats Pillow would
read with silent precision loss all come back as ``Skipped(name, reason)``. Plain JPEGs and PNGs
take fast paths (``jpeg.py``, ``png.py``) that give Pillow's pixels exactly.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from functools import lru_cache
from typing import IO, BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from normstat.modes import Mode
from normstat.options import ReadOptions

from . import jpeg, png, png16
from .base import NON_FINITE, Decoded, Probe, Skipped, finite_reasons, unreadable
from .convert import convert, oriented
from .limits import ALLOWANCE, HEADER_BUDGET, Window, file_size, mib, oversized

__all__ = ["READER", "PillowReader", "canonical_mode", "has_image_extension", "reason"]

# Decoders that give Pillow's pixels faster, for the files they are sure of (see their modules).
_FAST = {jpeg.MAGIC: jpeg.read, png.MAGIC: png.read}
_GRAY = {"1", "L", "LA", "La", "I", "F"}
_ALPHA = {"LA", "La", "PA", "RGBA", "RGBa"}


@lru_cache(maxsize=1)
def _image_extensions() -> frozenset[str]:
    return frozenset(ext.lower() for ext in Image.registered_extensions())


def has_image_extension(name: str) -> bool:
    """True for names whose extension Pillow registers: such files are reported if unreadable."""
    return os.path.splitext(name)[1].lower() in _image_extensions()


def reason(exc: BaseException, max_pixels: int | None) -> str:
    """Why an image could not be read, in words."""
    if isinstance(exc, Image.DecompressionBombError | Image.DecompressionBombWarning):
        size = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = f"{size.group(1)} pixels" if size else "image size"
        return f"decompression bomb: {pixels} over the limit of {max_pixels} pixels"
    if isinstance(exc, UnidentifiedImageError):
        return "not an image: cannot identify image file"
    if isinstance(exc, MemoryError):
        return "out of memory while decoding"
    return unreadable(exc)


@contextmanager
def _opened(fh: IO[bytes], max_pixels: int | None) -> Iterator[Image.Image]:
    """Open lazily. A bomb warning is an error here, so the limit is one rule, not two; other
    warnings (malformed tags, palette transparency) are chatter: the outcome is what counts."""
    before, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(fh) as im:
                yield im
    finally:
        Image.MAX_IMAGE_PIXELS = before


def _wide_rawmode(im: Image.Image) -> str | None:
    """The 16-bit raw mode (e.g. "RGB;16B", "LA;16B") when Pillow would keep only the high byte
    of each sample; None when Pillow reads the file at full precision."""
    if im.mode not in ("L", "LA", "RGB", "RGBA", "P"):
        return None
    for tile in getattr(im, "tile", []):  # only ImageFile has tiles
        args = tile.args if hasattr(tile, "args") else tile[3]
        rawmode = args if isinstance(args, str) else (args[0] if args else "")
        if isinstance(rawmode, str) and ";16" in rawmode:
            return rawmode
    return None


def _precision_problem(im: Image.Image, wide_rawmode: str | None) -> str | None:
    """A reason to skip when no exact reader exists for what Pillow would truncate."""
    if wide_rawmode and im.format != "PNG":
        return f"16-bit {im.mode} {im.format}: Pillow keeps only the high byte; no exact reader"
    if im.format == "TIFF":
        samples = int(getattr(im, "tag_v2", {}).get(277, 1))
        if samples > len(im.getbands()):
            return (
                f"TIFF has {samples} samples per pixel but Pillow reads {len(im.getbands())};"
                " refusing a partial read"
            )
    return None


def canonical_mode(native: str, has_alpha: bool, keep_alpha: bool) -> str:
    """The dataset mode an image maps to without losing information (alpha only if kept)."""
    if native == "F":
        return "F"
    if native == "I" or native.startswith("I;16"):
        return "I;16"
    gray = native in _GRAY
    alpha = keep_alpha and has_alpha
    if gray:
        return "LA" if alpha else "L"
    return "RGBA" if alpha else "RGB"


def _has_alpha(im: Image.Image) -> bool:
    return im.mode in _ALPHA or "transparency" in im.info


def _probe_open(im: Image.Image, path: str, keep_alpha: bool) -> tuple[Probe | Skipped, str | None]:
    rawmode = _wide_rawmode(im)
    problem = _precision_problem(im, rawmode)
    if problem:
        return Skipped(path, problem), rawmode
    if rawmode:  # Pillow opens 16-bit gray+alpha PNGs as RGBA: the raw mode tells
        return Probe(im.mode, "I;16" if rawmode.startswith("L") else "RGB;16"), rawmode
    return Probe(im.mode, canonical_mode(im.mode, _has_alpha(im), keep_alpha)), rawmode


def _orientation(im: Image.Image) -> int:
    try:
        return int(im.getexif().get(0x0112, 1))
    except Exception:  # broken EXIF blocks do not make the pixels wrong
        return 1


def _as_read(stored: tuple[int, int], orientation: int) -> tuple[int, int]:
    """(height, width) of the pixels once EXIF orientation 5-8 (a transpose) is applied."""
    height, width = stored
    return (width, height) if orientation in (5, 6, 7, 8) else (height, width)


def _load(
    fh: IO[bytes], path: str, target: Mode | None, opts: ReadOptions
) -> tuple[Probe | Skipped | None, Decoded | Skipped | None]:
    max_pixels = opts.max_pixels
    fast = None
    try:
        size = file_size(fh)
        magic = fh.read(8)
        # Small files are read as they are; a large one only once its header justifies it.
        whole = size <= ALLOWANCE or _large_file(fh, path, size, max_pixels)
        if isinstance(whole, Skipped):
            return whole, whole
        reader = _FAST.get(magic) or _FAST.get(magic[:3])
        if reader is not None and whole:
            fh.seek(0)
            fast = reader(fh.read(), target.name if target else None, max_pixels)
    except OSError:  # Pillow's open below words the reason
        pass
    fh.seek(0)
    if fast is not None:
        native, arr, image, orientation, stored = fast
        pixels = None if arr is None else oriented(arr, native, image, orientation)
        return Probe(native, native, size=_as_read(stored, orientation)), pixels
    try:
        with _opened(fh, max_pixels) as im:
            head, rawmode = _probe_open(im, path, opts.keep_alpha)
            if isinstance(head, Skipped):
                return head, head
            if target is None:
                return replace(head, size=_as_read(im.size[::-1], _orientation(im))), None
            got = _decode_open(im, fh, path, target, max_pixels, rawmode, opts.allow_nan)
            if isinstance(got, Decoded):
                head = replace(head, size=got.pixels.shape[:2])
            return head, got
    except UnidentifiedImageError as exc:
        skip = Skipped(path, reason(exc, max_pixels))
        return (skip if has_image_extension(os.path.basename(path)) else None), skip
    except Exception as exc:
        skip = Skipped(path, reason(exc, max_pixels))
        return skip, skip


_SAMPLE_BYTES = {"I": 4, "F": 4, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}


def _large_file(fh: IO[bytes], path: str, size: int, max_pixels: int | None) -> Skipped | bool:
    """Whether a file over ``ALLOWANCE`` may be read: its header is parsed from at most
    ``HEADER_BUDGET`` bytes (Pillow keeps every metadata chunk it meets), and the file must not
    be larger than its first image, times its frames, could need. True: one image's worth, so
    the fast paths may read it whole; False: Pillow reads it (several frames, or a header that
    fails here as it will fail there, with its own reason)."""
    window = Window(fh, HEADER_BUDGET)
    try:
        with _opened(io.BufferedReader(window), max_pixels) as im:
            width, height = im.size
            raw = width * height * len(im.getbands()) * _SAMPLE_BYTES.get(im.mode, 1)
            what = f"{width}×{height} {im.mode} image"
            if oversized(size, raw, what) is None:
                return True
            try:
                frames = int(getattr(im, "n_frames", 1))
            except Exception:  # a broken later frame: the first is what is read
                frames = 1
            if window.exhausted:  # more frames than the header budget shows: cannot tell
                return False
            why = oversized(size, raw * frames, f"{what} × {frames} frames" if frames > 1 else what)
            return Skipped(path, why) if why else False
    except Exception:
        if window.exhausted:
            return Skipped(
                path,
                f"no image header in the first {mib(HEADER_BUDGET)} of a file of {size} bytes;"
                " refusing to read further",
            )
        return False
    finally:
        fh.seek(0)


def _read_png16(fh: IO[bytes]) -> np.ndarray:
    """Exact 16-bit PNG samples (H×W×planes, uint16): libpng when installed, else pypng."""
    fh.seek(0)
    return png16.decode(fh.read())


def _converted(arr: np.ndarray, target: Mode) -> np.ndarray:
    out = convert(arr, target)
    assert not isinstance(out, str)  # integer sources convert to any mode
    return out


def _decode_open(
    im: Image.Image,
    fh: IO[bytes],
    path: str,
    target: Mode,
    max_pixels: int | None,
    wide_rawmode: str | None,
    allow_nan: bool = False,
) -> Decoded | Skipped:
    if target.bands:
        return Skipped(path, f"{im.mode} image has no conversion to band mode {target.name}")
    try:
        native = im.mode
        wide = wide_rawmode is not None
        if not wide:
            im.load()  # before anything else reads: a failed load must not be swallowed
        orientation = _orientation(im)
        image = None
        if wide:
            arr = _converted(_read_png16(fh), target)
        elif native == "F" or native == "I" or native.startswith("I;16"):
            raw = np.asarray(im)
            if native == "F":
                if target.dtype != "float32":
                    return Skipped(
                        path, f"float image (mode F) has no range to map to {target.name}"
                    )
                if finite_reasons(raw[None], [None], allow_nan)[0]:
                    return Skipped(path, NON_FINITE)
                arr = _converted(np.ascontiguousarray(raw, dtype=np.float32)[..., None], target)
            else:
                lo, hi = int(raw.min()), int(raw.max())
                if lo < 0 or hi > 65535:
                    return Skipped(path, f"32-bit integer pixels outside 0..65535 ({lo}..{hi})")
                arr = _converted(raw.astype(np.uint16)[..., None], target)
        else:
            arr, image = _decode_8bit(im, target)
        return oriented(arr, native, image, orientation)
    except Exception as exc:
        return Skipped(path, reason(exc, max_pixels))


def _decode_8bit(im: Image.Image, target: Mode) -> tuple[np.ndarray, Image.Image | None]:
    """8-bit sources go through Pillow's own conversions, as torchvision's loader does."""
    eight = target.name if target.dtype == "uint8" else ("RGB" if target.color else "L")
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")  # Pillow warns converting such palettes straight to RGB
    if im.mode == "LAB" and eight != "LAB":
        im = im.convert("RGB")
    conv = im if im.mode == eight else im.convert(eight)
    arr = np.asarray(conv)
    if arr.ndim == 2:
        arr = arr[..., None]
    if target.dtype == "uint8":
        return np.ascontiguousarray(arr), conv
    return _converted(arr, target), None


class PillowReader:
    """Every format Pillow opens (first frame; EXIF orientation applied); one image a file."""

    name = "pillow"
    batched = False

    def load(
        self, f: BinaryIO, name: str, target: Mode | None, opts: ReadOptions
    ) -> tuple[Probe | Skipped | None, Decoded | Skipped | None]:
        """Header probe and (when ``target`` is given) pixels in ``target``, from one read.
        The probe is None for a file that is not an image and not named like one (ignored
        silently); the pixels are None only when no ``target`` was asked for."""
        return _load(f, name, target, opts)

    def probe(self, f: BinaryIO, name: str, opts: ReadOptions) -> Probe | Skipped | None:
        return self.load(f, name, None, opts)[0]

    def read(
        self,
        f: BinaryIO,
        name: str,
        target: Mode,
        opts: ReadOptions,
        start: int = 0,
        stop: int | None = None,
    ) -> Iterator[Decoded | Skipped]:
        if start == 0 and (stop is None or stop > 0):
            pixels = _load(f, name, target, opts)[1]  # keep_alpha shapes only the probe
            assert pixels is not None
            yield pixels


READER = PillowReader()
