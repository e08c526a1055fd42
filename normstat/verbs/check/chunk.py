"""One task of check, run in a worker: a chunk of test images read in the manifest's mode,
fingerprinted, searched in the contributors' index and verified against their references,
in one pass (each test image is decoded once)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from normstat.fileops import stays_inside
from normstat.fingerprints import gray_image, pixel_hash, thumbnail
from normstat.fingerprints.reference import reference_of
from normstat.modes import Mode, get_mode
from normstat.options import ReadOptions
from normstat.readers import Skipped
from normstat.sources import Source
from normstat.verbs.common import ImageRef, read_reference, read_refs

from .candidates import Found, search
from .decide import Rule
from .features import DIMS, features
from .queries import Prepared, prepare, prints
from .store import Columns, StoreSpec
from .verify import Contributors, Verdict, verify

__all__ = ["CONTRIBUTOR_UNREADABLE", "ChunkTask", "Outcome", "check_chunk"]

LEGACY_CAP = 16  # candidates per test image read from their files (manifests without references)
CACHED = 1 << 15  # contributors' features a worker keeps between chunks (100 MB)

# Contributors are named by the manifest, which may have been tampered with: reading one must
# not tell whether a file exists or why it cannot be read, and never leaves its recorded root.
CONTRIBUTOR_UNREADABLE = "cannot be read now (moved, changed, unreadable or not an image)"


@dataclass(frozen=True)
class Outcome:
    """A test image checked: its pixel hash (exact copies are joined in the driver), whole-image
    pHash and stored-style thumbnail (for duplicates inside the test split), its verdict, and
    what could not be verified (warnings)."""

    pixel_hash: bytes
    phash: int
    thumb: bytes
    verdict: Verdict | None
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class ChunkTask:
    """Test images to check; ``store`` None: the manifest has no perceptual hashes (exact
    copies only); ``train``: the contributors' source, for manifests without references."""

    source: Source
    refs: list[ImageRef]
    mode_name: str
    read: ReadOptions
    store: StoreSpec | None
    rule: Rule
    train: Source | None = None


_limited: set[int] = set()


def _one_blas_thread() -> None:
    """Once per process: the products here are small, and the workers are the parallelism."""
    if os.getpid() not in _limited:
        threadpool_limits(1, user_api="blas")
        _limited.add(os.getpid())


def check_chunk(task: ChunkTask) -> list[Outcome | Skipped]:
    _one_blas_thread()
    mode = get_mode(task.mode_name)
    out: list[Outcome | Skipped | None] = [None] * len(task.refs)
    prepared: list[Prepared] = []
    slots: list[int] = []
    for k, dec in enumerate(read_refs(task.source, task.refs, mode, task.read)):
        if isinstance(dec, Skipped):
            out[k] = dec
        else:  # what check keeps of an image; its pixels go now
            prepared.append(prepare(dec.pixels, mode, dec.image))
            slots.append(k)
    if prepared:
        batch = prints(prepared, _boxed(task.store, prepared))
        verdicts: list[Verdict | None] = [None] * len(batch)
        problems: list[tuple[str, ...]] = [()] * len(batch)
        if task.store is not None:
            cols = Columns.of(task.store)
            found = search(
                cols.index,
                batch.phash,
                batch.box_hashes,
                batch.size,
                cols.height,
                cols.width,
                cols.crop,
                batch.boxed,
            )
            sample = np.asarray(task.store.sample, dtype=np.int64)
            if task.store.legacy:
                assert task.train is not None
                refs, found, problems = _from_files(task, cols, found, mode)
                sample = sample[:0]
            else:
                refs = _stored(cols, found, sample)
            verdicts = verify(batch, found, refs, sample, task.rule)
        for j, k in enumerate(slots):
            thumb = batch.thumb[j].tobytes()
            out[k] = Outcome(
                batch.pixel_hash[j], int(batch.phash[j, 0]), thumb, verdicts[j], problems[j]
            )
    return [o for o in out if o is not None]


