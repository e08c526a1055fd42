"""Radius search over 64-bit hashes by multi-index hashing (Norouzi, Punjani & Fleet, CVPR 2012).

Each code is cut into four 16-bit substrings, and each substring position gets a table: codes
sorted by that substring, with a 65,537-entry offset array, so a bucket lookup is two reads. Two
codes within Hamming distance ``r`` agree within ``r // 4`` bits on at least one substring
(pigeonhole), so probing every key within ``probe`` bits of the query's substrings finds every
code within ``4 * probe + 3`` bits, and most beyond; the full distance is then computed exactly
(NumPy's popcount) and filtered. NumPy only: no N×M loop, memory O(N).
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

__all__ = ["HammingIndex", "guaranteed_radius"]

_CHUNKS = 4
_BITS = 16
_KEYS = 1 << _BITS


def guaranteed_radius(probe: int) -> int:
    """The largest radius for which ``search(..., probe=probe)`` misses nothing."""
    return _CHUNKS * (probe + 1) - 1


def _probe_masks(probe: int) -> np.ndarray:
    masks = [0]
    for k in range(1, probe + 1):
        masks.extend(sum(1 << b for b in bits) for bits in combinations(range(_BITS), k))
    return np.array(masks, dtype=np.int64)


def _chunk(codes: np.ndarray, c: int) -> np.ndarray:
    shift = np.uint64(_BITS * (_CHUNKS - 1 - c))
    return ((codes >> shift) & np.uint64(_KEYS - 1)).astype(np.int64)


class HammingIndex:
    """An immutable index over ``codes`` (uint64) answering radius queries."""

    def __init__(self, codes: np.ndarray) -> None:
        self.codes = np.ascontiguousarray(codes, dtype=np.uint64)
        self._order: list[np.ndarray] = []
        self._sorted: list[np.ndarray] = []
        self._offsets: list[np.ndarray] = []
        for c in range(_CHUNKS):
            keys = _chunk(self.codes, c)
            order = np.argsort(keys, kind="stable")
            offsets = np.zeros(_KEYS + 1, dtype=np.int64)
            np.cumsum(np.bincount(keys, minlength=_KEYS), out=offsets[1:])
            self._order.append(order)
            self._sorted.append(self.codes[order])
            self._offsets.append(offsets)

    def __len__(self) -> int:
        return len(self.codes)

    def search(
        self, queries: np.ndarray, radius: int, probe: int = 0, batch: int = 4096
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pairs ``(query index, code index, distance)`` with distance ≤ ``radius``, each pair
        once, sorted by query then code index. Exact when ``radius <= guaranteed_radius(probe)``;
        beyond that, a pair is found when some substring is within ``probe`` bits."""
        queries = np.ascontiguousarray(queries, dtype=np.uint64)
        masks = _probe_masks(probe)
        out_q, out_t, out_d = [], [], []
        for lo in range(0, len(queries), batch):
            q, t, d = self._search_batch(queries[lo : lo + batch], radius, probe, masks)
            out_q.append(q + lo)
            out_t.append(t)
            out_d.append(d)
        if not out_q:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty.copy(), empty.copy()
        qi, ti, dist = np.concatenate(out_q), np.concatenate(out_t), np.concatenate(out_d)
        order = np.lexsort((ti, qi))
        return qi[order], ti[order], dist[order]

    def _search_batch(
        self, queries: np.ndarray, radius: int, probe: int, masks: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        found_q, found_t, found_d = [], [], []
        for c in range(_CHUNKS):
            keys = (_chunk(queries, c)[:, None] ^ masks[None, :]).ravel()
            rows = np.repeat(np.arange(len(queries)), len(masks))
            start = self._offsets[c][keys]
            count = self._offsets[c][keys + 1] - start
            total = int(count.sum())
            if total == 0:
                continue
            ends = np.cumsum(count)
            pos = np.arange(total) + np.repeat(start - (ends - count), count)
            qrow = np.repeat(rows, count)
            xor = self._sorted[c][pos] ^ queries[qrow]
            dist = np.bitwise_count(xor)
            keep = dist <= radius
            # A pair also reachable through an earlier substring was reported there.
            for earlier in range(c):
                keep &= np.bitwise_count(_chunk(xor, earlier)) > probe
            found_q.append(qrow[keep])
            found_t.append(self._order[c][pos[keep]])
            found_d.append(dist[keep].astype(np.int64))
        if not found_q:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty.copy(), empty.copy()
        return np.concatenate(found_q), np.concatenate(found_t), np.concatenate(found_d)
