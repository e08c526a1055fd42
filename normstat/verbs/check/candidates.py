"""Which contributors each test image of a chunk is compared with: those whose pHash is near
its whole-image hash (or its mirror image's), and those near one of its crop boxes' hashes.

Bounded work: a test image keeps its ``CAP`` nearest contributors by whole-image hash
(nearest first, ties by row) and its ``CAP_BOX`` nearest by crop-box hash, however crowded the
hash space is; box finds of the test image's own size are dropped first (a crop has another
size; in a dataset of one size those finds are the crowd of look-alikes). The index
search reads every key within one bit of each query's substrings (whole-image hashes, and box
hashes while the index is at most ``WIDE_BOX_ROWS`` rows; beyond that, box hashes read their own
keys only, so that a 48-box search of a million-row index stays bounded: crops are then found
when one substring of the box's hash is intact).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .hamming import HammingIndex

__all__ = ["CAP", "CAP_BOX", "RADIUS", "RADIUS_BOX", "Found", "search"]

RADIUS = 12  # whole-image hashes: pHash bits a candidate may differ by
RADIUS_BOX = 12  # crop-box hashes
CAP = 48  # whole-image candidates kept per test image
CAP_BOX = 64  # crop-box candidates kept per test image
WIDE_BOX_ROWS = 1 << 18


@dataclass
class Found:
    """Candidates of one test image: contributor rows, their whole-image distance (-1: found
    only by a box), mirrored (the mirror image's hash was nearer), and for box finds the box
    (index into BOXES, -1: none) and its distance."""

    rows: np.ndarray
    distance: np.ndarray
    mirrored: np.ndarray
    box: np.ndarray
    box_distance: np.ndarray


def _nearest(
    test: np.ndarray, row: np.ndarray, dist: np.ndarray, extra: np.ndarray, cap: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per (test, row), the nearest find; then per test its ``cap`` nearest, sorted."""
    order = np.lexsort((extra, row, dist, test))
    test, row, dist, extra = test[order], row[order], dist[order], extra[order]
    pair = np.ones(len(test), dtype=bool)
    if len(test):  # first of each (test, row) in this order: its nearest find
        key = test.astype(np.int64) * (1 << 32) + row
        _, first = np.unique(key, return_index=True)
        pair[:] = False
        pair[first] = True
    test, row, dist, extra = test[pair], row[pair], dist[pair], extra[pair]
    order = np.lexsort((row, dist, test))
    test, row, dist, extra = test[order], row[order], dist[order], extra[order]
    starts = np.searchsorted(test, test, side="left")
    keep = np.arange(len(test)) - starts < cap
    return test[keep], row[keep], dist[keep], extra[keep]


def search(
    index: HammingIndex,
    phash: np.ndarray,
    boxes: np.ndarray,
    size: np.ndarray,
    heights: np.ndarray,
    widths: np.ndarray,
) -> list[Found]:
    """Candidates of each test image, from its whole-image hashes ``phash`` (n, k: the image,
    its mirror image, then the image resized, see queries.py) and box hashes ``boxes`` (n,
    48); ``size`` (n, 2) the test images'
    height and width, ``heights`` and ``widths`` the contributors'."""
    n, nq = phash.shape
    qi, row, dist = index.search(phash.ravel(), RADIUS, probe=1)
    whole = _nearest(qi // nq, row, dist, qi % nq, CAP)
    probe = 1 if len(index) <= WIDE_BOX_ROWS else 0
    qi, row, dist = index.search(boxes.ravel(), RADIUS_BOX, probe=probe)
    nb = boxes.shape[1]
    # A crop has another size than the test image: the others (a crowd of look-alikes, in a
    # dataset of one image size) are no crop candidates.
    test = qi // nb
    other = (heights[row] != size[test, 0]) | (widths[row] != size[test, 1])
    boxed = _nearest(test[other], row[other], dist[other], (qi % nb)[other], CAP_BOX)
    out = []
    w_start = np.searchsorted(whole[0], np.arange(n + 1))
    b_start = np.searchsorted(boxed[0], np.arange(n + 1))
    for t in range(n):
        w = slice(w_start[t], w_start[t + 1])
        b = slice(b_start[t], b_start[t + 1])
        rows = np.concatenate([whole[1][w], boxed[1][b]])
        _, first = np.unique(rows, return_index=True)
        k = len(whole[1][w])
        dist_w = np.full(len(rows), -1, dtype=np.int64)
        dist_w[:k] = whole[2][w]
        mirror = np.zeros(len(rows), dtype=bool)
        mirror[:k] = whole[3][w] == 1
        box = np.full(len(rows), -1, dtype=np.int64)
        box[k:] = boxed[3][b]
        box_d = np.full(len(rows), -1, dtype=np.int64)
        box_d[k:] = boxed[2][b]
        # a row found both ways: its whole-image entry, with the box attached
        merged_box = box.copy()
        merged_bd = box_d.copy()
        pos = {int(r): i for i, r in enumerate(rows[:k])}
        for j in range(k, len(rows)):
            i = pos.get(int(rows[j]))
            if i is not None:
                merged_box[i], merged_bd[i] = box[j], box_d[j]
        keep = np.sort(first)  # every whole-image find, then the box finds not among them
        out.append(
            Found(rows[keep], dist_w[keep], mirror[keep], merged_box[keep], merged_bd[keep])
        )
    return out
