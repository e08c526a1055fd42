"""Leak-gate benchmark for ``normstat check``: recall per planted transformation, false flags on
clean splits, check ÷ compute time, and imagededup's PHash as a peer row, per dataset.

For each dataset (benchmarks/leaksets.py: photos, digits, glyphs from disjoint fonts, thin
strokes, flat/two-tone) and each transformation, a sample of test images is copied into train
with that transformation, alone (one run per transformation, one copy per test image), and
``normstat check`` runs on that sample at its default settings; a test image is found when the
report's leaks name its planted copy (a copy listed only as a look-alike is missed, and its
distinctness shown). The clean run checks the whole test split against the plain train split
(nothing planted): every test image reported as leaked is a false flag (the gate fails on it);
look-alikes listed for review are counted apart.

Usage: python benchmarks/leaks.py [--quick | --full] [--only NAME ...] [--workers N]
       [--margin M] [--peer-python PATH | --no-peer] [--keep DIR]
Needs: pip install -r benchmarks/requirements.txt; the peer: see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

import normstat

sys.path.insert(0, str(Path(__file__).resolve().parent))
from leaksets import DATASETS, KINDS, PRESETS, Size, plant

DEFAULT = float(normstat.api.DEFAULT_MARGIN)
PEER = Path(__file__).resolve().parent / "leaks_peer.py"


@dataclass
class Layout:
    """root/test (the test split), root/plain (train), root/kinds/KIND/{test,planted}."""

    name: str
    root: Path
    n_train: int
    n_test: int
    kinds: dict[str, tuple[Path, Path]] = field(default_factory=dict)

    @property
    def test(self) -> Path:
        return self.root / "test"

    @property
    def plain(self) -> Path:
        return self.root / "plain"


def _save_all(images: list[Image.Image], folder: Path, ext: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, im in enumerate(images):
        p = folder / f"{i:05d}.{ext}"
        im.save(p, quality=92) if ext == "jpg" else im.save(p)
        paths.append(p)
    return paths


def build(name: str, size: Size, base: Path, seed: int) -> Layout:
    """Writes the splits and, per transformation, its planted sample (seeded)."""
    rng = np.random.default_rng(seed)
    train, test = DATASETS[name](size, rng)
    ext = "jpg" if name == "photos" else "png"  # photo datasets are JPEG, like most
    layout = Layout(name, base / name, len(train), len(test))
    _save_all(train, layout.plain, ext)
    paths = _save_all(test, layout.test, ext)
    n = min(size.plant, len(paths))
    for kind in KINDS:
        ktest, planted = layout.root / "kinds" / kind / "test", layout.root / "kinds" / kind / "p"
        ktest.mkdir(parents=True)
        planted.mkdir()
        for i in sorted(rng.choice(len(paths), n, replace=False).tolist()):
            original = paths[i].read_bytes()  # read once: copied, and decoded from memory
            (ktest / paths[i].name).write_bytes(original)
            with Image.open(io.BytesIO(original)) as im:
                data, suffix = plant(kind, original, im.convert(test[0].mode), rng)
            (planted / f"{paths[i].stem}.{suffix or ext}").write_bytes(data)
        layout.kinds[kind] = (ktest, planted)
    return layout


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _leaks(report: Any) -> list[dict[str, Any]]:
    """The report's leaks as dicts (the JSON form; new optional fields pass through)."""
    return [dict(leak) for leak in report.to_json()["leaked"]]


