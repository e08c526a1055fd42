"""compute over shards against compute over the same images as a folder, timed in one run on the
same images and the same number of workers: 4 WebDataset tar shards (each image with a ``.cls``
and a ``.json``, as WebDataset writes samples) and 4 parquet shards in the Hugging Face
``datasets`` layout (a struct column of ``bytes`` and ``path``, row groups of 100). The ratio
printed is folder time ÷ shard time: 1.0× or more means shards cost nothing over files.

Usage: python benchmarks/shards.py [--data /tmp/normstat-bench] [--repeat 3] [--workers 1 2]
Needs ``pip install -r benchmarks/requirements.txt`` (to build the corpus from real photos).
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from throughput import best  # the same best-of-N timer as the other benchmarks

import normstat

HERE = Path(__file__).resolve().parent
CORPORA = {"jpeg": "1,000 photo JPEGs, 500×375", "digits": "5,000 28×28 gray PNGs"}
SHARDS = 4


def _parts(files: list[Path]) -> list[list[Path]]:
    step = -(-len(files) // SHARDS)
    return [files[i : i + step] for i in range(0, len(files), step)]


def write_tars(files: list[Path], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for s, part in enumerate(_parts(files)):
        with tarfile.open(out / f"shard-{s:03d}.tar", "w") as t:
            for i, f in enumerate(part):
                key = f.stem
                t.add(f, arcname=f"{key}{f.suffix}")
                for suffix, data in ((".cls", str(i % 10).encode()), (".json", b'{"src": 1}')):
                    info = tarfile.TarInfo(key + suffix)
                    info.size = len(data)
                    t.addfile(info, io.BytesIO(data))


def write_parquets(files: list[Path], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    kind = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    for s, part in enumerate(_parts(files)):
        rows = [{"bytes": f.read_bytes(), "path": f.name} for f in part]
        table = pa.table({"image": pa.array(rows, type=kind), "label": list(range(len(rows)))})
        pq.write_table(table, out / f"shard-{s:03d}.parquet", row_group_size=100)


def prepare(data: Path, name: str) -> tuple[Path, Path, Path]:
    folder = data / name
    tars, parquets = data / "shards" / name / "tar", data / "shards" / name / "parquet"
    files = sorted(p for p in folder.iterdir() if p.is_file())
    if not tars.is_dir():
        write_tars(files, tars)
    if not parquets.is_dir():
        write_parquets(files, parquets)
    return folder, tars, parquets


def bench(name: str, data: Path, repeat: int, workers: list[int]) -> list[tuple[str, str]]:
    folder, tars, parquets = prepare(data, name)
    ref = normstat.compute(folder, workers=1)
    for shards in (tars, parquets):  # the same statistics, or the timing means nothing
        got = normstat.compute(shards, workers=1)
        assert got.data["state"] == ref.data["state"] and got.images == ref.images, shards
    rows = []
    for w in workers:
        t_folder = best(lambda w=w: normstat.compute(folder, workers=w), repeat)
        t_tar = best(lambda w=w: normstat.compute(tars, workers=w), repeat)
        t_pq = best(lambda w=w: normstat.compute(parquets, workers=w), repeat)
        n = ref.images
        rows.append((f"folder, {w} worker(s) (img/s)", f"{n / t_folder:,.0f}"))
        rows.append(
            (f"**folder ÷ {SHARDS} tar shards, {w} worker(s)**", f"**{t_folder / t_tar:.2f}×**")
        )
        rows.append(
            (f"**folder ÷ {SHARDS} parquet shards, {w} worker(s)**", f"**{t_folder / t_pq:.2f}×**")
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "normstat-bench")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    build = [sys.executable, str(HERE / "corpus.py"), str(args.data), "--detail", "0"]
    subprocess.run([*build, "--png16", "0"], check=True)
    print(f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()},")
    print(f"normstat {normstat.__version__}; best of {args.repeat}\n")
    results = {name: bench(name, args.data, args.repeat, args.workers) for name in CORPORA}
    print("| | " + " | ".join(CORPORA) + " |")
    print("| --- |" + " ---: |" * len(CORPORA))
    for i, (label, _) in enumerate(results["jpeg"]):
        print(f"| {label} | " + " | ".join(results[n][i][1] for n in CORPORA) + " |")


if __name__ == "__main__":
    main()
