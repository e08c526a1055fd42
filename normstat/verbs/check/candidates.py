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

__all__ = ["CAP", "CAP_BOX", "RADIUS", "RADIUS_BOX", "Found", "nearest", "search"]

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

    def take(self, keep: np.ndarray) -> Found:
        """The candidates ``keep`` (a mask or indices) selects."""
        return Found(
            self.rows[keep],
            self.distance[keep],
            self.mirrored[keep],
            self.box[keep],
            self.box_distance[keep],
        )


def nearest(
    test: np.ndarray, row: np.ndarray, dist: np.ndarray, extra: np.ndarray, cap: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per (test, row), the nearest find (least ``extra`` among equals); then per test its
    ``cap`` nearest, by distance then row. Each step sorts one packed integer key (distances
    below 2^7, extras below 2^6): the millions of finds of a crowded hash space sort in a
    fraction of a second."""
    if not len(test):
        return test, row, dist, extra
    t, r, d, e = (a.astype(np.int64) for a in (test, row, dist, extra))
    # Beyond the distance at which a test image has ``cap`` finds per query kind, none can be
    # among its nearest: drop them before sorting (a crowded space finds thousands).
    kinds = int(e.max()) + 1
    counts = np.bincount(t * 65 + d, minlength=(int(t.max()) + 1) * 65).reshape(-1, 65)
    enough = np.cumsum(counts, axis=1) >= cap * min(kinds, 4)
    limit = np.where(enough.any(axis=1), enough.argmax(axis=1), 64)
    near = d <= limit[t]
    t, r, d, e = t[near], r[near], d[near], e[near]
    rb = max(1, int(r.max()).bit_length())
    if int(t.max()).bit_length() + rb + 13 > 63:
        raise ValueError("too many tests or rows to pack")
    order = np.argsort((t << (rb + 13)) | (r << 13) | (d << 6) | e)
    t, r, d, e = t[order], r[order], d[order], e[order]
    first = np.ones(len(t), dtype=bool)
    first[1:] = (t[1:] != t[:-1]) | (r[1:] != r[:-1])
    t, r, d, e = t[first], r[first], d[first], e[first]
    order = np.argsort((t << (rb + 7)) | (d << rb) | r)
    t, r, d, e = t[order], r[order], d[order], e[order]
    starts = np.searchsorted(t, t, side="left")
    keep = np.arange(len(t)) - starts < cap
    return t[keep], r[keep], d[keep], e[keep]


Crops = tuple[HammingIndex, np.ndarray, tuple[int, int]]  # index of the rows, rows, modal size


def search(
    index: HammingIndex,
    phash: np.ndarray,
    boxes: np.ndarray,
    size: np.ndarray,
    heights: np.ndarray,
    widths: np.ndarray,
    crops: Crops | None = None,
    boxed: np.ndarray | None = None,
) -> list[Found]:
    """Candidates of each test image, from its whole-image hashes ``phash`` (n, k: the image,
    its mirror image, then the image resized, see queries.py) and box hashes ``boxes`` (n,
    48); ``size`` (n, 2) the test images'
    height and width, ``heights`` and ``widths`` the contributors'."""
    n, nq = phash.shape
    boxed = np.ones(n, dtype=bool) if boxed is None else boxed
    # The image's and its mirror image's hashes read every key within a bit of their
    # substrings; the 2× and 0.5× ones, which a resized copy matches within a few bits, their
    # own keys only (half the search's time on a crowded set).
    wide, narrow = phash[:, :2], phash[:, 2:]
    qi, row, dist = index.search(wide.ravel(), RADIUS, probe=1, ordered=False)
    qv, rv, dv = index.search(narrow.ravel(), RADIUS, probe=0, ordered=False)
    k = narrow.shape[1]
    qi = np.concatenate([(qi // 2) * nq + qi % 2, (qv // max(k, 1)) * nq + qv % max(k, 1) + 2])
    row, dist = np.concatenate([row, rv]), np.concatenate([dist, dv])
    whole = nearest(qi // nq, row, dist, qi % nq, CAP)
    nb = boxes.shape[1]
    modal = np.zeros(n, dtype=bool)
    if crops is not None:
        modal = (size[:, 0] == crops[2][0]) & (size[:, 1] == crops[2][1])
    found = []
    for part, idx, rows in (
        (~modal, index, None),
        (modal, *crops[:2]) if crops else (modal, None, None),
    ):
        tests = np.flatnonzero(part)
        if idx is None or not len(tests) or not len(idx):
            continue
        probe = 1 if len(idx) <= WIDE_BOX_ROWS else 0
        q, r, d = idx.search(boxes[tests].ravel(), RADIUS_BOX, probe=probe, ordered=False)
        found.append((tests[q // nb] * nb + q % nb, r if rows is None else rows[r], d))
    if found:
        qi, row, dist = (np.concatenate(parts) for parts in zip(*found, strict=True))
    else:
        qi = row = dist = np.zeros(0, dtype=np.int64)
    # A crop has another size than the test image: the others (a crowd of look-alikes, in a
    # dataset of one image size) are no crop candidates.
    test = qi // nb
    other = (heights[row] != size[test, 0]) | (widths[row] != size[test, 1])
    by_box = nearest(test[other], row[other], dist[other], (qi % nb)[other], CAP_BOX)
    out = []
    w_start = np.searchsorted(whole[0], np.arange(n + 1))
    b_start = np.searchsorted(by_box[0], np.arange(n + 1))
    for t in range(n):
        w = slice(w_start[t], w_start[t + 1])
        b = slice(b_start[t], b_start[t + 1])
        rows_w, dist_w, mirror = whole[1][w], whole[2][w], whole[3][w] == 1
        if b.start == b.stop:  # no box find (a dataset of one size): the whole-image finds
            none = np.full(len(rows_w), -1, dtype=np.int64)
            out.append(Found(rows_w, dist_w, mirror, none, none.copy()))
            continue
        rows_b, dist_b, box_b = by_box[1][b], by_box[2][b], by_box[3][b]
        box = np.full(len(rows_w), -1, dtype=np.int64)
        box_d = box.copy()
        pos = {int(r): i for i, r in enumerate(rows_w)}
        extra = []
        for j, r in enumerate(rows_b.tolist()):
            i = pos.get(r)
            if i is None:
                extra.append(j)
            else:  # found both ways: its whole-image entry, with the box attached
                box[i], box_d[i] = box_b[j], dist_b[j]
        extra_i = np.array(extra, dtype=np.int64)
        out.append(
            Found(
                np.concatenate([rows_w, rows_b[extra_i]]),
                np.concatenate([dist_w, np.full(len(extra_i), -1, dtype=np.int64)]),
                np.concatenate([mirror, np.zeros(len(extra_i), dtype=bool)]),
                np.concatenate([box, box_b[extra_i]]),
                np.concatenate([box_d, dist_b[extra_i]]),
            )
        )
    return out
