"""Radius search over 64-bit hashes by multi-index hashing (Norouzi, Punjani & Fleet, CVPR 2012).

Each code is cut into four 16-bit substrings, and each substring position gets a table: codes
sorted by that substring, with a 65,537-entry offset array, so a bucket lookup is two reads. Two
codes within Hamming distance ``r`` agree within ``r // 4`` bits on at least one substring
(pigeonhole), so probing every key within ``probe`` bits of the query's substrings finds every
code within ``4 * probe + 3`` bits, and most beyond; the full distance is then computed exactly
(NumPy's popcount) and filtered. NumPy only: no N×M loop, memory O(N).

The bits are dealt to the substrings in turn (bit i to substring i mod 4) before indexing: a
perceptual hash's low-frequency bits are shared by many images, and kept together they made one
substring's buckets thousands of codes deep on 60,000 digits. Hamming distances do not change.
The index's arrays can be saved and mapped back (``arrays``/``from_arrays``), so worker
processes share one copy.
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


def _dealt(codes: np.ndarray) -> np.ndarray:
    """The codes with bit 4j + c moved to bit 16c + j: substring c gets every fourth bit."""
    codes = np.ascontiguousarray(codes, dtype=np.uint64)
    out = np.zeros_like(codes)
    for c in range(_CHUNKS):
        for j in range(_BITS):
            bit = (codes >> np.uint64(_CHUNKS * j + c)) & np.uint64(1)
            out |= bit << np.uint64(_BITS * c + j)
    return out


def _chunk(codes: np.ndarray, c: int) -> np.ndarray:
    shift = np.uint64(_BITS * (_CHUNKS - 1 - c))
    return ((codes >> shift) & np.uint64(_KEYS - 1)).astype(np.int64)


class HammingIndex:
    """An immutable index over ``codes`` (uint64) answering radius queries."""

    def __init__(self, codes: np.ndarray) -> None:
        self._order: list[np.ndarray] = []
        self._sorted: list[np.ndarray] = []
        self._offsets: list[np.ndarray] = []
        dealt = _dealt(codes)
        self._size = len(dealt)
        for c in range(_CHUNKS):
            keys = _chunk(dealt, c)
            order = np.argsort(keys, kind="stable").astype(np.int64)
            offsets = np.zeros(_KEYS + 1, dtype=np.int64)
            np.cumsum(np.bincount(keys, minlength=_KEYS), out=offsets[1:])
            self._order.append(order)
            self._sorted.append(dealt[order])
            self._offsets.append(offsets)

    def arrays(self) -> dict[str, np.ndarray]:
        """The index as named arrays (to save, then map with ``from_arrays``)."""
        out = {}
        for c in range(_CHUNKS):
            out[f"order{c}"] = self._order[c]
            out[f"sorted{c}"] = self._sorted[c]
            out[f"offsets{c}"] = self._offsets[c]
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> HammingIndex:
        index = cls.__new__(cls)
        index._order = [arrays[f"order{c}"] for c in range(_CHUNKS)]
        index._sorted = [arrays[f"sorted{c}"] for c in range(_CHUNKS)]
        index._offsets = [arrays[f"offsets{c}"] for c in range(_CHUNKS)]
        index._size = len(index._order[0])
        return index

    def __len__(self) -> int:
        return self._size

    def search(
        self,
        queries: np.ndarray,
        radius: int,
        probe: int = 0,
        batch: int = 4096,
        ordered: bool = True,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pairs ``(query index, code index, distance)`` with distance ≤ ``radius``, each pair
        once, sorted by query then code index (unless not ``ordered``: the caller sorts).
        Exact when ``radius <= guaranteed_radius(probe)``; beyond that, a pair is found when
        some substring is within ``probe`` bits."""
        queries = _dealt(queries)
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
        if not ordered:
            return qi, ti, dist
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
