"""Near-duplicate search at scale: 1M train × 10k test pHashes, through the multi-index, against
a brute-force Hamming scan of the same queries measured in the same run (on a sample of test
images, extrapolated).

Each test image is searched the way ``check`` searches it: 98 query hashes (49 crop boxes, each
also mirrored), the two whole-image ones probed one bit deeper. Synthetic hashes are balanced
(32 ones, as pHash's median split makes them); one test image in ten has a planted near copy.

Usage: python benchmarks/search.py [--train 1000000] [--test 10000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from normstat.verbs.check.candidates import search_queries
from normstat.verbs.check.hamming import HammingIndex
from normstat.verbs.check.verify import BOXES, RADIUS


def balanced(rng: np.random.Generator, n: int) -> np.ndarray:
    """n random 64-bit codes with exactly 32 bits set."""
    bits = np.zeros((n, 64), dtype=bool)
    bits[:, :32] = True
    bits = rng.permuted(bits, axis=1)
    return np.packbits(bits, axis=1).view(">u8")[:, 0].astype(np.uint64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=1_000_000)
    parser.add_argument("--test", type=int, default=10_000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n_queries = 2 * len(BOXES)
    train = balanced(rng, args.train)
    queries = balanced(rng, args.test * n_queries).reshape(args.test, n_queries)
    planted = rng.choice(args.test, args.test // 10, replace=False)
    for t in planted:  # a near copy: 6 bits of the whole-image hash flipped
        flip = rng.choice(64, 6, replace=False)
        queries[t, 0] = train[t] ^ np.uint64(sum(1 << int(b) for b in flip))

    t0 = time.perf_counter()
    index = HammingIndex(train)
    t1 = time.perf_counter()
    qi, ti, _ = search_queries(index, queries)
    t2 = time.perf_counter()
    found = {(int(q) // n_queries, int(t)) for q, t in zip(qi, ti, strict=True)}
    recall = np.mean([(int(t), int(t)) in found for t in planted])

    sample = queries[:20].ravel()
    t3 = time.perf_counter()
    for q in sample:
        np.flatnonzero(np.bitwise_count(train ^ q) <= RADIUS)
    brute = (time.perf_counter() - t3) / len(sample) * queries.size

    print(
        f"{args.train:,} train × {args.test:,} test hashes"
        f" ({queries.size:,} queries, radius {RADIUS})"
    )
    print(f"index build        {t1 - t0:8.2f} s")
    print(f"search             {t2 - t1:8.2f} s   ({len(qi):,} pairs within radius)")
    print(f"build + search     {t2 - t0:8.2f} s")
    print(f"brute force (est.) {brute:8.1f} s   = {brute / (t2 - t0):.0f}× the index")
    print(f"planted near copies found: {100 * recall:.1f} %")


if __name__ == "__main__":
    main()