def measure(layout: Layout, workers: int, margin: float) -> dict[str, Any]:
    """normstat's figures: clean run, time, and one planted run per transformation."""
    work = layout.root / "manifests"
    work.mkdir()
    _, t_test = _timed(lambda: normstat.compute(layout.test, workers=workers))
    plain, t_train = _timed(lambda: normstat.compute(layout.plain, workers=workers))
    plain.save(str(work / "plain.json"))

    def check(test: Path, manifest: Path) -> Any:
        return normstat.check(test, manifest, workers=workers, margin=margin)

    clean, t_check = _timed(lambda: check(layout.test, work / "plain.json"))
    # Each planted manifest is train's merged with its planted sample's: train is decoded once
    # more here, not once per transformation. Both parts name the mode (merge refuses differing
    # options), as a sample alone can have another majority: a lossless WebP copy of an L image
    # decodes as RGB.
    plain_part = normstat.compute(layout.plain, mode=plain.mode, workers=workers)
    flags = sorted(
        ((float(x["distinct"] or 0), float(x["score"]), x["test"]) for x in _leaks(clean)),
        reverse=True,
    )
    looks = sorted((float(x["distinct"]), x["test"]) for x in clean.to_json()["look_alikes"])[::-1]
    out: dict[str, Any] = {
        "train": layout.n_train,
        "test": layout.n_test,
        "clean": {
            "checked": clean.checked,
            "flagged": len({t for _, _, t in flags}),
            "rate": len({t for _, _, t in flags}) / max(1, clean.checked),
            "flag_distinct": [round(d, 2) for d, _, _ in flags],
            "flag_scores": [round(s, 4) for _, s, _ in flags],
            "flags": [t for _, _, t in flags[:10]],
            "look_alikes": len(looks),
            "closest_below": [[round(d, 2), t] for d, t in looks[:5]],
            "warnings": len(clean.warnings),
        },
        "time": {
            "compute_test_s": t_test,
            "check_test_s": t_check,
            "check_per_compute": t_check / t_test,
            "compute_train_s": t_train,
        },
        "kinds": {},
    }
    for kind, (ktest, planted) in layout.kinds.items():
        manifest = work / f"{kind}.json"
        sample = normstat.compute(planted, mode=plain.mode, workers=workers)
        normstat.merge([plain_part, sample]).save(str(manifest))
        report = check(ktest, manifest)
        own: set[str] = set()
        other: set[str] = set()
        listed: dict[str, float] = {}  # copies only listed as look-alikes: their distinctness
        for leak in _leaks(report):
            test, train = Path(leak["test"]), Path(leak["train"])
            mine = train.resolve().parent == planted.resolve() and train.stem == test.stem
            (own if mine else other).add(test.stem)
        for leak in report.to_json()["look_alikes"]:
            test, train = Path(leak["test"]), Path(leak["train"])
            if train.resolve().parent == planted.resolve() and train.stem == test.stem:
                listed[test.stem] = float(leak["distinct"])
        planted_n = len(list(ktest.iterdir()))
        found = len(own)
        out["kinds"][kind] = {
            "planted": planted_n,
            "found": found,
            "missed": planted_n - found,
            "recall": found / planted_n,
            "target": KINDS[kind],
            "missed_listed": sorted(round(d, 2) for d in listed.values())[-5:],
            "other_flags": len(other - own),
        }
    return out


def peer(layout: Layout, python: str, workers: int) -> dict[str, Any]:
    spec = {
        "workers": workers,
        "test": str(layout.test),
        "plain": str(layout.plain),
        "kinds": {k: {"test": str(t), "planted": str(p)} for k, (t, p) in layout.kinds.items()},
    }
    proc = subprocess.run(
        [python, str(PEER)], input=json.dumps(spec), capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"peer failed (exit {proc.returncode}): {tail}"}
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _pct(num: int, den: int) -> str:
    return f"{100 * num / den:5.1f} %" if den else "    -"


