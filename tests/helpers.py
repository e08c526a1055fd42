"""Helpers shared by the test modules: run the CLI, describe a result, copy a manifest."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from typer.testing import CliRunner, Result

from normstat.cli import app


class Hung(BaseException):
    """Not an OSError (TimeoutError is one, and code under test may swallow OSErrors)."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Fail (instead of hanging the suite) if the block runs longer than ``seconds``."""

    def on_alarm(signum: int, frame: object) -> None:
        raise Hung(f"did not finish within {seconds}s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def invoke(*args: object) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


def describe(result: Result) -> str:
    return (
        f"exit={result.exit_code}\nstdout={result.stdout!r}\nstderr={result.stderr!r}\n"
        f"exception={result.exception!r}"
    )


def sidecar_of(manifest: Path) -> Path:
    """The sidecar a manifest points to (its name carries the sidecar's hash)."""
    data = json.loads(manifest.read_text(encoding="utf-8"))
    return manifest.with_name(data["sidecar"]["path"])


def without_references(manifest: Path) -> None:
    """Rewrite a saved manifest's sidecar as normstat 0.2 wrote it: no stored references, so
    check reads candidates from the train files."""
    import normstat
    from normstat.fileops import sha256_file
    from normstat.manifest.sidecar import write_sidecar

    data = json.loads(manifest.read_text())
    stats = normstat.Stats.load(str(manifest))
    fp = stats.fingerprints
    assert fp is not None and fp.thumb is not None
    fp.thumb = fp.thumb_range = fp.colour = None
    sidecar = manifest.parent / data["sidecar"]["path"]
    with open(sidecar, "wb") as fh:
        write_sidecar(fp, fh, stats.histogram)
    data["sidecar"]["sha256"] = sha256_file(str(sidecar))
    manifest.write_text(json.dumps(data))


def copy_manifest(manifest: Path, folder: Path) -> Path:
    """A private copy (manifest + sidecar) in ``folder`` that a test may damage."""
    side = sidecar_of(manifest)
    (folder / side.name).write_bytes(side.read_bytes())
    target = folder / "stats.json"
    target.write_bytes(manifest.read_bytes())
    return target


def die_on_three(item: int) -> int:
    """For executor tests: a worker that ends abruptly, as a crashing C decoder would."""
    if item == 3:
        os._exit(7)
    return item * item


def slow_square(item: int) -> int:
    """For executor tests: later items finish first, results must still come in order."""
    time.sleep(0.02 * (5 - item % 5))
    return item * item


# ---------------------------------------------------------------- one file by path, for tests
# The library reads through sources (file objects); these open a path and call the reader, as
# the tests of single files need. Not part of normstat: only sources open files there.


def _reader(fh):  # type: ignore[no-untyped-def]
    from normstat.readers import HEAD, reader_for

    head = fh.read(HEAD)
    fh.seek(0)
    return reader_for(head)


def load(path: str, target, max_pixels: int | None, keep_alpha: bool):  # type: ignore[no-untyped-def]
    """(probe, pixels) of one file from one read, as compute's per-file route reads it."""
    from normstat.options import ReadOptions
    from normstat.readers import Skipped, unreadable

    try:
        fh = open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        skip = Skipped(path, unreadable(exc))
        return skip, skip
    with fh:
        return _reader(fh).load(fh, path, target, ReadOptions(max_pixels, keep_alpha))


def decode(path: str, target, max_pixels: int | None):  # type: ignore[no-untyped-def]
    """One image file's pixels in ``target`` (or Skipped)."""
    pixels = load(path, target, max_pixels, target.alpha)[1]
    assert pixels is not None
    return pixels


def probe(path: str, max_pixels: int | None, keep_alpha: bool):  # type: ignore[no-untyped-def]
    return load(path, None, max_pixels, keep_alpha)[0]


def probe_array(path: str, keep_alpha: bool, max_pixels: int | None, layout: str = "auto"):  # type: ignore[no-untyped-def]
    """A .npy file's header probe (ArrayProbe or Skipped)."""
    from normstat.options import ReadOptions
    from normstat.readers.npy import READER

    with open(path, "rb") as fh:
        return READER.probe(fh, path, ReadOptions(max_pixels, keep_alpha, layout))


def is_npy(path: str) -> bool:
    """True when the registry gives this file to the .npy reader."""
    try:
        with open(path, "rb") as fh:
            return bool(_reader(fh).name == "npy")
    except OSError:
        return False


def reduce_image(dec, mode_name: str):  # type: ignore[no-untyped-def]
    """The oracle: one image's record and histograms, one image at a time (what compute's
    chunk route must give for it, whatever the chunking)."""
    from normstat.modes import get_mode
    from normstat.verbs.compute.files import partials
    from normstat.verbs.compute.records import image_record

    mode = get_mode(mode_name)
    moments, hists = partials(dec, mode)
    return image_record(dec, mode, moments), hists


def reduce_chunk(args):  # type: ignore[no-untyped-def]
    """compute's per-file worker over local paths: ``(paths, mode name, max pixels, alpha)``."""
    from normstat.options import ReadOptions
    from normstat.sources import Item, LocalSource, Shard
    from normstat.verbs.compute.files import FileTask
    from normstat.verbs.compute.files import reduce_chunk as run

    paths, mode_name, max_pixels, keep_alpha = args
    items = tuple(Item(os.path.dirname(p), os.path.basename(p)) for p in paths)
    shard = Shard(items[0].root, items[0].rel, items, "") if items else Shard("", "", (), "")
    read = ReadOptions(max_pixels, keep_alpha)
    return run(FileTask(LocalSource(()), shard, mode_name, read))


# ---------------------------------------------------------------- a source without files


@dataclass(frozen=True)
class MemorySource:
    """Serves bytes from memory, never the file system: compute, apply and check running on it
    end to end show that only sources open files. ``files``: (relative name, bytes)."""

    files: tuple[tuple[str, bytes], ...]
    root: str = "mem://split"

    @property
    def name(self) -> str:
        return self.root

    def items(self) -> list:  # type: ignore[type-arg]
        from normstat.sources import Item

        return sorted({Item(self.root, rel) for rel, _ in self.files})

    def open(self, item):  # type: ignore[no-untyped-def]
        data = dict(self.files).get(item.rel) if item.root == self.root else None
        if data is None:
            raise FileNotFoundError(2, "no such item", item.path)
        return io.BytesIO(data)

    def manifest_root(self, root: str) -> str:
        return root

    def locations(self) -> list[str]:
        return []

    def version(self, item):  # type: ignore[no-untyped-def]
        data = dict(self.files).get(item.rel) if item.root == self.root else None
        return None if data is None else hashlib.sha256(data).hexdigest()

    def shards(self):  # type: ignore[no-untyped-def]
        from normstat.sources import plain_shards

        return plain_shards(self.items(), lambda item: str(self.version(item)))

    def stream(self, shard):  # type: ignore[no-untyped-def]
        from normstat.sources import stream_items

        return stream_items(self, shard)


def memory_copy(folder: Path, root: str) -> MemorySource:
    """Every file under ``folder`` as a MemorySource named ``root``."""
    files = [
        (p.relative_to(folder).as_posix(), p.read_bytes())
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    ]
    return MemorySource(tuple(files), root)


# ---------------------------------------------------------------- oracles


def brute_force(codes, queries, radius):  # type: ignore[no-untyped-def]
    """The N×M reference ``search`` must agree with (tests, small sizes)."""
    import numpy as np

    codes = np.asarray(codes, dtype=np.uint64)
    queries = np.asarray(queries, dtype=np.uint64)
    dist = np.bitwise_count(queries[:, None] ^ codes[None, :]).astype(np.int64)
    qi, ti = np.nonzero(dist <= radius)
    return qi.astype(np.int64), ti.astype(np.int64), dist[qi, ti]


# Code for a child interpreter: its own peak RSS in KiB. ``ru_maxrss`` survives exec, so in a
# child forked from a large parent (the test session) it reports the parent's size.
PEAK_KIB = """
def peak_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
"""
