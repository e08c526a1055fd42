"""WebDataset tar shards: members listed, streamed and opened by name without extracting.

Which members count follows WebDataset's ``tar_file_iterator`` and ``group_by_keys``: regular
files only (links, folders and devices are ignored, as it ignores them), ``__meta__`` names and
names without an extension (no sample key) ignored, and so are the components its decoders read
as data, never as images (``.cls``, ``.json``, ``.txt``, ...: ``_DATA``; the readers would
ignore them too, at the cost of a failed image probe each). Every other member is an item, its
content deciding whether it is an image. Names that would escape an output folder and repeated
names are items that cannot be read, listed as skipped with the reason (WebDataset would fail
on a repeated name).

Uncompressed tars are scanned by ``tarscan`` (a seekable file: sources hand out nothing else),
compressed ones by tarfile's ``r|*`` stream. A damaged tar gives the members read before the
damage, then one error for the container itself (``Item(root, "shard.tar")``).
"""

from __future__ import annotations

import errno
import io
import lzma
import re
import tarfile
import zlib
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, NamedTuple

from normstat.fileops import ByteRange, stays_inside

from .base import Item, Source
from .tarscan import MAX_HEADER, Damaged, Header, Sparse, headers_after, scan

__all__ = ["MAX_IN_MEMORY", "container_error", "index", "members", "open_member", "stream"]

# Members up to this size are read into memory: readers.limits.ALLOWANCE, the size the readers
# read whole without asking (sources may not import readers). A larger member is handed out as
# a window on the container, so the readers' own bounds decide how much of it is read.
MAX_IN_MEMORY = 64 << 20
_BROKEN: tuple[type[Exception], ...] = (tarfile.TarError, OSError, EOFError, ValueError)
_BROKEN += (OverflowError, zlib.error, lzma.LZMAError, Damaged)
_HEADERS: Any = tarfile  # its header errors are not in the type stubs
_META = re.compile(r"__[^/]*__($|/)")
_COMPRESSED = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")
_DATA = frozenset(  # WebDataset's basichandlers, video and audio: never images
    """txt text transcript cls cls2 index inx id json jsn pkl pickle pyd pth ten tb mp msg cbor
    npz mp4 ogv avi mov h264 mpg webm wmv flac mp3 sox wav m4a ogg wma""".split()  # noqa: SIM905
)


class _Info(tarfile.TarInfo):
    """A header that records on its archive why tarfile's scan stopped (it ends silently at a
    damaged header past the first), and refuses extended headers too large to hold."""

    @classmethod
    def fromtarfile(cls, tf: tarfile.TarFile) -> _Info:
        try:
            return super().fromtarfile(tf)
        except tarfile.HeaderError as exc:
            tf.normstat_stop = exc  # type: ignore[attr-defined]
            raise

    def _bounded(self) -> None:
        if self.size > MAX_HEADER:
            raise _HEADERS.InvalidHeaderError(f"extended header of {self.size} bytes")

    def _proc_gnulong(self, tf: tarfile.TarFile) -> Any:
        self._bounded()
        return super()._proc_gnulong(tf)  # type: ignore[misc]

    def _proc_pax(self, tf: tarfile.TarFile) -> Any:
        self._bounded()
        return super()._proc_pax(tf)  # type: ignore[misc]


def _stop_reason(tf: tarfile.TarFile) -> str | None:
    """Why tarfile's scan ended early, when it ended without an exception; None: properly."""
    stop = getattr(tf, "normstat_stop", None)
    if stop is None or isinstance(stop, _HEADERS.EOFHeaderError):
        return None
    if isinstance(stop, _HEADERS.EmptyHeaderError):
        return "ends without the end-of-archive marker (truncated)"
    if isinstance(stop, _HEADERS.TruncatedHeaderError):
        return "ends inside a member header (truncated)"
    return f"damaged member header at byte {tf.offset}: {stop}"


class _Member(NamedTuple):
    """A header, and tarfile's own when tarfile read it (its data is then read through it)."""

    head: Header
    info: tarfile.TarInfo | None = None


