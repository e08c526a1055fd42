"""What OUT_DIR remembers between apply runs: a lock that lets one run write there at a time, and
a journal of the source version (size, modification time) each array was made from, so a resume
keeps an array only while its source is unchanged."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from normstat.errors import OutputError
from normstat.fileops import creation_mode

__all__ = ["JOURNAL", "LOCK", "Journal", "Version", "locked"]

LOCK = ".normstat-apply.lock"
JOURNAL = ".normstat-apply.journal"

Version = str  # the source's stamp of a file's bytes (Source.version: size and mtime, an ETag)


@contextmanager
def locked(out_dir: str) -> Iterator[None]:
    """Hold OUT_DIR's lock for the block; OutputError at once when another run holds it. The
    lock is the kernel's (flock), so a killed run never leaves it held. The file is removed on
    the way out while still locked; a run that opened it just before checks that the file it
    locked is still the one at the path, so two runs can never both hold a lock."""
    path = os.path.join(out_dir, LOCK)
    busy = OutputError(
        out_dir, "another normstat apply is writing to this folder; wait for it to end"
    )
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, creation_mode())
    except OSError as exc:
        raise OutputError(path, f"cannot create the lock file: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                raise OutputError(path, f"cannot lock: {exc.strerror}") from None
            raise busy from None
        try:
            same = os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # the run that held it removed it after we opened it: it is a new run's
            raise busy
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)
    finally:
        os.close(fd)  # releases the lock


class Journal:
    """``OUT_DIR/.normstat-apply.journal``: one JSON line per array, appended by the worker
    that wrote it once the array is on disk, so a crash can lose an entry (the array is then
    remade) but never record an array that is not there. One ``write`` per line with O_APPEND,
    so lines of several workers never interleave. The last entry of a name wins."""

    def __init__(self, out_dir: str) -> None:
        self.path = os.path.join(out_dir, JOURNAL)

    def load(self) -> dict[str, Version]:
        versions: dict[str, Version] = {}
        try:
            with open(self.path, encoding="utf-8", errors="surrogateescape") as fh:
                for line in fh:
                    with contextlib.suppress(ValueError, KeyError, TypeError):
                        entry = json.loads(line)  # a line cut short by a crash is ignored
                        versions[str(entry["rel"])] = str(entry["version"])
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise OutputError(self.path, f"cannot read the journal: {exc.strerror}") from None
        return versions

    def reset(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def record(self, entries: Iterable[tuple[str, Version]]) -> None:
        lines = "".join(
            json.dumps({"rel": rel, "version": version}) + "\n" for rel, version in entries
        )
        if not lines:
            return
        fd = os.open(
            self.path,
            os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW,
            creation_mode(),
        )
        try:
            data = memoryview(lines.encode("utf-8", "surrogateescape"))
            while data:
                data = data[os.write(fd, data) :]
        finally:
            os.close(fd)
