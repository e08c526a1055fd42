"""Discover a split: directories walked recursively, files, and ``@list.txt`` files of paths.

Discovery only lists candidate files, sorted and de-duplicated; whether a file is an image is
decided by its content when it is probed (see ``decode.probe``), not by its name.
"""

from __future__ import annotations

import os
import stat
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from .errors import InputError

__all__ = ["SourceFile", "discover", "expand_sources", "has_image_extension"]


@dataclass(frozen=True, slots=True)  # slots: 100k files take 10 MB less
class SourceFile:
    """A file found under a source root; ``rel`` is the POSIX path that apply mirrors.
    Files sort by relative path first, so splits spread over several roots interleave."""

    root: str
    rel: str

    def __lt__(self, other: SourceFile) -> bool:
        return (self.rel, self.root) < (other.rel, other.root)

    @property
    def path(self) -> str:
        return os.path.join(self.root, *self.rel.split("/"))


@lru_cache(maxsize=1)
def _image_extensions() -> frozenset[str]:
    from PIL import Image

    return frozenset(ext.lower() for ext in Image.registered_extensions())


def has_image_extension(name: str) -> bool:
    """True for names whose extension Pillow registers: such files are reported if unreadable."""
    return os.path.splitext(name)[1].lower() in _image_extensions()


def expand_sources(src: str) -> list[str]:
    """``@list.txt`` → its lines (relative to the list's folder); anything else → itself."""
    if not src.startswith("@"):
        return [src]
    list_path = src[1:]
    try:
        with open(list_path, encoding="utf-8") as fh:
            lines = [line.strip() for line in fh]
    except OSError as exc:
        raise InputError(list_path, f"cannot read path list: {exc.strerror or exc}") from None
    base = os.path.dirname(list_path)
    return [os.path.join(base, line) for line in lines if line and not line.startswith("#")]


def _walk(root: str, root_key: tuple[int, int]) -> Iterable[tuple[SourceFile, int]]:
    """Yield non-hidden regular files under ``root`` with their (device, inode). A folder
    reachable twice (symlinks) is walked once, under its shallowest, then alphabetically first
    path: breadth-first over sorted entries, so the choice does not depend on the order the file
    system lists entries in."""
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
                continue
            if stat.S_ISDIR(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if key not in seen_dirs:
                    seen_dirs.add(key)
                    queue.append(rel)
            elif stat.S_ISREG(st.st_mode):
                yield SourceFile(root, rel), _file_key(st)


def _file_key(st: os.stat_result) -> int:
    """(device, inode) as one int: identifies a real file, at a third of a tuple's memory."""
    return (st.st_dev << 64) | st.st_ino


def discover(srcs: Sequence[str]) -> list[SourceFile]:
    """All candidate files of ``srcs`` in a deterministic order, each real file once."""
    first: dict[int, SourceFile] = {}  # real file → its first path in sorted order

    def add(f: SourceFile, key: int) -> None:
        known = first.get(key)
        if known is None or f < known:  # the same file reached twice (symlinks, overlaps)
            first[key] = f

    for src in srcs:
        for item in expand_sources(src):
            path = os.path.normpath(item)
            try:
                st = os.stat(path)
            except OSError:
                raise InputError(path, "no such file or directory") from None
            if stat.S_ISDIR(st.st_mode):
                for f, key in _walk(path, (st.st_dev, st.st_ino)):
                    add(f, key)
            else:
                add(SourceFile(os.path.dirname(path) or ".", os.path.basename(path)), _file_key(st))
    return sorted(first.values())
