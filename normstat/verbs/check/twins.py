"""Warnings about duplicates on either side: images that contribute to the statistics more
than once, and test images that duplicate each other (exact, or near: a copy by the same rule
check verifies contributors with, both bands all but equal)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from normstat.fingerprints import Fingerprints

from .candidates import nearest
from .features import features, mirrored, paired
from .hamming import HammingIndex

__all__ = ["contributor_warnings", "test_duplicate_warnings"]

TWIN_RADIUS = 8  # pHash bits two test images may differ by to be compared
TWINS = 4  # nearest other test images each test image is compared with
TWIN_AGREEMENT = (0.998, 0.99)  # LOW and BAND agreement of a near-duplicate pair
LIMIT = 10  # warnings of one kind listed before "and N more"


def contributor_warnings(fp: Fingerprints, limit: int = LIMIT) -> list[str]:
    """Images that contribute to the statistics more than once (same pixels, other names)."""
    keys = np.ascontiguousarray(fp.pixel_hash).view([("a", "<u8"), ("b", "<u8")]).ravel()
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    dup = np.flatnonzero(counts[inverse] > 1)
    groups: dict[int, list[int]] = defaultdict(list)
    for i in dup.tolist():
        groups[int(inverse[i])].append(i)
    ordered = sorted(groups.values())
    out = [
        "images with the same pixels contribute "
        f"{len(g)} times to the statistics: {', '.join(fp.path(i) for i in g)}"
        for g in ordered[:limit]
    ]
    if len(ordered) > limit:
        out.append(f"... and {len(ordered) - limit} more groups of duplicate contributors")
    return out


def test_duplicate_warnings(
    names: list[str], hashes: list[bytes], phash: np.ndarray, thumbs: np.ndarray
) -> list[str]:
    """Test images with the same pixels, and near-duplicate pairs inside the test split."""
    out = []
    by_hash: dict[bytes, list[str]] = defaultdict(list)
    for name, h in zip(names, hashes, strict=True):
        by_hash[h].append(name)
    for group in by_hash.values():
        if len(group) > 1:
            out.append(f"test images with the same pixels: {', '.join(group)}")
    if len(names) < 2:
        return out
    qi, ti, dist = HammingIndex(phash).search(phash, TWIN_RADIUS, probe=1, ordered=False)
    other = qi != ti
    qi, ti, _, _ = nearest(qi[other], ti[other], dist[other], np.zeros_like(qi[other]), TWINS)
    keep = (qi < ti) & np.array(
        [hashes[a] != hashes[b] for a, b in zip(qi, ti, strict=True)], dtype=bool
    )
    qi, ti = qi[keep], ti[keep]
    if not len(qi):
        return out
    f = features(thumbs)
    both = np.maximum(paired(f[qi], f[ti]), paired(mirrored(f[qi]), f[ti]))
    near = (both[0] >= TWIN_AGREEMENT[0]) & (both[1] >= TWIN_AGREEMENT[1])
    pairs = [(int(a), int(b)) for a, b in zip(qi[near], ti[near], strict=True)]
    for a, b in pairs[:LIMIT]:
        out.append(f"test images {names[a]} and {names[b]} are near-duplicates")
    if len(pairs) > LIMIT:
        out.append(f"... and {len(pairs) - LIMIT} more near-duplicate pairs of test images")
    return out