def _from_tarfile(tf: tarfile.TarFile) -> Iterator[_Member]:
    while (info := tf.next()) is not None:
        tf.members.clear()  # type: ignore[attr-defined]  # kept per member: memory would grow
        yield _Member(Header(info.name, info.isreg(), info.size, info.offset_data), info)
    why = _stop_reason(tf)
    if why is not None:
        raise Damaged(why)


def _walk(f: BinaryIO, streamed: bool) -> Iterator[tuple[_Member, tarfile.TarFile | None]]:
    """Every member with the TarFile that reads its data (None: read at its offset). Raises
    OSError when ``f`` is no tar at all, Damaged (or another of ``_BROKEN``) when it ends
    early. ``streamed``: compressed tars front to back only."""
    magic = f.read(6)
    f.seek(0)
    if magic.startswith(_COMPRESSED):
        tf = _open_tar(f, streamed)
        for m in _from_tarfile(tf):
            yield m, tf
        return
    try:
        first = True
        for head in scan(f):
            first = False
            yield _Member(head), None
    except Sparse as hand_over:
        tf = headers_after(f, hand_over.offset)
        for m in _from_tarfile(tf):
            yield m, tf
    except Damaged as exc:
        if first:
            raise OSError(errno.EINVAL, f"not a readable tar archive ({exc})") from None
        raise


