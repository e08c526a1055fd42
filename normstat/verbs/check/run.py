"""check: manifest + test sources → fingerprints and query hashes in the engine's workers →
exact matches + index search → candidates verified on the pixels in the workers → report."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from normstat.engine import make_engine
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
    reading,
    run_chunks,
    scan,
    split,
    tick,
)

from .candidates import NO_PHASH, Tests, candidates, contributor_warnings, interpret
from .candidates import test_duplicate_warnings as duplicate_warnings
from .leakage import LeakReport, exact_leaks, root_overlaps
from .prints import PrintTask, fingerprint_chunk
from .verify import VerifyTask, verify_chunk

__all__ = ["check"]


def check(
    source: Source,
    stats: Stats,
    opts: CheckOptions,
    workers: int | None,
    progress: Progress | None,
    storage_options: Mapping[str, Any] | None = None,
) -> LeakReport:
    """Test images of ``source`` that were among the statistics' contributors: exact copies and
    verified near-duplicates."""
    if stats.fingerprints is None:
        raise ManifestError(stats.path, "manifest has no fingerprints to check against")
    fp = stats.fingerprints
    mode = stats.read_mode()  # CIELAB statistics: fingerprinted as their RGB pixels
    read = stats.read_options(opts.max_pixels)
    report = LeakReport([], 0, manifest=stats.path or "")
    report.warnings = root_overlaps(list(stats.data.get("sources", [])), source.locations())
    report.warnings += contributor_warnings(fp)
    tests: Tests = []
    with make_engine(workers) as engine:
        images, skipped = scan(source, engine, read, progress)
        bad = list(skipped)
        refs = image_refs(images)
        chunks = split(refs, engine.workers)

        def task(c: list[ImageRef]) -> PrintTask:
            return PrintTask(source, c, mode.name, read)

        done = 0
        for chunk, prints in run_chunks(
            engine, fingerprint_chunk, chunks, task, first_name, reading
        ):
            for ref, fprint in zip(chunk, prints, strict=True):
                if isinstance(fprint, Skipped):
                    bad.append(fprint)
                else:
                    tests.append((ref, fprint.pixel_hash, fprint.queries))
            done += len(chunk)
            tick(progress, "check", done, len(refs))
        if not tests:  # a gate that checked nothing must not pass
            raise none_read(source.name, bad)
        report.leaked = exact_leaks(fp, [(ref.name, h) for ref, h, _ in tests])
        if fp.phash is None:
            report.warnings.append(NO_PHASH)
        else:
            report.threshold = opts.threshold
            found, internal = candidates(fp, tests)
            jobs = found.jobs + internal
            results: list[Any] = []
            vchunks = split(jobs, engine.workers)
            column = stats.data.get("options", {}).get("column")
            train = for_roots(fp.roots, storage_options, column)

            def vtask(c: list[Any]) -> VerifyTask:
                return VerifyTask(c, source, train, mode.name, read)

            for _, res in run_chunks(engine, verify_chunk, vchunks, vtask, first_name, _verifying):
                results.extend(res)
                tick(progress, "verify", len(results), len(jobs))
            n = len(found.jobs)
            near, unverified, _ = interpret(found.jobs, results[:n], opts.threshold)
            report.leaked += near
            report.warnings += unverified
            report.warnings += duplicate_warnings(tests, internal, results[n:], opts.threshold)
    report.checked = len(tests)
    report.skipped = [
        {"path": s.path, "reason": s.reason} for s in sorted(bad, key=lambda s: s.path)
    ]
    report.leaked.sort(key=lambda leak: (leak.test, -leak.score, leak.train))
    return report


def _verifying(chunk: list[Any]) -> str:
    return "verifying it" if len(chunk) == 1 else "verifying it or a test image after it"
