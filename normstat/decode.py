"""One file → pixels in the dataset's mode, or a ``Skipped`` value saying why not.

Nothing here raises for a bad image: crashers, bombs, truncated files and formats Pillow would
read with silent precision loss all come back as ``Skipped(path, reason)``.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO

import numpy as np
from PIL import Image, UnidentifiedImageError

from . import jpeg, png
from .modes import Mode
from .sources import has_image_extension

__all__ = ["Decoded", "Probe", "Skipped", "canonical_mode", "decode", "load", "probe"]

# Decoders that give Pillow's pixels faster, for the files they are sure of (see their modules).
_FAST = {jpeg.MAGIC: jpeg.read, png.MAGIC: png.read}
_GRAY = {"1", "L", "LA", "La", "I", "F"}
_ALPHA = {"LA", "La", "PA", "RGBA", "RGBa"}


@dataclass(frozen=True)
class Skipped:
    """An image that does not contribute, and why; counted into the manifest."""

    path: str
    reason: str


@dataclass(frozen=True)
class Probe:
    """What the header says: Pillow's mode and the dataset mode the image maps to natively."""

    native: str
    canonical: str


@dataclass(frozen=True)
class Decoded:
    """Pixels as an H×W×C array of the target mode's dtype; ``native`` is the mode on disk.
    ``image``, when set, is a Pillow image of the same pixels (8-bit modes), kept so histograms
    and thumbnails need no second copy."""

    pixels: np.ndarray
    native: str
    image: Image.Image | None = None


def _reason(exc: BaseException, max_pixels: int | None) -> str:
    if isinstance(exc, Image.DecompressionBombError | Image.DecompressionBombWarning):
        size = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = f"{size.group(1)} pixels" if size else "image size"
        return f"decompression bomb: {pixels} over the limit of {max_pixels} pixels"
    if isinstance(exc, UnidentifiedImageError):
        return "not an image: cannot identify image file"
    if isinstance(exc, MemoryError):
        return "out of memory while decoding"
    text = str(exc).replace("\n", " ").strip() or type(exc).__name__
    return f"unreadable: {text}"


@contextmanager
def _opened(path: str | IO[bytes], max_pixels: int | None) -> Iterator[Image.Image]:
    """Open lazily. A bomb warning is an error here, so the limit is one rule, not two; other
    warnings (malformed tags, palette transparency) are chatter: the outcome is what counts."""
    before, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
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


def load(
    path: str, target: Mode | None, max_pixels: int | None, keep_alpha: bool
) -> tuple[Probe | Skipped | None, Decoded | Skipped | None]:
    """Header probe and (when ``target`` is given) pixels in ``target``, from one open.

    The probe is ``None`` for a file that is not an image and not named like one (silently
    ignored); the pixels are ``None`` only when no ``target`` was asked for.
    """
    try:
        fh = open(path, "rb")  # noqa: SIM115 - one open serves the JPEG sniff and Pillow
    except OSError as exc:
        skip = Skipped(path, _reason(exc, max_pixels))
        return skip, skip
    with fh:
        return _load_open(fh, path, target, max_pixels, keep_alpha)


def _load_open(
    fh: IO[bytes], path: str, target: Mode | None, max_pixels: int | None, keep_alpha: bool
) -> tuple[Probe | Skipped | None, Decoded | Skipped | None]:
    fast = None
    try:
        magic = fh.read(8)
        reader = _FAST.get(magic) or _FAST.get(magic[:3])
        if reader is not None:
            fast = reader(magic + fh.read(), target.name if target else None, max_pixels)
    except OSError:  # Pillow's open below words the reason
        pass
    fh.seek(0)
    if fast is not None:
        native, arr, image, orientation = fast
        pixels = None if arr is None else _oriented(arr, native, image, orientation)
        return Probe(native, native), pixels
    try:
        with _opened(fh, max_pixels) as im:
            head, rawmode = _probe_open(im, path, keep_alpha)
            if isinstance(head, Skipped):
                return head, head
            if target is None:
                return head, None
            return head, _decode_open(im, path, target, max_pixels, rawmode)
    except UnidentifiedImageError as exc:
        skip = Skipped(path, _reason(exc, max_pixels))
        return (skip if has_image_extension(os.path.basename(path)) else None), skip
    except Exception as exc:
        skip = Skipped(path, _reason(exc, max_pixels))
        return skip, skip


