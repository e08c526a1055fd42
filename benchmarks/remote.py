"""compute over S3 against compute over the same files on local disk, timed in one run with the
same number of workers; the ratio, not the seconds, is the result.

The S3 server is moto's ``ThreadedMotoServer`` on 127.0.0.1 in this process (nothing leaves the
machine). It is a Python server: each request costs it about a millisecond of CPU, taken from
the same cores the workers decode on, so the ratio is a pessimistic bound for a real object
store (whose cost is latency, which the concurrent fetches of ``FsspecSource.stream`` hide).
The "fetch only" row (every object downloaded concurrently, nothing decoded) shows how much of
the S3 time the server alone takes.

Usage: python benchmarks/remote.py [--data /tmp/normstat-bench] [--repeat 3] [--workers 2]
                                   [--only jpeg digits]
Needs ``pip install -r benchmarks/requirements.txt`` (to build the corpus) and
``pip install 'normstat[s3]' 'moto[server]'``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from throughput import best  # the same best-of-N timer as the other benchmarks

import normstat

HERE = Path(__file__).resolve().parent
CORPORA = {  # name: (folder, what)
    "jpeg": ("jpeg", "1,000 photo JPEGs, 500×375, q85–95"),
    "digits": ("digits", "5,000 28×28 gray PNGs"),
}
KEYS = {"key": "bench-key", "secret": "bench-secret"}


def start_server() -> tuple[Any, str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


def upload(endpoint: str, folder: Path, bucket: str) -> int:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=KEYS["key"],
        aws_secret_access_key=KEYS["secret"],
    )
    client.create_bucket(Bucket=bucket)
    files = sorted(p for p in folder.rglob("*") if p.is_file())

    def put(path: Path) -> None:
        key = path.relative_to(folder).as_posix()
        client.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, files))
    return len(files)


def _fetch_shard(task: tuple[Any, Any]) -> int:
    source, shard = task
    done = 0
    for _, f in source.stream(shard):
        if not isinstance(f, OSError):
            done += len(f.read())
            f.close()
    return done


def fetch_only(url: str, options: dict[str, Any], workers: int) -> None:
    """Every object downloaded as compute's workers fetch them (listed, then each shard
    streamed: concurrent GETs), and not decoded: the server's own ceiling."""
    from normstat.engine import make_engine
    from normstat.sources.remote import FsspecSource

    source = FsspecSource((url,), options)
    with make_engine(workers) as engine:
        list(engine.map(_fetch_shard, [(source, shard) for shard in source.shards()]))


def bench(name: str, folder: Path, endpoint: str, workers: int, repeat: int) -> dict[str, float]:
    url = f"s3://{name}"
    options: dict[str, Any] = {"endpoint_url": endpoint, **KEYS}
    t = time.perf_counter()
    n = upload(endpoint, folder, name)
    uploaded = time.perf_counter() - t
    local_stats = normstat.compute(str(folder), workers=workers)
    remote_stats = normstat.compute(url, workers=workers, storage_options=options)
    assert remote_stats.data["state"] == local_stats.data["state"], "S3 and local disagree"
    rows = {
        f"compute, local files, {workers} workers": best(
            lambda: normstat.compute(str(folder), workers=workers), repeat
        ),
        f"compute, S3 (moto), {workers} workers": best(
            lambda: normstat.compute(url, workers=workers, storage_options=options), repeat
        ),
        f"fetch only, S3, {workers} workers": best(
            lambda: fetch_only(url, options, workers), repeat
        ),
    }
    print(
        f"\n## {name}: {CORPORA[name][1]} ({n} objects, uploaded in {uploaded:.1f} s)"
        f", best of {repeat}"
    )
    print(f"{'what':<40}{'seconds':>9}{'images/s':>10}")
    for what, secs in rows.items():
        print(f"{what:<40}{secs:>9.2f}{n / secs:>10.0f}")
    local, remote, fetch = rows.values()
    print(f"{'**compute: S3 ÷ local (throughput)**':<40}{local / remote:>8.2f}×")
    print(f"{'compute S3 ÷ fetch only S3':<40}{fetch / remote:>8.2f}×")
    return {**rows, "ratio": local / remote, "of_fetch": fetch / remote}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "normstat-bench")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", nargs="*", default=list(CORPORA))
    args = parser.parse_args()
    build = [
        sys.executable,
        str(HERE / "corpus.py"),
        str(args.data),
        "--detail",
        "0",
        "--png16",
        "0",
    ]
    subprocess.run(build, check=True)
    # Nothing may reach a real AWS endpoint, whatever a worker's environment holds.
    os.environ.update(
        AWS_ACCESS_KEY_ID=KEYS["key"],
        AWS_SECRET_ACCESS_KEY=KEYS["secret"],
        AWS_DEFAULT_REGION="us-east-1",
    )
    server, endpoint = start_server()
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    print(
        f"normstat {normstat.__version__}, {platform.processor() or platform.machine()},"
        f" {os.cpu_count()} cores, Python {platform.python_version()},"
        f" {time.strftime('%Y-%m-%d')}; S3: moto on {endpoint}"
    )
    summary = {}
    try:
        for name in args.only:
            folder, _ = CORPORA[name]
            summary[name] = bench(name, args.data / folder, endpoint, args.workers, args.repeat)
    finally:
        server.stop()
    print(
        "\n" + json.dumps({k: {w: round(r, 3) for w, r in v.items()} for k, v in summary.items()})
    )


if __name__ == "__main__":
    main()
