"""File operations every layer shares: the one atomic write (a hidden temp file in the target's
folder, renamed into place, so a reader never sees a part), sha256 of a file, "is inside"."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

__all__ = ["TempFile", "atomic_write", "atomic_write_bytes", "is_inside", "sha256_file"]


class TempFile:
    """A hidden temp file ``.<name>.<random>.tmp`` in ``folder``, removed unless committed. Its
    final name may be decided after writing (a sidecar is named by its content)."""

    def __init__(self, folder: str, name: str) -> None:
        fd, self.path = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
        self.file: BinaryIO = os.fdopen(fd, "wb")
        self._committed = False

    def close(self, fsync: bool = False) -> None:
        if not self.file.closed:
            self.file.flush()
            if fsync:
                os.fsync(self.file.fileno())
            self.file.close()

    def commit(self, target: str, fsync: bool = False) -> None:
        """Close and rename onto ``target`` (atomic on POSIX within one file system)."""
        self.close(fsync)
        os.replace(self.path, target)
        self._committed = True

    def __enter__(self) -> TempFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
        if not self._committed and os.path.exists(self.path):
            os.unlink(self.path)


@contextmanager
def atomic_write(path: str, *, fsync: bool = True) -> Iterator[BinaryIO]:
    """A file object whose content replaces ``path`` only once the block ends without error."""
    folder, name = os.path.split(os.path.abspath(path))
    with TempFile(folder, name) as tmp:
        yield tmp.file
        tmp.commit(path, fsync)


def atomic_write_bytes(path: str, data: bytes) -> None:
    with atomic_write(path) as fh:
        fh.write(data)


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_inside(path: str, root: str) -> bool:
    """True when ``path`` is ``root`` or lies under it, symlinks resolved."""
    path, root = os.path.realpath(path), os.path.realpath(root)
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)