def probe(path: str, max_pixels: int | None, keep_alpha: bool) -> Probe | Skipped | None:
    """Read the header only. ``None``: not an image and not named like one (silently ignored)."""
    return load(path, None, max_pixels, keep_alpha)[0]


def _read_png16(path: str) -> tuple[np.ndarray, bool]:
    """Exact 16-bit PNG samples (H×W×planes, uint16) via pypng; returns (array, has_alpha)."""
    import png  # pypng

    width, height, rows, info = png.Reader(filename=path).asDirect()
    planes = info["planes"]
    arr = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows])
    return arr.reshape(height, width, planes), bool(info.get("alpha"))


def _orient(arr: np.ndarray, orientation: int) -> np.ndarray:
    """EXIF orientation (1–8) applied to an H×W×C array, as ImageOps.exif_transpose does."""
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.transpose(1, 0, 2),
        6: lambda a: a.transpose(1, 0, 2)[:, ::-1],
        7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1],
        8: lambda a: a.transpose(1, 0, 2)[::-1],
    }
    op = ops.get(orientation)
    return np.ascontiguousarray(op(arr)) if op else arr


def _oriented(arr: np.ndarray, native: str, image: Image.Image | None, orientation: int) -> Decoded:
    """EXIF orientation applied; the Pillow image is kept only when it still shows the pixels."""
    if orientation != 1:
        return Decoded(_orient(arr, orientation), native)
    return Decoded(arr, native, image)


def _luma16(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601-2 luma with Pillow's weights, in integers so 16-bit values stay exact."""
    r, g, b = (rgb[..., i].astype(np.uint64) for i in range(3))
    return ((r * 299 + g * 587 + b * 114 + 500) // 1000).astype(np.uint16)[..., None]


def _to_target(arr: np.ndarray, src_max: float, target: Mode) -> np.ndarray:
    """Convert an H×W×C integer/float array (colour if C ≥ 3) to ``target`` exactly or scaled."""
    planes = arr.shape[2]
    colour = planes >= 3
    alpha = arr[..., planes - 1 :] if planes in (2, 4) else None
    arr = arr[..., :3] if colour else arr[..., :1]
    if target.color and not colour:
        arr = np.repeat(arr, 3, axis=2)
    elif not target.color and colour:
        arr = _luma16(arr) if arr.dtype == np.uint16 else _luma16(arr.astype(np.uint16))
    return with_alpha_and_depth(arr, alpha, src_max, target)


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


def decode(path: str, target: Mode, max_pixels: int | None) -> Decoded | Skipped:
    """Decode the first frame, apply EXIF orientation, convert to ``target``."""
    pixels = load(path, target, max_pixels, target.alpha)[1]
    assert pixels is not None
    return pixels


def _decode_open(
    im: Image.Image, path: str, target: Mode, max_pixels: int | None, wide_rawmode: str | None
) -> Decoded | Skipped:
    try:
        native = im.mode
        wide = wide_rawmode is not None
        if not wide:
            im.load()  # before anything else reads: a failed load must not be swallowed
        try:
            orientation = int(im.getexif().get(0x0112, 1))
        except Exception:  # broken EXIF blocks do not make the pixels wrong
            orientation = 1
        image = None
        if wide:
            raw, _ = _read_png16(path)
            arr = _to_target(raw, 65535, target)
        elif native == "F" or native == "I" or native.startswith("I;16"):
            raw = np.asarray(im)
            if native == "F":
                if target.dtype != "float32":
                    return Skipped(
                        path, f"float image (mode F) has no range to map to {target.name}"
                    )
                if not np.isfinite(raw).all():
                    return Skipped(path, "non-finite pixel values (NaN or infinity)")
                arr = np.ascontiguousarray(raw, dtype=np.float32)[..., None]
                if target.color:  # RGB;F: grayscale replicated, as for 8-bit images
                    arr = np.repeat(arr, 3, axis=2)
            else:
                lo, hi = int(raw.min()), int(raw.max())
                if lo < 0 or hi > 65535:
                    return Skipped(path, f"32-bit integer pixels outside 0..65535 ({lo}..{hi})")
                arr = _to_target(raw.astype(np.uint16)[..., None], 65535, target)
        else:
            arr, image = _decode_8bit(im, target)
        return _oriented(arr, native, image, orientation)
    except Exception as exc:
        return Skipped(path, _reason(exc, max_pixels))


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
    return _to_target(arr, 255, target), None
