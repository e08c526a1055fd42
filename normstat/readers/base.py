"""The reader contract: what a file's bytes mean.

A reader gets a binary file object (never a path: only sources open files) and the item's display
name, and returns decoded pixels in the dataset mode, or a ``Skipped`` value saying why not; bad
bytes never raise. A file holds ``probe.count`` images (more than one for a stack), named by
``image_name``; ``read`` yields a slice of them in order.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol

import numpy as np

from normstat.errors import describe
from normstat.modes import Mode
from normstat.options import ReadOptions

__all__ = [
    "NON_FINITE",
    "BatchReader",
    "Decoded",
    "Probe",
    "Reader",
    "SingleImageReader",
    "Skipped",
    "batch_outcomes",
    "finite_reasons",
    "image_name",
    "one_line",
    "parse_image_name",
    "unreadable",
]

NON_FINITE = "non-finite pixel values (NaN or infinity)"


@dataclass(frozen=True)
class Skipped:
    """An image that does not contribute, and why; counted into the manifest. The reason is
    made one deterministic line here, whoever words it: manifests of the same data compare
    equal, and a reason (often a library's message) never writes control characters."""

    path: str
    reason: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason", one_line(self.reason))


@dataclass(frozen=True)
class Probe:
    """What the header says: the mode on disk (``native``), the dataset mode the image maps to
    without loss (``canonical``); ``count`` images (a stack's subclass sets more than one).
    ``size``: (height, width) as read (EXIF orientation applied) when the header tells, so a
    verb needing one shape (``apply --stack``) refuses a mixed split before decoding it."""

    native: str
    canonical: str
    size: tuple[int, int] | None = field(default=None, kw_only=True, compare=False)

    count = 1  # class attributes, not fields: a stack's probe declares them as fields
    stacked = False


@dataclass(frozen=True)
class Decoded:
    """Pixels as an H×W×C array of the target mode's dtype; ``native`` is the mode on disk.
    ``image``, when set, is a Pillow image of the same pixels (8-bit modes), kept so histograms
    and thumbnails need no second copy. ``nodata``: the value the file declares as "no data"
    (GDAL_NODATA), for masks; the pixels are as stored."""

    pixels: np.ndarray
    native: str
    image: Any = None  # PIL.Image.Image
    nodata: float | None = None  # the file's own nodata value (a TIFF's GDAL_NODATA tag)


class Reader(Protocol):
    """Bytes → images; conformance: tests/test_contracts.py. ``batched`` readers (stacks) are
    reduced by compute a batch at a time, after the files of single images."""

    name: str
    batched: bool

    def probe(self, f: BinaryIO, name: str, opts: ReadOptions) -> Probe | Skipped | None:
        """The header only. None: not an image this reader knows, to be ignored silently."""
        ...

    def read(
        self,
        f: BinaryIO,
        name: str,
        target: Mode,
        opts: ReadOptions,
        start: int = 0,
        stop: int | None = None,
    ) -> Iterator[Decoded | Skipped]:
        """Images ``start:stop`` (default: all) in ``target``, in order, one value each."""
        ...


class SingleImageReader(Reader, Protocol):
    """A reader of one-image files, which compute probes and decodes from one read."""

    def load(
        self, f: BinaryIO, name: str, target: Mode | None, opts: ReadOptions
    ) -> tuple[Probe | Skipped | None, Decoded | Skipped | None]:
        """The probe and (when ``target`` is given) the pixels."""
        ...


class BatchReader(Reader, Protocol):
    """A reader of stacks, which compute reduces a batch of images at a time."""

    def batch(
        self, f: BinaryIO, probe: Any, start: int, stop: int, target: Mode
    ) -> tuple[np.ndarray | None, list[str | None]]:
        """Images ``start:stop`` as one B×H×W×C array in ``target`` and, per image, why it
        cannot contribute (None: it can); no array when none can."""
        ...


def batch_outcomes(
    name: str,
    probe: Any,
    start: int,
    pixels: np.ndarray | None,
    reasons: list[str | None],
    nodata: float | None = None,
) -> Iterator[Decoded | Skipped]:
    """A batch reader's ``read``: images ``start:`` of ``probe`` from its batch (B×H×W×C
    ``pixels`` and, per image, why it cannot contribute), each named as a stack member."""
    for i, why in enumerate(reasons):
        if why is not None or pixels is None:
            yield Skipped(image_name(name, start + i, probe.stacked), why or "unreadable")
        else:
            yield Decoded(pixels[i], probe.native, nodata=nodata)


def finite_reasons(
    pixels: np.ndarray, reasons: list[str | None], allow_nan: bool
) -> list[str | None]:
    """``reasons`` (one per image of the batch ``pixels``), with ``NON_FINITE`` for each float
    image holding an infinity, or a NaN unless ``allow_nan`` (NaN nodata, masked later). The
    pixels are kept by the caller, so that a NaN nodata mask can still take them."""
    if pixels.dtype.kind != "f":
        return reasons
    ok = ~np.isinf(pixels) if allow_nan else np.isfinite(pixels)
    ok_images = ok.reshape(len(pixels), -1).all(axis=1)
    return [
        why or (None if good else NON_FINITE) for why, good in zip(reasons, ok_images, strict=True)
    ]


_MEMBER = re.compile(r"^(.*)\[(\d+)\]$")


def image_name(name: str, index: int, stacked: bool) -> str:
    """``stack.npy[12]`` for image 12 of a stack; the file's own name for a single image."""
    return f"{name}[{index}]" if stacked else name


def parse_image_name(name: str) -> tuple[str, int] | None:
    """``stack.npy[12]`` → ("stack.npy", 12); None for a name that is not a stack member."""
    match = _MEMBER.match(name)
    return (match[1], int(match[2])) if match else None


_ADDRESS = re.compile(r" (?:object )?at 0x[0-9a-fA-F]+")  # in reprs: differs between runs
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
MAX_REASON = 300  # characters: a library may quote a whole (hostile) header in its message


def one_line(text: str) -> str:
    """``text`` as one line: control characters escaped (``\\x1b``), memory addresses in
    object reprs dropped, cut to ``MAX_REASON`` characters."""
    text = _ADDRESS.sub("", text.replace("\r\n", " ").replace("\n", " ")).strip()
    text = _CONTROL.sub(lambda m: ascii(m[0])[1:-1], text)
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"


def unreadable(exc: BaseException) -> str:
    """The reason for a file that cannot even be read (permissions, I/O errors, a vanished item,
    not a regular file): the system's words without errno number or path, the same each run."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"unreadable: {exc.strerror}"
    return f"unreadable: {describe(exc)}"
