"""File operations every layer shares: the one atomic write (a hidden temp file in the target's
folder, renamed into place, so a reader never sees a part), the one way to open an input file
(never blocking on a FIFO or device, its size known before a byte is read), sha256 of a file,
"is inside"."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

__all__ = [
    "NotRegularFile",
    "TempFile",
    "atomic_write",
    "atomic_write_bytes",
    "file_kind",
    "is_inside",
    "open_regular",
    "sha256_file",
]

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words, for the reason people read."""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


class NotRegularFile(OSError):
    """An input path names a FIFO, socket, device or folder where a file's bytes are expected.
    An OSError, so every "cannot read this file" path reports it with its reason."""

    def __init__(self, path: str, mode: int) -> None:
        super().__init__(errno.EINVAL, f"{file_kind(mode)}, not a regular file", path)

    def __str__(self) -> str:
        return str(self.strerror)


def open_regular(path: str) -> BinaryIO:
    """Open an input file for reading; NotRegularFile for anything but a regular file. Opened
    without blocking and checked on the open descriptor: a FIFO would block ``open`` until a
    writer appears and a device never ends, and the check cannot race a rename."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(path, st.st_mode)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


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
    with open_regular(path) as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_inside(path: str, root: str) -> bool:
    """True when ``path`` is ``root`` or lies under it, symlinks resolved."""
    path, root = os.path.realpath(path), os.path.realpath(root)
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)
