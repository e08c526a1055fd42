"""TIFFs on an install without the ``formats`` extra: the ones Pillow reads exactly, and as the
TIFF reader would, are Pillow's (as before that reader existed); every other one is skipped with
the ``pip install`` that reads it. Never a silent first page of several, a band dropped, or
16-bit colour cut to its high byte.

Pillow reads exactly, with the TIFF reader's modes: one page of 8-bit grey or RGB, 8-bit grey or
RGB with an unassociated alpha sample, and 16-bit unsigned grey. Pages the TIFF reader itself
hands to Pillow (palette, CMYK, YCbCr, Lab, 1-bit, MinIsWhite...) are Pillow's here too.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any, BinaryIO

from PIL import TiffImagePlugin

from normstat.modes import Mode
from normstat.options import ReadOptions

from .base import Decoded, Probe, Reader, Skipped
from .pillow import READER as PILLOW

__all__ = ["PillowTiffReader", "without_extra"]

# Tags: BitsPerSample, Photometric, SamplesPerPixel, ExtraSamples, SampleFormat.
_BITS, _PHOTOMETRIC, _SAMPLES, _EXTRA, _FORMAT = 258, 262, 277, 338, 339
_VALUES = (1, 2)  # MinIsBlack, RGB: samples are values (the TIFF reader decodes them itself)
_UNASSOCIATED = 2
# (photometric, samples, bits, alpha sample) Pillow reads exactly with the TIFF reader's modes
_EXACT = {(1, 1, 8, False), (2, 3, 8, False), (1, 2, 8, True), (2, 4, 8, True), (1, 1, 16, False)}


def _tuple(value: object) -> tuple[int, ...]:
    if isinstance(value, tuple | list):
        return tuple(int(v) for v in value)
    return () if value is None else (int(value),)  # type: ignore[call-overload]


def _first_ifd(f: BinaryIO) -> tuple[Any, bool]:
    """The first page's tags (Pillow's own IFD parser: no pixel mode needed, so a 5-band file
    is described, not refused as an unknown mode) and whether other pages follow it."""
    f.seek(0)
    head = f.read(8)
    if head[2:3] == b"+":  # BigTIFF
        head += f.read(8)
    ifd = TiffImagePlugin.ImageFileDirectory_v2(head)
    first = ifd.next
    f.seek(first)
    ifd.load(f)
    return ifd, ifd.next not in (0, first)


def refusal(f: BinaryIO) -> str | None:
    """Why Pillow would not read this TIFF as the TIFF reader does; None when it would, or when
    its tags do not parse (Pillow's own reading then gives the reason)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tags, more = _first_ifd(f)
            photometric = int(tags.get(_PHOTOMETRIC, 1))
            samples = int(tags.get(_SAMPLES, 1))
            bits = _tuple(tags.get(_BITS, 1)) or (1,)
            extra = _tuple(tags.get(_EXTRA))
            formats = set(_tuple(tags.get(_FORMAT))) or {1}
    except Exception:
        return None
    finally:
        f.seek(0)
    if more:
        return "TIFF of several pages"
    if photometric not in _VALUES or bits[0] not in (8, 16, 32, 64):
        return None  # a kind the TIFF reader gives to Pillow as well
    alpha = bool(extra) and extra[-1] == _UNASSOCIATED
    kind = (photometric, samples, bits[0], alpha)
    if kind in _EXACT and len(set(bits)) == 1 and formats == {1}:
        return None
    what = "float" if 3 in formats else "signed" if 2 in formats else "unsigned"
    return f"TIFF of {samples} {bits[0]}-bit {what} samples per pixel"


class PillowTiffReader:
    """TIFFs without tifffile: Pillow's reading of those it reads exactly, a skip otherwise."""

    name = "tiff"
    batched = False

    def __init__(self, reason: str) -> None:
        self.reason = reason  # the missing extra's: what to install

    def _skip(self, f: BinaryIO, name: str) -> Skipped | None:
        why = refusal(f)
        return None if why is None else Skipped(name, f"{why}: {self.reason}")

    def probe(self, f: BinaryIO, name: str, opts: ReadOptions) -> Probe | Skipped | None:
        return self._skip(f, name) or PILLOW.probe(f, name, opts)

    def load(
        self, f: BinaryIO, name: str, target: Mode | None, opts: ReadOptions
    ) -> tuple[Probe | Skipped | None, Decoded | Skipped | None]:
        skip = self._skip(f, name)
        return (skip, skip) if skip else PILLOW.load(f, name, target, opts)

    def read(
        self,
        f: BinaryIO,
        name: str,
        target: Mode,
        opts: ReadOptions,
        start: int = 0,
        stop: int | None = None,
    ) -> Iterator[Decoded | Skipped]:
        skip = self._skip(f, name)
        if skip is None:
            yield from PILLOW.read(f, name, target, opts, start, stop)
        elif start == 0 and (stop is None or stop > 0):
            yield skip


def without_extra(reason: str) -> Reader:
    """The TIFF reader of an install without tifffile (``reason`` names the extra)."""
    return PillowTiffReader(reason)
