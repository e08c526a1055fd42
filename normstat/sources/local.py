"""The local source: directories walked recursively, files, and ``@list.txt`` files of paths.

Discovery only lists candidate files, sorted and de-duplicated; whether a file is an image is
decided by its content when a reader probes it (``readers``), not by its name.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from normstat.errors import InputError
from normstat.fileops import NotRegularFile, open_regular

from .base import Item, Shard, plain_shards, stream_items

__all__ = ["LocalSource", "discover", "expand_sources", "has_scheme", "open_input"]

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")


def has_scheme(path: str) -> str | None:
    """The URL scheme of ``path`` (``s3`` for ``s3://bucket``), or None for a local path."""
    match = _SCHEME.match(path)
    return match[1].lower() if match else None


@dataclass(frozen=True)
class LocalSource:
    """Local folders, files and ``@list.txt`` files; ``paths`` as the user gave them."""

    paths: tuple[str, ...]

    @property
    def name(self) -> str:
        return ", ".join(self.paths)

    def items(self) -> list[Item]:
        return discover(self.paths)

    def open(self, item: Item) -> BinaryIO:
        return open_input(item.path)

    def manifest_root(self, root: str) -> str:
        return os.path.abspath(root)

    def locations(self) -> list[str]:
        return [item for src in self.paths for item in expand_sources(src)]

    def version(self, item: Item) -> str | None:
        try:
            st = os.stat(item.path)
        except OSError:
            return None
        return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"

    def shards(self) -> list[Shard]:
        return plain_shards(self.items(), lambda item: str(self.version(item)))

    def stream(self, shard: Shard) -> Iterator[tuple[Item, BinaryIO | OSError]]:
        return stream_items(self, shard)


def expand_sources(src: str) -> list[str]:
    """``@list.txt`` → its lines (relative to the list's folder); anything else → itself. The
    list is opened as any input (a FIFO never blocks) and must be UTF-8 text without NULs."""
    if not src.startswith("@"):
        return [src]
    list_path = src[1:]
    try:
        with open_regular(list_path) as fh:
            data = fh.read()
    except OSError as exc:
        raise InputError(list_path, f"cannot read path list: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = data.count(b"\n", 0, exc.start) + 1
        raise InputError(list_path, f"path list is not UTF-8 text (line {bad})") from None
    lines = [line.strip() for line in text.splitlines()]
    for number, line in enumerate(lines, 1):
        if "\x00" in line:
            raise InputError(list_path, f"path list line {number} holds a NUL character")
    base = os.path.dirname(list_path)
    return [os.path.join(base, line) for line in lines if line and not line.startswith("#")]


def _walk(root: str, root_key: tuple[int, int]) -> Iterable[tuple[Item, int]]:
    """Yield the non-hidden files under ``root`` with their (device, inode). A folder
    reachable twice (symlinks) is walked once, under its shallowest, then alphabetically first
    path: breadth-first over sorted entries, so the choice does not depend on the order the file
    system lists entries in. Entries that are not regular files (FIFOs, sockets, devices,
    dangling links, link loops) are yielded too, keyed by the entry itself: opening them fails
    with the reason, so they are listed as skipped, never dropped silently."""
    seen_dirs = {root_key}
    queue = deque([""])
    while queue:
        rel_dir = queue.popleft()
        here = os.path.join(root, rel_dir) if rel_dir else root
        try:
            entries = sorted(os.scandir(here), key=lambda e: e.name)
        except OSError as exc:  # never leave a folder's images out silently
            raise InputError(here, f"cannot list folder: {exc.strerror or exc}") from None
        for entry in entries:
            if entry.name.startswith("."):
                continue
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            try:
                st = entry.stat()  # follows symlinks; a loop or dangling link raises
            except OSError:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:  # vanished while listing: nothing left to report
                    continue
            if stat.S_ISDIR(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if key not in seen_dirs:
                    seen_dirs.add(key)
                    queue.append(rel)
            else:
                yield Item(root, rel), _file_key(st)


def open_input(path: str) -> BinaryIO:
    """``path`` opened as an input file (``fileops.open_regular``: never blocking); an OSError
    whose text is the reason for anything else (a FIFO, socket or device, a dangling link, a
    link loop), as the skipped list shows it."""
    try:
        return open_regular(path)
    except NotRegularFile:
        raise
    except OSError as exc:
        why = _why_not_regular(path, exc)
        if why is None:
            raise
        raise why from None


def _why_not_regular(path: str, exc: OSError) -> OSError | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if stat.S_ISLNK(st.st_mode):
        if exc.errno == errno.ELOOP:
            return OSError(errno.ELOOP, "symbolic link loop", path)
        if exc.errno == errno.ENOENT:
            return OSError(errno.ENOENT, "dangling symbolic link (target missing)", path)
        try:
            st = os.stat(path)
        except OSError:
            return None
    if not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode):
        return NotRegularFile(path, st.st_mode)  # a socket refuses open() (ENXIO)
    return None


def _file_key(st: os.stat_result) -> int:
    """(device, inode) as one int: identifies a real file, at a third of a tuple's memory."""
    return (st.st_dev << 64) | st.st_ino


def discover(srcs: Sequence[str]) -> list[Item]:
    """All candidate files of ``srcs`` in a deterministic order, each real file once."""
    first: dict[int, Item] = {}  # real file → its first path in sorted order

    def add(f: Item, key: int) -> None:
        known = first.get(key)
        if known is None or f < known:  # the same file reached twice (symlinks, overlaps)
            first[key] = f

    for src in srcs:
        for item in expand_sources(src):
            path = os.path.normpath(item)
            try:
                st = os.stat(path)
            except OSError:
                try:  # a dangling link or a loop is there, and skipped with its reason
                    st = os.lstat(path)
                except OSError:
                    raise InputError(path, "no such file or directory") from None
            if stat.S_ISDIR(st.st_mode):
                for f, key in _walk(path, (st.st_dev, st.st_ino)):
                    add(f, key)
            else:
                add(Item(os.path.dirname(path) or ".", os.path.basename(path)), _file_key(st))
    absolute: dict[str, str] = {}  # the order of roots is that of the manifest's names for them

    def order(item: Item) -> tuple[str, str]:
        root = absolute.get(item.root)
        if root is None:
            root = absolute[item.root] = os.path.abspath(item.root)
        return item.rel, root

    return sorted(first.values(), key=order)