def _open_tar(f: BinaryIO, streamed: bool) -> tarfile.TarFile:
    try:
        if streamed:
            return tarfile.open(fileobj=f, mode="r|*", tarinfo=_Info, encoding="utf-8")
        return tarfile.open(fileobj=f, mode="r:*", tarinfo=_Info, encoding="utf-8")
    except _BROKEN as exc:
        raise OSError(errno.EINVAL, f"not a readable tar archive ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _damaged(count: int, exc: BaseException) -> OSError:
    why = _first_line(exc)
    return OSError(errno.EIO, f"tar archive damaged after {count} members: {why}")


@dataclass
class _Namer:
    """Each member's item key, or None to ignore it; with a reason when it cannot be read."""

    seen: set[str] = field(default_factory=set)
    headers: int = 0

    def key(self, head: Header) -> tuple[str, str | None] | None:
        self.headers += 1
        if not head.regular:
            return None
        name = head.name
        while name.startswith("./"):
            name = name[2:]
        base = name.rpartition("/")[2]
        stem, dot, suffix = base.partition(".")
        if not stem or not dot or suffix.rpartition(".")[2].lower() in _DATA:
            return None  # no sample key (WebDataset's base_plus_ext), or a data component
        if _META.match(name):
            return None  # WebDataset's metadata
        if not stays_inside(name) or any(p in ("", ".") for p in name.split("/")):
            why = f"unsafe member name {name!r} (absolute, '..', '.', empty part or NUL)"
            return self._unique(f"#{self.headers}"), why
        if name in self.seen:
            return self._unique(f"{name}#{self.headers}"), "duplicate member name (first counts)"
        self.seen.add(name)
        return name, None

    def _unique(self, key: str) -> str:
        while key in self.seen:
            key += "#"
        self.seen.add(key)
        return key


class _Slice(ByteRange):
    """Bytes ``start:start+size`` of ``f``, as a file of that size that closes ``f``."""

    def __init__(self, f: BinaryIO, start: int, size: int) -> None:
        end = f.seek(0, io.SEEK_END)
        super().__init__(f, start, min(size, end - start))

    def close(self) -> None:
        if not self.closed:
            self.f.close()
        super().close()


def _data(f: BinaryIO, m: _Member, tf: tarfile.TarFile | None) -> BinaryIO:
    """A member's bytes in memory (it is at most MAX_IN_MEMORY); OSError if cut short."""
    try:
        if tf is None:
            f.seek(m.head.offset)
            data = f.read(m.head.size)
        else:
            assert m.info is not None
            fh = tf.extractfile(m.info)
            assert fh is not None  # a regular member
            data = fh.read()
    except _BROKEN as exc:
        raise OSError(errno.EIO, f"member cannot be read: {_first_line(exc)}") from None
    if len(data) != m.head.size:
        raise OSError(errno.EIO, "member cannot be read: unexpected end of data")
    return io.BytesIO(data)


def _window(inner: Source, container: Item, head: Header) -> BinaryIO:
    """A large member of an uncompressed tar, read on its own handle as the reader needs."""
    window = _Slice(inner.open(container), head.offset, head.size)
    return io.BufferedReader(window)


def _opened(
    inner: Source, container: Item, f: BinaryIO, m: _Member, tf: tarfile.TarFile | None
) -> BinaryIO:
    if m.head.size <= MAX_IN_MEMORY:
        return _data(f, m, tf)
    if tf is None:
        return _window(inner, container, m.head)
    raise OSError(
        errno.EFBIG,
        f"member of {m.head.size} bytes in a compressed or sparse tar; over {MAX_IN_MEMORY}"
        " bytes, members are read from uncompressed tars only",
    )


def stream(inner: Source, container: Item) -> Iterator[tuple[Item, BinaryIO | OSError]]:
    """The container's items front to back, each member read before the next header."""
    try:
        f = inner.open(container)
    except OSError as exc:
        yield container, exc
        return
    with f:
        namer, count = _Namer(), 0
        try:
            for m, tf in _walk(f, streamed=True):
                named = namer.key(m.head)
                if named is None:
                    continue
                key, why = named
                item, count = Item(container.root, f"{container.rel}/{key}"), count + 1
                if why is not None:
                    yield item, OSError(errno.EINVAL, why)
                    continue
                try:
                    got: BinaryIO | OSError = _opened(inner, container, f, m, tf)
                except OSError as exc:
                    got = exc
                yield item, got
        except OSError as exc:
            yield container, exc if count == 0 else _damaged(count, exc)
        except _BROKEN as exc:
            yield container, _damaged(count, exc)


@dataclass
class Index:
    """A container's members by key (a reason for those that cannot be read), in tar order."""

    entries: dict[str, _Member | str]
    error: str | None  # why the listing ended early


_CACHE: OrderedDict[tuple[str, str, str], Index] = OrderedDict()
_CACHED = 4  # containers indexed per process: consecutive items of one shard reuse its index


def index(inner: Source, container: Item, version: str | None = None) -> Index:
    """The container's index, from its headers; cached per process while the container's
    ``version`` (looked up if not given) holds. OSError if it cannot be opened."""
    version = version or inner.version(container)
    key = (container.root, container.rel, str(version))
    found = _CACHE.get(key)
    if found is not None and version is not None:
        _CACHE.move_to_end(key)
        return found
    entries: dict[str, _Member | str] = {}
    namer, error = _Namer(), None
    with inner.open(container) as f:
        try:
            for m, _ in _walk(f, streamed=False):
                named = namer.key(m.head)
                if named is not None:
                    entries[named[0]] = named[1] or m
        except OSError as exc:
            if not entries:
                raise
            error = _damaged(len(entries), exc).strerror
        except _BROKEN as exc:
            error = _damaged(len(entries), exc).strerror
    built = Index(entries, error)
    if version is not None:
        _CACHE[key] = built
        while len(_CACHE) > _CACHED:
            _CACHE.popitem(last=False)
    return built


def members(inner: Source, container: Item) -> list[Item]:
    """The container's items in tar order; the container itself last when it is damaged (or
    cannot be opened): opening it then gives the reason."""
    try:
        idx = index(inner, container)
    except OSError:
        return [container]
    items = [Item(container.root, f"{container.rel}/{key}") for key in idx.entries]
    return [*items, container] if idx.error else items


def open_member(inner: Source, container: Item, key: str, version: str | None = None) -> BinaryIO:
    """One member by its key, through the container's index."""
    entry = index(inner, container, version).entries.get(key)
    if entry is None:
        raise FileNotFoundError(errno.ENOENT, "no such member in the tar archive")
    if isinstance(entry, str):
        raise OSError(errno.EINVAL, entry)
    if entry.info is None and entry.head.size > MAX_IN_MEMORY:
        return _window(inner, container, entry.head)
    with inner.open(container) as f:
        tf = None if entry.info is None else _open_tar(f, streamed=False)
        return _opened(inner, container, f, entry, tf)


def container_error(inner: Source, container: Item) -> str | None:
    """Why the container's listing ended early, when it did (opening it gives this reason)."""
    try:
        return index(inner, container).error
    except OSError as exc:
        return exc.strerror or str(exc)
