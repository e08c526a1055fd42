"""File operations every layer shares: the one atomic write (a hidden temp file in the target's
folder, renamed into place, so a reader never sees a part), the one way to open an input file
(never blocking on a FIFO or device, its size known before a byte is read), sha256 of a file,
"is inside"."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import IO, Any, BinaryIO

from normstat.errors import OutputError

__all__ = [
    "TEMP_PREFIX",
    "ByteRange",
    "NotRegularFile",
    "TempFile",
    "atomic_write",
    "atomic_write_bytes",
    "creation_mode",
    "file_kind",
    "is_inside",
    "open_regular",
    "replaceable",
    "sha256_file",
    "stays_inside",
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
        self.mode = mode

    def __reduce__(self) -> tuple[type, tuple[str, int]]:  # raised in workers, pickled back
        return type(self), (self.filename, self.mode)

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


TEMP_PREFIX = ".normstat-"


def creation_mode() -> int:
    """The permissions ``open()`` would give a new file: 0666 less the process umask. Read from
    /proc where the kernel shows it (setting the umask to learn it is not thread-safe)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


class TempFile:
    """A hidden temp file ``.normstat-<tag>-<random>.tmp`` in ``folder``, removed unless
    committed; its final name may be decided after writing (a sidecar is named by its content).
    The temp name is short whatever the final name (a 255-byte name has no room for a suffix)
    and the file gets the user's umask, not mkstemp's 0600, so others can read what it becomes.
    """

    def __init__(self, folder: str, tag: str = "write") -> None:
        fd, self.path = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{tag}-", suffix=".tmp", dir=folder)
        try:
            os.fchmod(fd, creation_mode())
        except BaseException:
            os.close(fd)
            os.unlink(self.path)
            raise
        self.file: BinaryIO = os.fdopen(fd, "wb")
        self._committed = False

    def close(self, fsync: bool = False) -> None:
        if not self.file.closed:
            self.file.flush()
            if fsync:
                os.fsync(self.file.fileno())
            self.file.close()

    def commit(self, target: str, fsync: bool = True) -> None:
        """Close, flush to disk, and rename onto ``target`` (atomic on POSIX within one file
        system): after a crash ``target`` holds the old content or the new, never a part."""
        self.close(fsync)
        os.replace(self.path, target)
        self._committed = True

    def __enter__(self) -> TempFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
        if not self._committed:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)


@contextmanager
def atomic_write(path: str, *, fsync: bool = True) -> Iterator[BinaryIO]:
    """A file object whose content replaces ``path`` only once the block ends without error."""
    with TempFile(os.path.dirname(os.path.abspath(path))) as tmp:
        yield tmp.file
        tmp.commit(path, fsync)


def atomic_write_bytes(path: str, data: bytes) -> None:
    with atomic_write(path) as fh:
        fh.write(data)


_SCHEMA_HEAD = re.compile(rb'^\s*\{\s*"schema"\s*:\s*"([^"]{1,64})"')


def replaceable(
    path: str,
    kind: str,
    schema: str | Callable[[bytes], bool],
    inputs: Iterable[str] = (),
    input_kind: str = "an input of this run",
) -> None:
    """OutputError unless ``path`` may receive a new ``kind`` file: it must not be a folder (or
    end in a slash), one of this run's ``inputs`` (named ``input_kind`` in the message), or an
    existing file other than a previous output of the same kind: a JSON document whose
    ``schema`` starts with ``schema``, or whose first 4 KiB ``schema(head)`` accepts."""
    if path.endswith(("/", os.sep)) or os.path.isdir(path):
        raise OutputError(path, f"is a folder; name the {kind} file to write")
    for given in inputs:
        with contextlib.suppress(OSError):
            if os.path.samefile(path, given):
                raise OutputError(path, f"is {input_kind}; refusing to overwrite it")
    try:
        fh = open_regular(path)
    except FileNotFoundError:
        return
    except NotRegularFile as exc:
        raise OutputError(
            path, f"is {file_kind(exc.mode)}; refusing to write the {kind} there"
        ) from None
    except OSError as exc:
        raise OutputError(path, f"cannot be checked before writing: {exc.strerror}") from None
    with fh:
        head = fh.read(4096)
    if callable(schema):
        same = schema(head)
    else:
        match = _SCHEMA_HEAD.match(head)
        same = match is not None and match[1].decode("ascii", "replace").startswith(schema)
    if not same:
        raise OutputError(
            path, f"exists and is not a {kind}; refusing to replace it (remove it first)"
        )


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open_regular(path) as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def stays_inside(rel: str) -> bool:
    """A relative name that stays under its root as written: not empty or absolute, no ``..``
    component, no NUL. The rule for every name a manifest gives."""
    return bool(rel) and not rel.startswith("/") and "\0" not in rel and ".." not in rel.split("/")


def is_inside(path: str, root: str) -> bool:
    """True when ``path`` is ``root`` or lies under it, symlinks resolved."""
    path, root = os.path.realpath(path), os.path.realpath(root)
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


class ByteRange(io.RawIOBase):
    """Bytes ``start:start+size`` of the open file ``f``, as a read-only, seekable file of that
    length: a parser given it cannot read past the range, whatever the header it reads claims
    (a reader's size window, a tar member read in place)."""

    def __init__(self, f: IO[bytes], start: int, size: int) -> None:
        super().__init__()
        self.f, self.start, self.size, self.pos = f, start, max(0, size), 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def readinto(self, buffer: Any) -> int:
        n = max(0, min(len(buffer), self.size - self.pos))
        if n == 0:
            return 0
        self.f.seek(self.start + self.pos)
        data = self.f.read(n)
        buffer[: len(data)] = data
        self.pos += len(data)
        return len(data)
