"""compute on a Dask cluster against the process pool, same files, same number of workers, timed
in one run: the ratio cluster ÷ pool is the cost of scheduling through Dask (goal ≥ 0.85×). The
cluster is a 2-worker LocalCluster on loopback (one thread per worker process, like the pool's
processes); its start-up is timed apart, since a cluster outlives many runs. Each cluster run
includes what every run pays: connecting the client and checking the workers' version. Each
pool run includes the pool's start-up (by fork, in a fresh process, as the command line's).

Usage: python benchmarks/cluster.py [--data /tmp/normstat-bench] [--repeat 3] [--only jpeg digits]
Needs ``pip install -e '.[dask]'``; the corpus as throughput.py builds it (corpus.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import normstat

HERE = Path(__file__).resolve().parent
CORPORA = {  # name: what
    "jpeg": "1,000 photo JPEGs, 500×375",
    "detail": "400 high-detail JPEGs, q95",
    "digits": "5,000 28×28 gray PNGs",
    "png16": "20 1024×1024 16-bit PNGs",
}
WORKERS = 2


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def pool_seconds(folder: Path) -> float:
    """compute through the pool in a fresh process, as the command line runs it: this one runs
    the cluster's threads, which would make the pool start from a fork server, not fork. The
    second run is timed (the first pays one-off imports, as the cluster's warm workers did)."""
    code = (
        "import time, normstat;"
        f"normstat.compute({str(folder)!r}, workers={WORKERS});"
        "t = time.perf_counter();"
        f"normstat.compute({str(folder)!r}, workers={WORKERS});"
        "print(time.perf_counter() - t)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout)


def on_cluster(folder: Path, address: str) -> normstat.Stats:
    return normstat.compute(str(folder), scheduler=address)


def start_cluster() -> tuple[object, float]:
    from distributed import LocalCluster

    t = time.perf_counter()
    cluster = LocalCluster(
        n_workers=WORKERS,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
    )
    return cluster, time.perf_counter() - t


def bench(name: str, folder: Path, address: str, repeat: int) -> float:
    n = sum(1 for p in folder.rglob("*") if p.is_file())
    pools, clusters = [], []
    for _ in range(repeat):  # interleaved: a load that drifts during the run hits both alike
        pools.append(pool_seconds(folder))
        clusters.append(timed(lambda: on_cluster(folder, address)))
    pool, cluster = min(pools), min(clusters)
    same = on_cluster(folder, address).mean == normstat.compute(str(folder), workers=WORKERS).mean
    ratio = pool / cluster
    print(f"\n## {name}: {CORPORA[name]} ({n} files), best of {repeat}")
    print(f"{'what':<34}{'seconds':>9}{'images/s':>10}")
    print(f"{f'compute, pool of {WORKERS}':<34}{pool:>9.3f}{n / pool:>10.0f}")
    print(f"{f'compute, cluster of {WORKERS}':<34}{cluster:>9.3f}{n / cluster:>10.0f}")
    print(f"{'cluster ÷ pool (throughput)':<40}{ratio:>7.2f}×  (goal ≥ 0.85×)")
    if not same:
        print("!! the cluster's mean differs from the pool's")
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "normstat-bench")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", nargs="*", default=["jpeg", "digits"], choices=list(CORPORA))
    args = parser.parse_args()
    if any(not (args.data / name).is_dir() for name in args.only):
        subprocess.run([sys.executable, str(HERE / "corpus.py"), str(args.data)], check=True)
    print(
        f"normstat {normstat.__version__}, {platform.processor() or platform.machine()},"
        f" {os.cpu_count()} cores, Python {platform.python_version()},"
        f" {time.strftime('%Y-%m-%d')}"
    )
    cluster, started = start_cluster()
    try:
        address = cluster.scheduler_address  # type: ignore[attr-defined]
        print(f"LocalCluster of {WORKERS} worker processes on loopback: started in {started:.2f} s")
        summary = {
            name: round(bench(name, args.data / name, address, args.repeat), 3)
            for name in args.only
        }
    finally:
        cluster.close()  # type: ignore[attr-defined]
    print("\n" + json.dumps({"cluster_start_s": round(started, 2), "cluster_over_pool": summary}))


if __name__ == "__main__":
    main()