class FeatureCache:
    """Contributors' features computed in this worker, kept for the next chunks (a crowded
    dataset's test images share many candidates): up to ``CACHED`` rows, the oldest replaced."""

    def __init__(self, rows: int) -> None:
        self.slot = np.full(rows, -1, dtype=np.int64)
        self.row = np.full(CACHED, -1, dtype=np.int64)
        self.feats = np.zeros((CACHED, DIMS), dtype=np.float32)
        self.next = 0

    def get(self, rows: np.ndarray, thumbs: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """Features of sorted unique ``rows`` (``thumbs(rows)`` gives thumbnails for those
        not held)."""
        out = np.empty((len(rows), DIMS), dtype=np.float32)
        slots = self.slot[rows]
        held = slots >= 0
        out[held] = self.feats[slots[held]]
        missing = rows[~held]
        if len(missing):
            got = features(thumbs(missing))
            out[~held] = got
            for start in range(0, len(missing), CACHED):  # keep the last CACHED of them
                block = missing[start : start + CACHED]
                at = (self.next + np.arange(len(block))) % CACHED
                old = self.row[at]
                self.slot[old[old >= 0]] = -1
                self.slot[block] = at
                self.row[at] = block
                self.feats[at] = got[start : start + len(block)]
                self.next = int((self.next + len(block)) % CACHED)
        return out


_caches: dict[str, FeatureCache] = {}


def _boxed(store: StoreSpec | None, prepared: list[Prepared]) -> np.ndarray:
    """Which test images need box hashes: none when nothing is searched; not those of the size
    most contributors have when no contributor has another size (a crop has another size)."""
    if store is None:
        return np.zeros(len(prepared), dtype=bool)
    if store.modal is None or "crop_rows" not in store.arrays or store.arrays["crop_rows"].shape[0]:
        return np.ones(len(prepared), dtype=bool)
    return np.array([p.size != store.modal for p in prepared], dtype=bool)


def _stored(cols: Columns, found: list[Found], sample: np.ndarray) -> Contributors:
    """The chunk's candidates (and the sample) from the stored references, their features
    from this worker's cache where it holds them."""
    rows = np.unique(np.concatenate([f.rows for f in found] + [sample]).astype(np.int64))
    cache = _caches.get(cols.spec.folder)
    if cache is None:
        _caches.clear()
        cache = _caches[cols.spec.folder] = FeatureCache(cols.spec.rows)
    feats = cache.get(rows, lambda r: np.asarray(cols.thumb[r]))
    return Contributors(
        lambda at: np.asarray(cols.thumb[int(rows[at])]),
        np.asarray(cols.colour[rows]),
        np.stack([np.asarray(cols.height[rows]), np.asarray(cols.width[rows])], axis=1),
        np.asarray(cols.pixel_hash[rows]),
        rows,
        feats,
    )


def _from_files(
    task: ChunkTask, cols: Columns, found: list[Found], mode: Mode
) -> tuple[Contributors, list[Found], list[tuple[str, ...]]]:
    """Manifests without stored references: each test image's nearest LEGACY_CAP candidates
    read from their files and made into references as compute would have made them. A file
    that is gone, unreadable or changed (its pixel hash) is a warning, never a leak."""
    assert task.train is not None and cols.paths is not None
    kept = [_capped(f) for f in found]
    rows = np.unique(np.concatenate([f.rows for f in kept]).astype(np.int64))
    thumbs, colours, sizes, hashes, ok, why = [], [], [], [], [], {}
    for row in rows.tolist():
        root = task.store.roots[int(cols.root[row])] if task.store else ""
        rel = cols.paths[row]
        dec = (
            None
            if not stays_inside(rel)
            else read_reference(task.train, root, rel, mode, task.read)
        )
        expected = bytes(np.asarray(cols.pixel_hash[row]))
        if dec is None or isinstance(dec, Skipped):
            why[row] = CONTRIBUTOR_UNREADABLE
        elif pixel_hash(dec.pixels, mode.name) != expected:
            why[row] = "changed since the statistics were computed"
        else:
            ref = reference_of(
                thumbnail(gray_image(dec.pixels, mode.max_value, dec.image)),
                dec.pixels,
                mode.max_value,
            )
            thumbs.append(np.frombuffer(ref.thumb, np.uint8).reshape(32, 32))
            colours.append(ref.colour)
            sizes.append(dec.pixels.shape[:2])
            hashes.append(np.frombuffer(expected, np.uint8))
            ok.append(row)
    good = np.array(ok, dtype=np.int64)
    stacked = np.stack(thumbs) if thumbs else np.zeros((0, 32, 32), np.uint8)
    refs = Contributors(
        lambda at: stacked[at],
        np.array(colours, np.float32).reshape(-1, 3),
        np.array(sizes, np.int64).reshape(-1, 2),
        np.stack(hashes) if hashes else np.zeros((0, 16), np.uint8),
        good,
        features(stacked),
    )
    problems = []
    out = []
    for f in kept:
        keep = np.isin(f.rows, good)
        problems.append(
            tuple(
                f"cannot verify candidate {_name(task, cols, int(r))}: {why[int(r)]}"
                for r in f.rows[~keep]
            )
        )
        out.append(f.take(keep))
    return refs, out, problems


def _name(task: ChunkTask, cols: Columns, row: int) -> str:
    """A contributor as reports name it: its root joined with its relative path."""
    assert task.store is not None and cols.paths is not None
    return os.path.join(task.store.roots[int(cols.root[row])], *cols.paths[row].split("/"))


def _capped(f: Found) -> Found:
    """The LEGACY_CAP nearest whole-image finds and every box find."""
    keep = np.zeros(len(f.rows), dtype=bool)
    whole = np.flatnonzero(f.distance >= 0)[:LEGACY_CAP]
    keep[whole] = True
    keep |= f.box >= 0
    return f.take(keep)
