"""apply --stack: one memory-mappable ``OUT/stack.npy`` (N×C×H×W or N×H×W×C) and
``OUT/stack.txt`` (the image of each row, one name a line) instead of one file per image.

Each image of the split has a slot, known before anything is decoded; workers normalize (the same
``Normalizer`` as per-file output) and write their slots into ``.normstat-stack.partial.npy``
through a memmap, flush it, then journal the slots. A rerun with the same plan (names, shape,
dtype) keeps every slot journaled with its source's current version and redoes the rest. Images
skipped while reading leave holes, squeezed out at the end into a fresh temp. The partial is
renamed ``stack.npy`` and ``stack.txt`` last: readers never see a part under the final names."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from normstat.errors import InputError, OutputError
from normstat.fileops import TempFile, atomic_write_bytes
from normstat.modes import get_mode
from normstat.options import MaskOptions, ReadOptions
from normstat.readers import Probe, Skipped
from normstat.sources import Item, Source
from normstat.verbs.common import ImageRef, read_refs

from .journal import Version
from .masking import read_mode, valid_pixels
from .normalize import Normalizer

__all__ = [
    "NAMES",
    "PARTIAL",
    "ROWS",
    "STACK",
    "RowJournal",
    "RowTask",
    "check_names",
    "expand_final",
    "finish",
    "names_current",
    "names_text",
    "new_partial",
    "open_stack",
    "plan_digest",
    "remove_stack",
    "reopen_partial",
    "row_shape",
    "write_rows",
]

STACK = "stack.npy"
NAMES = "stack.txt"
PARTIAL = ".normstat-stack.partial.npy"  # kept between runs: never matches outputs' temp names
ROWS = ".normstat-stack.journal"
_BLOCK = 1 << 26  # bytes of rows copied at a time (memory stays bounded)


def row_shape(images: list[tuple[Item, Probe]], channels: int, layout: str) -> tuple[int, ...]:
    """One row's shape, from the scan's probes; InputError naming the first image whose size
    differs from the first image's (or whose reader cannot tell it). Every image is converted
    to the manifest's mode, so the channel count is the mode's."""
    first: tuple[str, tuple[int, int]] | None = None
    for item, probe in images:
        if probe.size is None:
            raise InputError(item.path, "its size is unknown before decoding; --stack needs it")
        if first is None:
            first = (item.path, probe.size)
        elif probe.size != first[1]:
            (h, w), (h0, w0) = probe.size, first[1]
            raise InputError(
                item.path, f"is {h}×{w} but {first[0]} is {h0}×{w0}; --stack needs one size"
            )
    assert first is not None  # scan raised for a split without images
    h, w = first[1]
    return (channels, h, w) if layout == "chw" else (h, w, channels)


def check_names(refs: list[ImageRef]) -> None:
    """InputError for a name stack.txt cannot hold on one line as it is: a control character
    (newline, tab, ...), a line or paragraph separator, or bytes that are not UTF-8."""
    for ref in refs:
        for ch in ref.rel:
            if 0xD800 <= ord(ch) <= 0xDFFF:
                raise InputError(ref.name, "its name is not UTF-8; stack.txt cannot list it")
            if unicodedata.category(ch) in ("Cc", "Zl", "Zp"):
                raise InputError(
                    ref.name,
                    f"its name holds the control character U+{ord(ch):04X}; stack.txt lists"
                    " one name a line: rename the file",
                )


def remove_stack(out: str) -> None:
    """Every stack file of an earlier run (other options, or --overwrite)."""
    for name in (STACK, NAMES, PARTIAL, ROWS):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(out, name))


@dataclass(frozen=True)
class Row:
    """What the journal knows of a slot: the source version it was made from, or why not."""

    rel: str
    version: Version
    skipped: str | None = None


class RowJournal:
    """``OUT/.normstat-stack.journal``: a first line naming the plan, then one JSON line per
    slot, appended with one O_APPEND write by the worker once the slot's row is flushed. A
    crash can lose entries (the rows are remade), never record a row that is not there."""

    def __init__(self, out: str, plan: str) -> None:
        self.path = os.path.join(out, ROWS)
        self.plan = plan

    def load(self) -> dict[int, Row]:
        """The latest entry of each slot; empty when the journal is of another plan."""
        rows: dict[int, Row] = {}
        try:
            with open(self.path, encoding="utf-8") as fh:
                try:
                    head = json.loads(fh.readline())
                except ValueError:
                    return {}
                if not isinstance(head, dict) or head.get("plan") != self.plan:
                    return {}
                for line in fh:
                    with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
                        e = json.loads(line)  # a line cut short by a crash is ignored
                        rows[int(e["slot"])] = Row(str(e["rel"]), str(e["version"]), e["skip"])
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError) as exc:
            raise OutputError(self.path, f"cannot read the journal: {exc}") from None
        return rows

    def start(self) -> None:
        atomic_write_bytes(self.path, (json.dumps({"plan": self.plan}) + "\n").encode())

    def record(self, entries: Iterable[tuple[int, Row]]) -> None:
        lines = "".join(
            json.dumps({"slot": k, "rel": r.rel, "version": r.version, "skip": r.skipped}) + "\n"
            for k, r in entries
        )
        if not lines:
            return
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW)
        try:
            data = memoryview(lines.encode("utf-8"))
            while data:
                data = data[os.write(fd, data) :]
        finally:
            os.close(fd)


@dataclass(frozen=True)
class RowTask:
    """Slots for one worker: (slot, image, its source's version as handed out)."""

    source: Source
    slots: list[tuple[int, ImageRef, Version | None]]
    mode: str
    normalizer: Normalizer
    read: ReadOptions
    partial: str
    journal: RowJournal
    # as WriteTask's: invalid pixels written as 0 or NaN
    mask: MaskOptions = field(default_factory=MaskOptions)


def write_rows(task: RowTask) -> list[str | Skipped]:
    """Per slot: "written" or a Skipped value. Rows go straight into the partial's memmap."""
    mode = get_mode(task.mode)
    mask = task.mask
    refs = [ref for _, ref, _ in task.slots]
    out: list[str | Skipped] = []
    done: list[tuple[int, Row]] = []
    mm = np.lib.format.open_memmap(task.partial, mode="r+")
    try:
        for (slot, ref, version), dec in zip(
            task.slots, read_refs(task.source, refs, read_mode(mode, mask), task.read), strict=True
        ):
            if isinstance(dec, Skipped):
                out.append(dec)
                if version is not None:
                    done.append((slot, Row(ref.rel, version, dec.reason)))
                continue
            y = task.normalizer(*valid_pixels(dec, mask))
            if y.shape != mm.shape[1:]:  # the header lied, or the file changed since the scan
                raise InputError(
                    ref.name, f"decoded to rows of {y.shape}, not the stack's {mm.shape[1:]}"
                )
            mm[slot] = y
            out.append("written")
            if version is not None:
                done.append((slot, Row(ref.rel, version)))
        mm.flush()
    finally:
        del mm
    task.journal.record(done)
    return out


def plan_digest(refs: list[ImageRef], shape: tuple[int, ...], dtype: str) -> str:
    """What makes slots comparable between runs: the ordered names, the row shape and dtype."""
    digest = hashlib.sha256(json.dumps([list(shape), dtype]).encode())
    for ref in refs:
        digest.update(ref.rel.encode("utf-8") + b"\0")
    return digest.hexdigest()


def names_text(refs: list[ImageRef], holes: set[int]) -> bytes:
    return "".join(ref.rel + "\n" for k, ref in enumerate(refs) if k not in holes).encode()


def _rows_per_block(shape: tuple[int, ...], dtype: str) -> int:
    return max(1, _BLOCK // max(1, int(np.prod(shape[1:])) * np.dtype(dtype).itemsize))


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_stack(path: str, shape: tuple[int, ...], dtype: str) -> Any:
    """The array at ``path`` read-only mapped when it has this shape and dtype, else None."""
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return None
    return arr if arr.shape == shape and arr.dtype == np.dtype(dtype) else None


def new_partial(
    out: str, shape: tuple[int, ...], dtype: str, fill: Callable[[Any], None] | None = None
) -> str:
    """An empty partial (``fill`` writes rows into it first): made under a temp name, so a
    partial under its own name is always one the journal describes."""
    path = os.path.join(out, PARTIAL)
    try:
        with TempFile(out) as tmp:
            tmp.close()
            mm = np.lib.format.open_memmap(tmp.path, mode="w+", dtype=dtype, shape=shape)
            if fill is not None:
                fill(mm)
            mm.flush()
            del mm
            tmp.commit(path, fsync=False)
    except OSError as exc:
        raise OutputError(path, f"cannot create the stack: {exc.strerror}") from None
    return path


def reopen_partial(out: str, shape: tuple[int, ...], dtype: str) -> str | None:
    """The partial of an interrupted run, when it has this plan's shape."""
    path = os.path.join(out, PARTIAL)
    return path if open_stack(path, shape, dtype) is not None else None


def expand_final(out: str, shape: tuple[int, ...], dtype: str, holes: set[int]) -> str | None:
    """A partial rebuilt from the finished ``stack.npy`` (its rows back in their slots, holes
    empty), for a rerun that must redo some slots; None when stack.npy is not that run's."""
    final = open_stack(os.path.join(out, STACK), (shape[0] - len(holes), *shape[1:]), dtype)
    if final is None:
        return None
    slots = [k for k in range(shape[0]) if k not in holes]
    step = _rows_per_block(shape, dtype)

    def fill(mm: Any) -> None:
        for i in range(0, len(slots), step):
            part = slots[i : i + step]
            mm[part] = final[i : i + len(part)]

    return new_partial(out, shape, dtype, fill)


def finish(out: str, partial: str, refs: list[ImageRef], holes: set[int]) -> int:
    """Rename the partial (holes squeezed out into a fresh temp first) onto ``stack.npy``,
    then ``stack.txt``; the rows it holds."""
    names = names_text(refs, holes)
    target = os.path.join(out, STACK)
    try:
        if holes:
            src = np.load(partial, mmap_mode="r", allow_pickle=False)
            keep = [k for k in range(src.shape[0]) if k not in holes]
            with TempFile(out) as tmp:
                tmp.close()
                dst = np.lib.format.open_memmap(
                    tmp.path, mode="w+", dtype=src.dtype, shape=(len(keep), *src.shape[1:])
                )
                step = _rows_per_block(src.shape, str(src.dtype))
                for i in range(0, len(keep), step):
                    dst[i : i + step] = src[keep[i : i + step]]
                dst.flush()
                del dst, src
                _fsync(tmp.path)
                tmp.commit(target, fsync=False)
            os.unlink(partial)
        else:
            _fsync(partial)
            os.replace(partial, target)
        atomic_write_bytes(os.path.join(out, NAMES), names)
    except OSError as exc:
        raise OutputError(target, f"cannot write: {exc.strerror}") from None
    return len(refs) - len(holes)


def names_current(out: str, refs: list[ImageRef], holes: set[int]) -> bool:
    try:
        with open(os.path.join(out, NAMES), "rb") as fh:
            return fh.read() == names_text(refs, holes)
    except OSError:
        return False
