"""check: manifest → contributors' index and references in a shared temporary folder → each
chunk of test images read, fingerprinted, searched and verified in one pass in the engine's
workers → exact matches joined in the driver → report."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from typing import Any

import numpy as np

from normstat.engine import chunked, make_engine
from normstat.errors import ManifestError
from normstat.manifest import Stats
from normstat.options import CheckOptions
from normstat.readers import Skipped
from normstat.sources import Source, for_roots
from normstat.verbs.common import (
    ImageRef,
    Progress,
    first_name,
    image_refs,
    none_read,
    run_chunks,
    scan,
    tick,
)
from normstat.verbs.common import reading as _reading

from .chunk import ChunkTask, Outcome, check_chunk
from .decide import Rule
from .leakage import Leak, LeakReport, exact_leaks, root_overlaps
from .store import build_store
from .twins import contributor_warnings, test_duplicate_warnings

__all__ = ["LEGACY", "NO_PHASH", "check"]

CHUNK = 256  # test images per task: enough to batch their hashing and search
NO_PHASH = (
    "manifest has no perceptual fingerprints: only exact copies are checked; "
    "recompute with normstat >= 0.2"
)
LEGACY = (
    "manifest predates stored verification data: near-duplicate candidates are read from the "
    "train files (recompute the statistics with this version to check without them)"
)


def check(
    source: Source,
    stats: Stats,
    opts: CheckOptions,
    workers: int | None,
    progress: Progress | None,
    storage_options: Mapping[str, Any] | None = None,
) -> LeakReport:
    """Test images of ``source`` that were among the statistics' contributors: exact copies and
    near-duplicates that stand out from the test image's neighbourhood (decide.py)."""
    if stats.fingerprints is None:
        raise ManifestError(stats.path, "manifest has no fingerprints to check against")
    fp = stats.fingerprints
    mode = stats.read_mode()  # CIELAB statistics: fingerprinted as their RGB pixels
    read = stats.read_options(opts.max_pixels)
    rule = Rule(opts.margin, opts.look, opts.threshold)
    report = LeakReport([], 0, manifest=stats.path or "", rule=rule, fail_on=opts.fail_on)
    report.warnings = root_overlaps(list(stats.data.get("sources", [])), source.locations())
    report.warnings += contributor_warnings(fp)
    near = fp.phash is not None
    if not near:
        report.warnings.append(NO_PHASH)
        report.rule = None
    elif fp.thumb is None:
        report.warnings.append(LEGACY)
        report.verification = "files"
    spec = build_store(fp) if near else None
    train = None
    if spec is not None and spec.legacy:
        column = stats.data.get("options", {}).get("column")
        train = for_roots(fp.roots, storage_options, column)
    outcomes: list[tuple[ImageRef, Outcome]] = []
    bad: list[Skipped] = []
    try:
        with make_engine(workers) as engine:
            images, skipped = scan(source, engine, read, progress)
            bad.extend(skipped)
            refs = image_refs(images)
            chunks = chunked(refs, engine.workers, largest=CHUNK)

            def task(c: list[ImageRef]) -> ChunkTask:
                return ChunkTask(source, c, mode.name, read, spec, rule, train)

            done = 0
            for chunk, results in run_chunks(
                engine, check_chunk, chunks, task, first_name, _reading
            ):
                for ref, got in zip(chunk, results, strict=True):
                    if isinstance(got, Skipped):
                        bad.append(got)
                    else:
                        outcomes.append((ref, got))
                done += len(chunk)
                tick(progress, "check", done, len(refs))
    finally:
        if spec is not None:
            shutil.rmtree(spec.folder, ignore_errors=True)
    if not outcomes:  # a gate that checked nothing must not pass
        raise none_read(source.name, bad)
    exact = exact_leaks(fp, [(ref.name, o.pixel_hash) for ref, o in outcomes])
    report.leaked = list(exact)
    copied = {leak.test for leak in exact}
    for ref, o in outcomes:
        report.warnings.extend(o.problems)
        v = o.verdict
        if v is None or ref.name in copied:
            continue
        leak = Leak.of(ref.name, fp.path(v.row), v)
        (report.leaked if v.tier == "leak" else report.look_alikes).append(leak)
    report.warnings += test_duplicate_warnings(
        [ref.name for ref, _ in outcomes],
        [o.pixel_hash for _, o in outcomes],
        np.array([o.phash for _, o in outcomes], dtype=np.uint64),
        np.stack([np.frombuffer(o.thumb, np.uint8) for _, o in outcomes]).reshape(-1, 32, 32),
    )
    report.checked = len(outcomes)
    report.skipped = [
        {"path": s.path, "reason": s.reason} for s in sorted(bad, key=lambda s: s.path)
    ]
    report.leaked.sort(key=lambda leak: (leak.test, -leak.score, leak.train))
    report.look_alikes.sort(key=lambda leak: (leak.test, -leak.score, leak.train))
    return report
