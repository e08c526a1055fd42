"""The near-duplicate stage of ``check``: candidates from the hash index, the verification jobs
for the workers, and what their results mean (leaks, warnings). Pure functions; ``run.check`` runs
the jobs on its engine.

Bounded work: each test image verifies at most ``CAP`` candidates, nearest hashes first, and a
duplicate inside the test split is looked for among its ``CAP`` nearest other test images.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from normstat.fingerprints import Fingerprints
from normstat.verbs.common import ImageRef

from .hamming import HammingIndex
from .leakage import Leak
from .verify import BOXES, RADIUS, Match, Pair, TrainRow, variant

__all__ = [
    "CAP",
    "NO_PHASH",
    "Candidates",
    "candidates",
    "contributor_warnings",
    "interpret",
    "search_queries",
    "test_duplicate_warnings",
]

CAP = 64
NO_PHASH = (
    "manifest has no perceptual fingerprints: only exact copies are checked; "
    "recompute with normstat >= 0.2"
)
_WHOLE = (0, len(BOXES))  # query columns of the whole image, plain and mirrored


def _best_per_pair(
    found: tuple[np.ndarray, np.ndarray, np.ndarray], n_queries: int
) -> dict[int, list[tuple[int, int, int]]]:
    """Per test image, up to CAP (reference, variant, distance), nearest first; a reference
    found through several variants keeps its nearest one."""
    qi, ti, dist = found
    test, var = qi // n_queries, qi % n_queries
    order = np.lexsort((var, ti, dist, test))
    out: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
    seen: set[tuple[int, int]] = set()
    for k in order.tolist():
        t, ref = int(test[k]), int(ti[k])
        if (t, ref) in seen or len(out[t]) >= CAP:
            continue
        seen.add((t, ref))
        out[t].append((ref, int(var[k]), int(dist[k])))
    return out


def search_queries(
    index: HammingIndex, queries: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Whole-image hashes are probed one bit deeper (exact to 7 bits) than crop boxes."""
    n_queries = queries.shape[1]
    whole = np.zeros(n_queries, dtype=bool)
    whole[list(_WHOLE)] = True
    found = []
    for mask, probe in ((whole, 1), (~whole, 0)):
        cols = np.flatnonzero(mask)
        qi, ti, dist = index.search(queries[:, cols].ravel(), RADIUS, probe=probe)
        test, col = qi // len(cols), cols[qi % len(cols)]
        found.append((test * n_queries + col, ti, dist))
    qi, ti, dist = (np.concatenate(parts) for parts in zip(*found, strict=True))
    return qi, ti, dist


@dataclass
class Candidates:
    """Verification jobs, one per test image with candidates: (test path, pairs)."""

    jobs: list[tuple[ImageRef, list[Pair]]] = field(default_factory=list)


Tests = list[tuple[ImageRef, bytes, np.ndarray]]  # test image, pixel hash, query hashes


def candidates(
    fp: Fingerprints, tests: Tests
) -> tuple[Candidates, list[tuple[ImageRef, list[Pair]]]]:
    """Contributor candidates for each test image (excluding exact copies, reported already),
    and test-split candidates (each unordered pair once)."""
    assert fp.phash is not None
    result = Candidates()
    if not tests:
        return result, []
    queries = np.stack([q for _, _, q in tests])
    index = HammingIndex(fp.phash)
    per_test = _best_per_pair(search_queries(index, queries), n_queries=queries.shape[1])
    train_hashes = fp.pixel_hash
    for t, refs in sorted(per_test.items()):
        test, h, _ = tests[t]
        pairs = []
        for ref, var, dist in refs:
            if bytes(train_hashes[ref]) == h:
                continue
            row = TrainRow(fp.roots[int(fp.root[ref])], fp.paths[ref])
            pairs.append(Pair(fp.path(ref), bytes(train_hashes[ref]), var, dist, row))
        if pairs:
            result.jobs.append((test, pairs))
    # Inside the test split: whole-image hashes of the others against every query variant.
    test_index = HammingIndex(queries[:, 0])
    per_test = _best_per_pair(search_queries(test_index, queries), n_queries=queries.shape[1])
    internal = []
    for t, refs in sorted(per_test.items()):
        twins = [
            Pair(tests[ref][0].name, None, var, dist, tests[ref][0])
            for ref, var, dist in refs
            if ref > t and tests[ref][1] != tests[t][1]  # exact twins are warned about apart
        ]
        if twins:
            internal.append((tests[t][0], twins))
    return result, internal


def interpret(
    jobs: list[tuple[ImageRef, list[Pair]]], results: list[list[Match]], threshold: float
) -> tuple[list[Leak], list[str], int]:
    """Leaks at or above ``threshold``, warnings for candidates that could not be verified, and
    how many candidates were too flat to compare."""
    leaks, warnings, flat = [], [], 0
    for (ref, _), matches in zip(jobs, results, strict=True):
        test = ref.name
        for m in matches:
            if m.score is None:
                if m.problem == "flat":
                    flat += 1
                else:
                    warnings.append(
                        f"cannot verify candidate {m.pair.ref} for test image {test}: {m.problem}"
                    )
            elif m.score >= threshold:
                mirrored = variant(m.pair.variant)[1]
                leaks.append(Leak(test, m.pair.ref, "near", m.score, m.pair.distance, mirrored))
    return leaks, warnings, flat


def test_duplicate_warnings(
    tests: Tests,
    internal: list[tuple[ImageRef, list[Pair]]],
    results: list[list[Match]],
    threshold: float,
) -> list[str]:
    """Duplicates inside the test split: exact twins, and verified near-duplicates."""
    out = []
    by_hash: dict[bytes, list[str]] = defaultdict(list)
    for ref, h, _ in tests:
        by_hash[h].append(ref.name)
    for paths in by_hash.values():
        if len(paths) > 1:
            out.append(f"test images with the same pixels: {', '.join(paths)}")
    for (test, _), matches in zip(internal, results, strict=True):
        for m in matches:
            if m.score is not None and m.score >= threshold:
                pair = f"{test.name} and {m.pair.ref}"
                out.append(f"test images {pair} are near-duplicates (score {m.score:.3f})")
    return out


def contributor_warnings(fp: Fingerprints, limit: int = 10) -> list[str]:
    """Images that contribute to the statistics more than once (same pixels, other names)."""
    by_hash: dict[bytes, list[int]] = defaultdict(list)
    for i, row in enumerate(fp.pixel_hash):
        by_hash[bytes(row)].append(i)
    groups = [g for g in by_hash.values() if len(g) > 1]
    out = [
        "images with the same pixels contribute "
        f"{len(g)} times to the statistics: {', '.join(fp.path(i) for i in g)}"
        for g in groups[:limit]
    ]
    if len(groups) > limit:
        out.append(f"... and {len(groups) - limit} more groups of duplicate contributors")
    return out
