"""apply's outputs: where each array goes, the provenance file that makes a rerun a resume, the
safety checks on OUT_DIR, and the per-chunk writer run in the engine's workers (each array
written to a temp name and renamed, so an interrupted run leaves no partial ``.npy``)."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from normstat.errors import OutputError
from normstat.fileops import TempFile, is_inside
from normstat.modes import get_mode
from normstat.options import ReadOptions
from normstat.readers import Skipped
from normstat.sources import Source
from normstat.verbs.common import ImageRef, read_refs

from .normalize import Normalizer

__all__ = [
    "PROVENANCE",
    "WriteTask",
    "apply_chunk",
    "check_out_dir",
    "output_path",
    "remove_stale_temps",
    "same_provenance",
]

PROVENANCE = "normstat-apply.json"
_TEMP = re.compile(r"^\..+\.npy\.[A-Za-z0-9_]+\.tmp$")


def output_path(out_dir: str, rel: str) -> str:
    """``OUT_DIR/<image's relative name>.npy`` (``a.jpg.npy``, ``stack.npy[3].npy``)."""
    return os.path.join(out_dir, *rel.split("/")) + ".npy"


def remove_stale_temps(out_dir: str) -> int:
    """Temp files of an interrupted run are hidden and never end in .npy; remove them."""
    removed = 0
    for folder, _, names in os.walk(out_dir):
        for name in names:
            if _TEMP.match(name):
                os.unlink(os.path.join(folder, name))
                removed += 1
    return removed


def check_out_dir(out_dir: str, locations: list[str]) -> None:
    """OutputError when OUT_DIR lies inside a source folder."""
    for item in locations:
        if os.path.isdir(item) and is_inside(out_dir, item):
            raise OutputError(out_dir, f"output folder lies inside the source {item}")


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
    images: list[tuple[ImageRef, str]]  # (image, output path)
    mode: str
    normalizer: Normalizer
    overwrite: bool
    read: ReadOptions


def _write_npy(target: str, array: np.ndarray) -> None:
    folder, name = os.path.split(target)
    os.makedirs(folder, exist_ok=True)
    with TempFile(folder, name) as tmp:
        np.save(tmp.file, array, allow_pickle=False)
        tmp.commit(target)


def apply_chunk(task: WriteTask) -> list[str | Skipped]:
    """Per image: "written", "kept" (already there, resumed), or a Skipped value."""
    mode = get_mode(task.mode)
    out: list[str | Skipped] = ["kept"] * len(task.images)
    todo = [
        k
        for k, (_, target) in enumerate(task.images)
        if task.overwrite or not os.path.exists(target)
    ]
    decoded = read_refs(task.source, [task.images[k][0] for k in todo], mode, task.read)
    for k, dec in zip(todo, decoded, strict=True):
        if isinstance(dec, Skipped):
            out[k] = dec
            continue
        _write_npy(task.images[k][1], task.normalizer(dec.pixels))
        out[k] = "written"
    return out