def show(name: str, fig: dict[str, Any], peer_fig: dict[str, Any] | None) -> None:
    t, c = fig["time"], fig["clean"]
    print(f"\n== {name}: {fig['train']} train, {fig['test']} test; margin {fig['margin']}")
    have_peer = bool(peer_fig) and "error" not in peer_fig  # type: ignore[operator]
    head = f"{'transformation':16s} {'planted':>7s} {'found':>6s} {'missed':>6s} {'recall':>8s}"
    head += f" {'target':>6s}  {'missed, look-alike at':24s} {'other':>5s}"
    print(head + ("  | PHash found  recall" if have_peer else ""))
    for kind, k in fig["kinds"].items():
        ok = "ok" if k["recall"] >= k["target"] else "MISS"
        row = f"{kind:16s} {k['planted']:7d} {k['found']:6d} {k['missed']:6d} "
        row += f"{_pct(k['found'], k['planted']):>8s} {k['target'] * 100:4.0f}% {ok:4s}"
        row += f" {','.join(f'{s:.1f}' for s in k['missed_listed'])[:24]:24s} {k['other_flags']:5d}"
        if have_peer:
            p = peer_fig["kinds"][kind]  # type: ignore[index]
            row += f"  | {p['found']:5d}/{p['planted']:<5d} {_pct(p['found'], p['planted'])}"
        print(row)
    print(
        f"clean (nothing planted): {c['flagged']} of {c['checked']} test images flagged"
        f" ({_pct(c['flagged'], c['checked']).strip()}), target 0;"
        f" {c['look_alikes']} look-alikes listed for review"
    )
    if c["flag_distinct"]:
        shown = ", ".join(f"{d:.1f}" for d in c["flag_distinct"][:20])
        print(f"  false flags' distinctness: {shown}")
        print(f"  first: {', '.join(Path(p).name for p in c['flags'][:5])}")
    if c["closest_below"]:
        closest = ", ".join(f"{d:.1f} ({Path(p).name})" for d, p in c["closest_below"])
        print(f"  most distinct look-alikes (below the margin): {closest}")
    print(
        f"time: compute(test) {t['compute_test_s']:.2f} s, check(test) {t['check_test_s']:.2f} s:"
        f" check ÷ compute {t['check_per_compute']:.1f}× (target ≤ 3×);"
        f" compute(train) {t['compute_train_s']:.2f} s"
    )
    if peer_fig is None:
        return
    if not have_peer:
        print(f"peer: {peer_fig['error']}")
        return
    pc, pt = peer_fig["clean"], peer_fig["time"]
    print(
        f"peer imagededup PHash (max_distance_threshold={peer_fig['threshold']}): clean"
        f" {pc['flagged']} of {pc['checked']} flagged ({_pct(pc['flagged'], pc['checked'])});"
        f" hash test {pt['hash_test_s']:.2f} s + train {pt['hash_train_s']:.2f} s,"
        f" search {pt['search_s']:.2f} s  [{peer_fig['note']}]"
    )


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    preset = parser.add_mutually_exclusive_group()
    preset.add_argument("--quick", action="store_true", help="Small sets: a few minutes.")
    preset.add_argument("--full", action="store_true", help="Issue-sized sets: hours.")
    parser.add_argument("--only", nargs="+", choices=list(DATASETS), default=None)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--margin", type=float, default=DEFAULT, help="check's --margin")
    parser.add_argument("--peer-python", default=os.environ.get("LEAKS_PEER_PYTHON"))
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument("--keep", type=Path, default=None, help="Build the data here and keep it.")
    args = parser.parse_args()
    name = "quick" if args.quick else "full" if args.full else "default"
    workers = args.workers or len(os.sched_getaffinity(0))
    python = None if args.no_peer else args.peer_python
    base = args.keep or Path(tempfile.mkdtemp(prefix="normstat-leaks-"))
    if args.keep and base.exists():
        shutil.rmtree(base)
    print(f"preset {name}, {workers} workers, check at margin {args.margin} (default {DEFAULT});")
    print("'other': test images flagged against anything but their own planted copy.")
    print("Peer: " + (python or "skipped"))
    figures: dict[str, Any] = {}
    try:
        for seed, (dataset, size) in enumerate(PRESETS[name].items()):
            if args.only and dataset not in args.only:
                continue
            layout, t_build = _timed(functools.partial(build, dataset, size, base, seed))
            fig = measure(layout, workers, args.margin)
            fig["build_s"] = t_build
            fig["margin"] = args.margin
            fig["peer"] = peer(layout, python, workers) if python else None
            show(dataset, fig, fig["peer"])
            figures[dataset] = fig
            if args.keep is None:
                shutil.rmtree(layout.root, ignore_errors=True)
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    summary = {
        "benchmark": "leaks",
        "preset": name,
        "date": datetime.date.today().isoformat(),
        "commit": _commit(),
        "normstat": normstat.__version__,
        "default_margin": DEFAULT,
        "margin": args.margin,
        "workers": workers,
        "datasets": figures,
    }
    print(json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    main()
