"""Memory bounds that hold before a byte of pixel data is read: every reader learns the file's
size first and reads its header from a bounded prefix, so a hostile file (a 1 GiB sparse file
that starts with the JPEG magic, a PNG with a 1 GiB chunk before its pixels) is refused with a
reason instead of being read whole into memory.

The bound is generous on purpose: a file may hold at most ``2 × raw pixel bytes + 64 MiB``.
Compressed formats are smaller than their raw pixels (even a quality-100 JPEG of noise or a
PNG of incompressible data is within a few percent of raw), so twice raw leaves room for any
real encoder's overhead, and 64 MiB covers metadata (EXIF, ICC profiles, XMP, thumbnails)
whatever the image size. Files up to 64 MiB are read without asking, as before.
"""

from __future__ import annotations

import io
import os
from typing import IO, Any

from normstat.fileops import ByteRange

__all__ = [
    "ALLOWANCE",
    "HEADER_BUDGET",
    "Window",
    "file_size",
    "mib",
    "oversized",
    "plausible_size",
]

ALLOWANCE = 64 << 20  # bytes any file may hold beyond twice its pixels (metadata, thumbnails)
HEADER_BUDGET = 16 << 20  # bytes a large file's header must be found in (before the pixels)


def file_size(f: IO[bytes]) -> int:
    """The file's size in bytes: from its descriptor when it has one (no read, no seek),
    else by seeking to the end (any seekable file object a source may hand out). The file's
    position is left at 0."""
    try:
        size = os.fstat(f.fileno()).st_size
    except (OSError, AttributeError, ValueError, io.UnsupportedOperation):
        size = f.seek(0, io.SEEK_END)
    f.seek(0)
    return size


def plausible_size(raw: int) -> int:
    """The largest file an image of ``raw`` pixel bytes may come in (see the module docstring)."""
    return 2 * raw + ALLOWANCE


def mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def oversized(size: int, raw: int, what: str) -> str | None:
    """Why a file of ``size`` bytes is refused for holding ``what`` (``raw`` pixel bytes), or
    None when it is plausible."""
    limit = plausible_size(raw)
    if size <= limit:
        return None
    return (
        f"file of {size} bytes is far larger than its {what} could need"
        f" (at most {limit} bytes); refusing to read it"
    )


class Window(ByteRange):
    """The first ``limit`` bytes of a file, as a read-only file of that length: a parser given
    it can read at most ``limit`` bytes, whatever the header it reads claims. ``exhausted`` says
    whether a read reached the limit (the header did not fit) rather than the file's end."""

    def __init__(self, f: IO[bytes], limit: int) -> None:
        super().__init__(f, 0, min(limit, file_size(f)))
        self.limit, self.exhausted = limit, False
        self.truncated = self.size == limit

    def readinto(self, buffer: Any) -> int:
        if len(buffer) > self.size - self.pos and self.truncated:
            self.exhausted = True
        return super().readinto(buffer)
