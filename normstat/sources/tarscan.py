"""The headers of an uncompressed tar, read front to back at a few microseconds each.

tarfile spends 20 µs on a ustar header and 50 µs on a pax one (WebDataset's writer gives every
member a pax header: its mtime is a float), which is more than decoding a small image costs; so
uncompressed shards are scanned here, following tarfile's rules (name, ustar prefix, GNU long
names, pax ``path`` and ``size``, base-256 numbers, both checksums, which data blocks a type
has). A sparse member hands the rest of the archive to tarfile, which reads those; compressed
tars are tarfile's throughout (``tar.py``).
"""

from __future__ import annotations

import re
import struct
import tarfile
from collections.abc import Iterator
from typing import BinaryIO, NamedTuple

__all__ = ["BLOCK", "Damaged", "Header", "Sparse", "scan"]

BLOCK = 512
MAX_HEADER = 1 << 20  # a pax or GNU long-name header larger than this is hostile, not read
_REGULAR = (b"0", b"\0", b"7")
_NO_DATA = (b"1", b"2", b"3", b"4", b"5", b"6")  # tarfile reads no data blocks for these
_GNU = (b"L", b"K", b"S")
_EMPTY = bytes(BLOCK)
_RECORD = re.compile(rb"(\d+) ([^=]+)=")
_SIGNED = struct.Struct("148b8x356b")


class Header(NamedTuple):
    """One member: its name, whether it is a regular file, its size, where its data starts."""

    name: str
    regular: bool
    size: int
    offset: int


class Damaged(Exception):
    """Why the scan stopped before the end-of-archive marker."""


class Sparse(Exception):
    """A sparse member at ``offset``: tarfile reads the archive from there on."""

    def __init__(self, offset: int) -> None:
        super().__init__(offset)
        self.offset = offset


def _text(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _number(field: bytes) -> int:
    if field[0] == 0o200:  # GNU base-256
        return int.from_bytes(field[1:], "big")
    if field[0] & 0o200:
        raise Damaged("negative or malformed number in a member header")
    digits = field.split(b"\0", 1)[0].strip()
    try:
        return int(digits, 8) if digits else 0
    except ValueError:
        raise Damaged("malformed number in a member header") from None


def _checked(block: bytes) -> None:
    stored = _number(block[148:156])
    unsigned = 256 + sum(block) - sum(block[148:156])
    if stored != unsigned and stored != 256 + sum(_SIGNED.unpack_from(block)):
        raise Damaged("bad checksum (not a tar header)")


def _pax(data: bytes, into: dict[str, str]) -> None:
    pos = 0
    while (match := _RECORD.match(data, pos)) is not None:
        length = int(match[1])
        if length == 0:
            raise Damaged("invalid pax header")
        key = match[2].decode("utf-8", "surrogateescape")
        into[key] = data[match.end(2) + 1 : match.start(1) + length - 1].decode(
            "utf-8", "surrogateescape"
        )
        pos += length


def _blocks(size: int) -> int:
    return -(-size // BLOCK) * BLOCK


def scan(f: BinaryIO, start: int = 0) -> Iterator[Header]:
    """Each member's header from ``start``; the caller may read a member's data between two
    headers (the scan seeks back to its place). Damaged: the archive ends early or is not a
    tar; Sparse: tarfile must read on from the offset it carries."""
    pos = start
    glob: dict[str, str] = {}
    while True:
        chain = pos  # where this member's (extended) headers start
        pax: dict[str, str] = dict(glob)
        long_name: str | None = None
        while True:
            f.seek(pos)
            block = f.read(BLOCK)
            if len(block) < BLOCK:
                if pos == chain and not block:
                    raise Damaged("ends without the end-of-archive marker (truncated)")
                raise Damaged("ends inside a member header (truncated)")
            if block == _EMPTY and pos == chain:
                return
            _checked(block)
            kind, size = block[156:157], _number(block[124:136])
            pos += BLOCK
            if kind not in (b"x", b"g", b"X", b"L", b"K"):
                break
            if size > MAX_HEADER:
                raise Damaged(f"extended header of {size} bytes")
            data = f.read(size)
            if len(data) < size:
                raise Damaged("ends inside an extended header (truncated)")
            pos += _blocks(size)
            if kind == b"L":
                long_name = _text(data)
            elif kind == b"g":
                _pax(data, glob)
                pax.update(glob)
            elif kind != b"K":
                _pax(data, pax)
        if kind == b"S" or (pax and any(k.startswith("GNU.sparse.") for k in pax)):
            raise Sparse(chain)
        name = _text(block[:100]) if long_name is None else long_name
        if kind == b"\0" and name.endswith("/"):
            kind = b"5"  # an old-style folder
        if block[345] and long_name is None:  # a ustar prefix
            name = f"{_text(block[345:500])}/{name}"
        if "path" in pax:
            name = pax["path"].rstrip("/")
        if "size" in pax:
            try:
                size = int(pax["size"])
            except ValueError:
                size = 0
            if size < 0:
                raise Damaged("negative size in a pax header")
        if kind == b"5":
            name = name.rstrip("/")
        yield Header(name, kind in _REGULAR, size, pos)
        if kind not in _NO_DATA:
            pos += _blocks(size)


def headers_after(f: BinaryIO, offset: int) -> tarfile.TarFile:
    """tarfile reading the archive from ``offset`` (a sparse member and what follows)."""
    f.seek(offset)
    return tarfile.open(fileobj=f, mode="r:", encoding="utf-8")
