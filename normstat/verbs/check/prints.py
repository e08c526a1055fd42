"""check's first stage, run in the engine's workers: each test image read in the manifest's mode
and fingerprinted (pixel hash, and pHashes over the crop boxes and mirror images that
near-duplicate search tries)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from normstat.fingerprints import pixel_hash
from normstat.modes import get_mode
from normstat.options import ReadOptions
from normstat.readers import Skipped
from normstat.sources import Source
from normstat.verbs.common import ImageRef, read_refs

from .verify import query_hashes

__all__ = ["ImagePrint", "PrintTask", "fingerprint_chunk"]


@dataclass(frozen=True)
class ImagePrint:
    """Fingerprints of one test image, for leakage checks."""

    pixel_hash: bytes
    height: int
    width: int
    queries: np.ndarray


@dataclass(frozen=True)
class PrintTask:
    source: Source
    refs: list[ImageRef]
    mode_name: str
    read: ReadOptions


def fingerprint_chunk(task: PrintTask) -> list[ImagePrint | Skipped]:
    mode = get_mode(task.mode_name)
    out: list[ImagePrint | Skipped] = []
    for dec in read_refs(task.source, task.refs, mode, task.read):
        if isinstance(dec, Skipped):
            out.append(dec)
            continue
        px = dec.pixels
        out.append(
            ImagePrint(
                pixel_hash(px, mode.name),
                int(px.shape[0]),
                int(px.shape[1]),
                query_hashes(px, mode.max_value),
            )
        )
    return out
