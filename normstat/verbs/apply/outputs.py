"""apply's outputs: where each array goes, the provenance file that makes a rerun a resume, the
safety checks on OUT_DIR, and the per-chunk writer run in the engine's workers (each array
written to a temp name and renamed, so an interrupted run leaves no partial ``.npy``)."""

from __future__ import annotations

import contextlib
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from normstat.errors import OutputError, describe
from normstat.fileops import TempFile, is_inside
from normstat.modes import get_mode
from normstat.options import MaskOptions, ReadOptions
from normstat.readers import Skipped
from normstat.sources import Item, Source
from normstat.verbs.common import ImageRef, read_refs

from .journal import Journal, Version
from .masking import read_mode, valid_pixels
from .normalize import Normalizer

__all__ = [
    "PROVENANCE",
    "WriteTask",
    "apply_chunk",
    "check_out_dir",
    "output_path",
    "protected_folders",
    "remove_stale_temps",
    "same_provenance",
    "source_version",
]

PROVENANCE = "normstat-apply.json"
# This version's temps, and those of versions that named them after their target.
_TEMP = re.compile(r"^(\.normstat-(npy|write)-[A-Za-z0-9_]+|\..+\.npy\.[A-Za-z0-9_]+)\.tmp$")


def output_path(out_dir: str, rel: str) -> str:
    """``OUT_DIR/<image's relative name>.npy`` (``a.jpg.npy``, ``stack.npy[3].npy``)."""
    return os.path.join(out_dir, *rel.split("/")) + ".npy"


def remove_stale_temps(out_dir: str) -> int:
    """Temp files of an interrupted run are hidden and never end in .npy; remove them. Called
    only under OUT_DIR's lock, so no running apply's in-flight temp is among them."""
    removed = 0
    for folder, _, names in os.walk(out_dir):
        for name in names:
            if _TEMP.match(name):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(folder, name))
                    removed += 1
    return removed


def protected_folders(locations: list[str]) -> list[str]:
    """The real folders apply must never write in: every source folder, and the folder of every
    source file (``@list`` entries included)."""
    folders = set()
    for item in locations:
        real = os.path.realpath(item)
        folders.add(real if os.path.isdir(real) else os.path.dirname(real))
    return sorted(folders)


def check_out_dir(out_dir: str, locations: list[str], rels: list[str]) -> None:
    """OutputError when OUT_DIR, or any folder an output goes to (followed through symlinks
    already inside OUT_DIR), is or lies inside a source folder, or when an output's name is
    longer than the file system allows."""
    protected = protected_folders(locations)
    if os.path.lexists(out_dir) and not os.path.isdir(out_dir):
        raise OutputError(out_dir, "exists and is not a folder")
    folders = {os.path.dirname(output_path(out_dir, rel)) for rel in rels} | {out_dir}
    for folder in sorted(folders):
        real = os.path.realpath(folder)
        for root in protected:
            if is_inside(real, root):
                where = "" if real == os.path.realpath(out_dir) else f" (through {folder})"
                raise OutputError(
                    out_dir, f"output would be written inside the source {root}{where}"
                )
    limit = _name_max(out_dir)
    for rel in rels:
        name = os.path.basename(output_path(out_dir, rel))
        size = len(os.fsencode(name))
        if size > limit:
            raise OutputError(
                rel, f"its output name {name[:40]}… is {size} bytes, over the limit of {limit}"
            )


def _name_max(out_dir: str) -> int:
    folder = os.path.abspath(out_dir)
    while not os.path.isdir(folder):
        folder = os.path.dirname(folder)
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def same_provenance(prov_path: str, provenance: dict[str, Any]) -> bool:
    """True when OUT_DIR's provenance names the same statistics (by content) and options."""
    try:
        with open(prov_path, encoding="utf-8") as fh:
            before = json.load(fh)
    except (OSError, ValueError):
        return False
    if not isinstance(before, dict) or not isinstance(before.get("stats"), dict):
        return False

    def content(ident: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in ident.items() if k != "path"}

    return bool(
        content(before["stats"]) == content(provenance["stats"])
        and before.get("options") == provenance["options"]
    )


@dataclass(frozen=True)
class WriteTask:
    source: Source
    # (image, output, the journal's version of its source, the source's version now)
    images: list[tuple[ImageRef, str, Version | None, Version | None]]
    mode: str
    normalizer: Normalizer
    overwrite: bool
    read: ReadOptions
    journal: Journal
    # the statistics' mask (none: only files' nodata tags)
    mask: MaskOptions = field(default_factory=MaskOptions)


def source_version(source: Source, item: Item) -> Version | None:
    """The item's version stamp, taken before it is read: should it change while being read,
    the array is recorded as made from the older version and remade on the next resume."""
    return source.version(item)


def _write_npy(target: str, array: np.ndarray) -> None:
    folder = os.path.dirname(target)
    try:
        os.makedirs(folder, exist_ok=True)
        with TempFile(folder, "npy") as tmp:
            np.save(tmp.file, array, allow_pickle=False)
            tmp.commit(target)
    except OSError as exc:  # disk full, quota, permissions: name the array, not a temp
        why = exc.strerror or f"{describe(exc)} (is the disk full?)"  # numpy's short write
        raise OutputError(target, f"cannot write: {why}") from None


def apply_chunk(task: WriteTask) -> list[str | Skipped]:
    """Per image: "written" (and journaled with the version of its source), "kept" (already
    there, made from the same version of its source: resumed), or a Skipped value."""
    mode = get_mode(task.mode)
    mask = task.mask
    out: list[str | Skipped] = ["kept"] * len(task.images)
    todo = [
        k
        for k, (_, target, made_from, now) in enumerate(task.images)
        if task.overwrite or made_from is None or made_from != now or not os.path.isfile(target)
    ]
    refs = [task.images[k][0] for k in todo]
    decoded = read_refs(task.source, refs, read_mode(mode, mask), task.read)
    for k, dec in zip(todo, decoded, strict=True):
        ref, target, _, version = task.images[k]
        if isinstance(dec, Skipped):
            out[k] = dec
            continue
        _write_npy(target, task.normalizer(*valid_pixels(dec, mask)))
        if version is not None:
            task.journal.record([(ref.rel, version)])
        out[k] = "written"
    return out
