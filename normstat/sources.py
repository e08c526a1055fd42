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


@dataclass(frozen=True, order=True)
class SourceFile:
    """A file found under a source root; ``rel`` is the POSIX path that apply mirrors."""

    root: str
    rel: str

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


def _walk(root: str, root_key: tuple[int, int]) -> Iterable[tuple[SourceFile, tuple[int, int]]]:
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
                yield SourceFile(root, rel), (st.st_dev, st.st_ino)


def discover(srcs: Sequence[str]) -> list[SourceFile]:
    """All candidate files of ``srcs`` in a deterministic order, each real file once."""
    found: list[tuple[SourceFile, tuple[int, int]]] = []
    for src in srcs:
        for item in expand_sources(src):
            path = os.path.normpath(item)
            try:
                st = os.stat(path)
            except OSError:
                raise InputError(path, "no such file or directory") from None
            if stat.S_ISDIR(st.st_mode):
                found.extend(_walk(path, (st.st_dev, st.st_ino)))
            else:
                parent = os.path.dirname(path) or "."
                found.append((SourceFile(parent, os.path.basename(path)), (st.st_dev, st.st_ino)))
    found.sort(key=lambda pair: (pair[0].rel, pair[0].root))
    unique: list[SourceFile] = []
    seen: set[tuple[int, int]] = set()
    for f, key in found:  # the same file reached twice (symlinks, overlapping sources): once
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique
