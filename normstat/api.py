"""The verbs: compute, apply, check. They wire sources → executor → reducers → manifest and print
nothing; progress is reported through an optional callback ``progress(phase, done, total)``."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from fractions import Fraction
from types import ModuleType
from typing import Any, TypeVar

import numpy as np
from PIL import Image

from . import __version__
from .batches import ArrayTask, DeviceReducer, array_chunk, array_tasks, decode_chunk
from .decode import Probe, Skipped, probe
from .device import DEVICES, load_cupy
from .device import plan as device_plan
from .errors import InputError, ManifestError, OutputError
from .executors import Executor, WorkerDied, chunked, make_executor
from .fingerprint import Fingerprints, sha256_file
from .leakage import LeakReport, exact_leaks, root_overlaps
from .manifest import SCHEMA, Stats, atomic_write_bytes
from .modes import MODES, Mode, get_mode
from .nearcheck import (
    NO_PHASH,
    candidates,
    contributor_warnings,
    interpret,
    test_duplicate_warnings,
)
from .neardup import DEFAULT_THRESHOLD, Match, verify_chunk
from .normalize import SCALES, Normalizer, WriteTask, apply_chunk, output_path, remove_stale_temps
from .npysource import LAYOUTS, ArrayProbe, image_name, is_npy, probe_array
from .pipeline import ChunkResult, ImageRecord, fingerprint_chunk, probe_chunk, reduce_chunk
from .reduce import (
    PERCENTILES,
    CompensatedSum,
    FloatMoments,
    IntMoments,
    percentiles_from_histogram,
)
from .sources import SourceFile, discover, expand_sources

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_THRESHOLD",
    "IMAGENET",
    "ApplyResult",
    "Progress",
    "apply",
    "check",
    "compute",
    "discover_images",
]

Progress = Callable[[str, int, int], None]
R = TypeVar("R")
DEFAULT_MAX_PIXELS: int = Image.MAX_IMAGE_PIXELS or 178_956_970
_MODE_PREFERENCE = ("RGB", "L", "RGBA", "LA", "RGB;16", "I;16", "F", "RGB;F")


def _as_list(srcs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[str]:
    if isinstance(srcs, str | os.PathLike):
        return [os.fspath(srcs)]
    return [os.fspath(s) for s in srcs]


def _tick(progress: Progress | None, phase: str, done: int, total: int) -> None:
    if progress is not None:
        progress(phase, done, total)


def _run(
    executor: Executor, fn: Callable[[Any], R], chunks: list[list[Any]], tasks: Iterable[Any]
) -> Iterator[tuple[list[Any], R]]:
    """Each chunk with its result, in order (``tasks`` are made as the window moves, so their
    path lists never all exist at once). A worker killed by a decoder crash is an error
    naming the chunk's first file, not a hang."""
    try:
        yield from zip(chunks, executor.map(fn, tasks), strict=True)
    except WorkerDied as exc:
        chunk = chunks[exc.index]
        first = chunk[0][0] if isinstance(chunk[0], tuple) else chunk[0]
        raise InputError(
            first.path,
            f"a worker process died reading this file or one of the {len(chunk) - 1} after it"
            " (a crash in a decoder); rerun with --workers 1 to find the file",
        ) from None


def discover_images(
    srcs: list[str],
    executor: Executor,
    *,
    max_pixels: int | None,
    keep_alpha: bool,
    progress: Progress | None = None,
) -> tuple[list[tuple[SourceFile, Probe]], list[Skipped]]:
    """Files of ``srcs`` whose content is an image, with their header probe, in file order;
    unreadable files named like images are returned as skipped."""
    files = discover(srcs)
    if not files:
        raise InputError(", ".join(srcs), "no files found")
    chunks = chunked(files, executor.workers)
    tasks = (([f.path for f in c], max_pixels, keep_alpha) for c in chunks)
    images: list[tuple[SourceFile, Probe]] = []
    skipped: list[Skipped] = []
    done = 0
    for chunk, results in _run(executor, probe_chunk, chunks, tasks):
        for f, res in zip(chunk, results, strict=True):
            if isinstance(res, Probe):
                images.append((f, res))
            elif isinstance(res, Skipped):
                skipped.append(res)
        done += len(chunk)
        _tick(progress, "scan", done, len(files))
    if not images and not skipped:
        raise InputError(", ".join(srcs), "no images found")
    return images, skipped


def _decide_mode(counts: Counter[str]) -> Mode:
    """The most common canonical mode; ties go to the more common kind of dataset."""
    if not counts:
        return MODES["RGB"]
    best = max(counts.values())
    return MODES[next(m for m in _MODE_PREFERENCE if counts.get(m) == best)]


_GUESS_SAMPLE = 64


def _guess_mode(files: list[SourceFile], max_pixels: int | None, keep_alpha: bool) -> Mode:
    """The majority mode of an evenly spread sample of headers: the mode the single reduce
    pass assumes. A wrong guess costs a second pass, never a wrong result."""
    step = max(1, len(files) // _GUESS_SAMPLE)
    heads = [probe(f.path, max_pixels, keep_alpha) for f in files[::step][:_GUESS_SAMPLE]]
    return _decide_mode(Counter(h.canonical for h in heads if isinstance(h, Probe)))


def compute(
    srcs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    workers: int | None = None,
    mode: str | None = None,
    alpha: str = "drop",
    strict: bool = False,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    device: str = "auto",
    npy_layout: str = "auto",
    progress: Progress | None = None,
) -> Stats:
    """Statistics of every image under ``srcs``, in one streaming pass: each file is opened
    once, probed and reduced in the mode a header sample predicts; should the whole dataset's
    majority mode differ from the prediction, the pass is repeated in that mode.

    ``mode`` forces the dataset mode (default: the most common); ``alpha="keep"`` keeps alpha
    channels; ``strict`` raises InputError on the first image that cannot contribute.
    ``device`` is ``auto``, ``cpu`` or ``gpu`` (DeviceError if none is usable); ``npy_layout``
    reads 3-D .npy arrays as one H×W×C image (``hwc``) or an N×H×W stack (``nhw``).
    """
    paths = _as_list(srcs)
    if alpha not in ("drop", "keep"):
        raise ValueError("alpha must be 'drop' or 'keep'")
    if npy_layout not in LAYOUTS or device not in DEVICES:
        raise ValueError(f"npy_layout must be {'|'.join(LAYOUTS)}, device {'|'.join(DEVICES)}")
    files_xp = load_cupy() if device == "gpu" else np  # fail before reading anything
    keep_alpha = alpha == "keep"
    files = discover(paths)
    if not files:
        raise InputError(", ".join(paths), "no files found")
    target = get_mode(mode) if mode else _guess_mode(files, max_pixels, keep_alpha)
    arrays: list[tuple[SourceFile, ArrayProbe]] | None = None
    bad_arrays: list[Skipped] = []
    with make_executor(workers) as ex:
        while True:
            acc, counts, unknown = _reduce_pass(
                ex, files, target, max_pixels, keep_alpha, strict, progress, files_xp
            )
            if arrays is None:  # files no image decoder knows may be .npy arrays
                arrays, bad_arrays = _probe_arrays(unknown, keep_alpha, max_pixels, npy_layout)
            for _, p in arrays:  # each image of a stack is one vote
                counts[p.canonical] += p.count
            if mode or not counts or _decide_mode(counts) is target:
                break
            target = _decide_mode(counts)
        for bad in bad_arrays:
            if strict:
                raise InputError(bad.path, bad.reason)
            acc.skipped.append(bad)
        if arrays:
            xp = device_plan(device, sum(p.nbytes for _, p in arrays)).arrays
            _add_arrays(ex, arrays, acc, xp, strict, progress)
    if not counts:
        if not acc.skipped:
            raise InputError(", ".join(paths), "no images found")
        raise InputError(", ".join(paths), "no readable images found")
    if acc.images == 0:
        reason = acc.skipped[0].reason if acc.skipped else "no images"
        raise InputError(", ".join(paths), f"no image could be read (first reason: {reason})")
    options = {
        "mode": mode or "auto",
        "alpha": alpha,
        "strict": strict,
        "max_pixels": max_pixels,
        "device": device,
        "npy_layout": npy_layout,
    }
    return acc.finish(sorted(acc.skipped, key=lambda s: s.path), options)


def _reduce_pass(
    ex: Executor,
    files: list[SourceFile],
    target: Mode,
    max_pixels: int | None,
    keep_alpha: bool,
    strict: bool,
    progress: Progress | None,
    xp: ModuleType = np,
) -> tuple[_Accumulator, Counter[str], list[SourceFile]]:
    """Every file reduced in ``target``, merged in file order; plus the canonical mode counts
    and the files that are not images. ``xp`` not NumPy: reduced on the GPU in this process."""
    acc = _Accumulator(target)
    counts: Counter[str] = Counter()
    unknown: list[SourceFile] = []
    chunks = chunked(files, ex.workers)
    tasks = (([f.path for f in c], target.name, max_pixels, keep_alpha) for c in chunks)
    done = 0
    results: Iterator[tuple[list[SourceFile], ChunkResult]]
    if xp is np:
        results = _run(ex, reduce_chunk, chunks, tasks)
    else:  # decoded by the workers, reduced on the GPU here
        results = DeviceReducer(target, xp).files(_run(ex, decode_chunk, chunks, tasks))
    for chunk, result in results:
        counts.update(m for m in result.canonical if m is not None)
        for f, outcome in zip(chunk, result.outcomes, strict=True):
            if isinstance(outcome, Skipped):
                if strict:
                    raise InputError(outcome.path, outcome.reason)
                acc.skipped.append(outcome)
            elif outcome is not None:
                acc.add(f, outcome)
            else:
                unknown.append(f)
        if result.hist is not None and acc.hist is not None:
            acc.hist += result.hist
        done += len(chunk)
        _tick(progress, "compute", done, len(files))
    return acc, counts, unknown


def _probe_arrays(
    files: list[SourceFile], keep_alpha: bool, max_pixels: int | None, layout: str
) -> tuple[list[tuple[SourceFile, ArrayProbe]], list[Skipped]]:
    """The .npy files among ``files`` (by their magic), probed: header only, in this process."""
    arrays: list[tuple[SourceFile, ArrayProbe]] = []
    bad: list[Skipped] = []
    for f in files:
        if is_npy(f.path):
            p = probe_array(f.path, keep_alpha, max_pixels, layout)
            if isinstance(p, Skipped):
                bad.append(p)
            else:
                arrays.append((f, p))
    return arrays, bad


def _add_arrays(
    ex: Executor,
    arrays: list[tuple[SourceFile, ArrayProbe]],
    acc: _Accumulator,
    xp: ModuleType,
    strict: bool,
    progress: Progress | None,
) -> None:
    """Reduce .npy sources in batches (after the image files, in file order): in the workers
    with NumPy, or fingerprinted there and reduced here on the device."""
    chunks: list[list[tuple[SourceFile, ArrayTask]]] = []
    for f, p in arrays:
        for task in array_tasks(f.path, f.rel, p, acc.mode.name, reduce=xp is np):
            chunks.append([(f, task)])
    tasks = [c[0][1] for c in chunks]
    results: Iterator[tuple[list[tuple[SourceFile, ArrayTask]], ChunkResult]]
    results = _run(ex, array_chunk, chunks, tasks)
    if xp is not np:  # fingerprinted by the workers, reduced on the GPU here
        results = DeviceReducer(acc.mode, xp).arrays(results)
    done, total = 0, sum(p.count for _, p in arrays)
    for chunk, result in results:
        f, task = chunk[0]
        for i, outcome in enumerate(result.outcomes):
            if isinstance(outcome, Skipped):
                if strict:
                    raise InputError(outcome.path, outcome.reason)
                acc.skipped.append(outcome)
            elif outcome is not None:
                acc.add(SourceFile(f.root, image_name(f.rel, task.probe, task.start + i)), outcome)
        if result.hist is not None and acc.hist is not None:
            acc.hist += result.hist
        done += task.stop - task.start
        _tick(progress, "arrays", done, total)


class _Accumulator:
    """Merges per-image records in file order (hence identical results for any worker count)."""

    def __init__(self, mode: Mode) -> None:
        self.mode = mode
        n = len(mode.channels)
        self.moments: list[Any] = [
            IntMoments() if mode.integer else FloatMoments() for _ in range(n)
        ]
        self.std_sums = [CompensatedSum() for _ in range(n)]
        self.hist = np.zeros((n, mode.bins), dtype=np.int64) if mode.integer else None
        self.natives: Counter[str] = Counter()
        self.skipped: list[Skipped] = []
        self.images = 0
        # One row per contributing image, kept compact (machine words, not Python objects)
        # so memory grows by tens of bytes per image: flat from 10k to 100k images.
        self._root_ids: dict[str, int] = {}  # root as given → provisional id
        self._abs_roots: list[str] = []
        self.root_id = array("I")
        self.rels: list[str] = []  # the SourceFile's own strings, not copies
        self.hashes = bytearray()  # 16 bytes per image
        self.dhashes = array("Q")
        self.phashes = array("Q")
        self.heights = array("I")
        self.widths = array("I")

    def add(self, f: SourceFile, rec: ImageRecord) -> None:
        for c, m in enumerate(rec.moments):
            self.moments[c] = self.moments[c].merge(m)
            self.std_sums[c].add(m.std)
        self.natives[rec.native] += 1
        self.images += 1
        rid = self._root_ids.get(f.root)
        if rid is None:
            rid = self._root_ids[f.root] = len(self._abs_roots)
            self._abs_roots.append(os.path.abspath(f.root))
        self.root_id.append(rid)
        self.rels.append(f.rel)
        self.hashes += rec.pixel_hash
        self.dhashes.append(rec.dhash)
        self.phashes.append(rec.phash)
        self.heights.append(rec.height)
        self.widths.append(rec.width)

    def _fingerprints(self) -> Fingerprints:
        roots = sorted(set(self._abs_roots))
        index = np.array([roots.index(r) for r in self._abs_roots], dtype=np.uint32)
        n = len(self.rels)
        return Fingerprints(
            roots=roots,
            root=index[np.frombuffer(self.root_id, dtype=np.uint32)] if n else index[:0],
            paths=self.rels,
            pixel_hash=np.frombuffer(bytes(self.hashes), dtype=np.uint8).reshape(n, 16),
            dhash=np.frombuffer(self.dhashes, dtype=np.uint64).copy(),
            height=np.frombuffer(self.heights, dtype=np.uint32).copy(),
            width=np.frombuffer(self.widths, dtype=np.uint32).copy(),
            phash=np.frombuffer(self.phashes, dtype=np.uint64).copy(),
        )

    def finish(self, skipped: list[Skipped], options: dict[str, Any]) -> Stats:
        mode, n = self.mode, self.images
        scale = mode.max_value
        per_image = [s.value / n for s in self.std_sums]
        raw: dict[str, Any] = {
            "mean": [m.mean for m in self.moments],
            "var": [m.var for m in self.moments],
            "std": [m.std for m in self.moments],
            "std_per_image_mean": per_image,
        }
        if mode.integer:
            assert self.hist is not None
            mean = [float(Fraction(m.total, m.count) / Fraction(scale)) for m in self.moments]
            std = [math.sqrt(float(m.var_fraction() / Fraction(scale) ** 2)) for m in self.moments]
            lo = [int(np.flatnonzero(h)[0]) for h in self.hist]
            hi = [int(np.flatnonzero(h)[-1]) for h in self.hist]
            pct = [percentiles_from_histogram(h) for h in self.hist]
            raw["percentiles"] = {f"{q:g}": [p[i] for p in pct] for i, q in enumerate(PERCENTILES)}
            state: dict[str, Any] = {
                "kind": "exact-int",
                "count": self.moments[0].count,
                "sum": [m.total for m in self.moments],
                "sum_sq": [m.total_sq for m in self.moments],
            }
        else:
            mean, std = raw["mean"], raw["std"]
            lo = [m.lo for m in self.moments]
            hi = [m.hi for m in self.moments]
            state = {
                "kind": "float",
                "count": self.moments[0].count,
                "shift": [m.shift for m in self.moments],
                "mean_offset": [m.mean_offset for m in self.moments],
                "m2": [m.m2 for m in self.moments],
            }
        state["std_per_image_sum"] = [s.value for s in self.std_sums]
        raw["min"], raw["max"] = lo, hi
        fp = self._fingerprints()
        digest = hashlib.sha256()
        for rel, h in zip(fp.paths, fp.pixel_hash, strict=True):
            digest.update(f"{rel}\t{h.tobytes().hex()}\n".encode("utf-8", "surrogateescape"))
        data: dict[str, Any] = {
            "schema": SCHEMA,
            "tool": f"normstat {__version__}",
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "options": options,
            "sources": fp.roots,
            "mode": mode.name,
            "channels": list(mode.channels),
            "dtype": mode.dtype,
            "max_value": mode.max_value,
            "images": n,
            "pixels": self.moments[0].count,
            "mean": mean,
            "std": std,
            "std_per_image_mean": [s / scale for s in per_image],
            "min": [v / scale for v in lo],
            "max": [v / scale for v in hi],
            "raw": raw,
            "modes": dict(sorted(self.natives.items())),
            "converted": {k: v for k, v in sorted(self.natives.items()) if k != mode.name},
            "skipped": [{"path": s.path, "reason": s.reason} for s in skipped],
            "files": {"count": n, "sha256": digest.hexdigest()},
            "state": state,
            "sidecar": None,
        }
        return Stats(data, fp, self.hist)


IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


@dataclass
class ApplyResult:
    """What ``apply`` did: files written now, kept from an earlier run, and skipped (why)."""

    out_dir: str
    written: int = 0
    kept: int = 0
    skipped: list[Skipped] = field(default_factory=list)


def _resolve_stats(stats: Stats | str | os.PathLike[str]) -> tuple[Stats | None, dict[str, Any]]:
    """A loaded manifest (or the ImageNet preset) and its identity for the provenance file."""
    if isinstance(stats, Stats):
        ident = {"path": stats.path or "", "sha256": sha256_file(stats.path) if stats.path else ""}
        return stats, ident
    if os.fspath(stats) == "imagenet":
        return None, {"preset": "imagenet", **IMAGENET}
    path = os.fspath(stats)
    loaded = Stats.load(path, with_fingerprints=False)
    return loaded, {"path": os.path.abspath(path), "sha256": sha256_file(path)}


def _same_provenance(prov_path: str, provenance: dict[str, Any]) -> bool:
    """True when OUT_DIR's provenance names the same statistics (by content) and options."""
    try:
        with open(prov_path, encoding="utf-8") as fh:
            before = json.load(fh)
    except (OSError, ValueError):
        return False
    if not isinstance(before, dict) or not isinstance(before.get("stats"), dict):
        return False

    def content(ident: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in ident.items() if k != "path"}

    return bool(
        content(before["stats"]) == content(provenance["stats"])
        and before.get("options") == provenance["options"]
    )


def _check_out_dir(out_dir: str, srcs: list[str]) -> None:
    real_out = os.path.realpath(out_dir)
    for src in srcs:
        for item in expand_sources(src):
            if os.path.isdir(item):
                root = os.path.realpath(item)
                if real_out == root or real_out.startswith(root.rstrip(os.sep) + os.sep):
                    raise OutputError(out_dir, f"output folder lies inside the source {item}")


def apply(
    srcs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    stats: Stats | str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    workers: int | None = None,
    scale: str = "standard",
    std: str = "pooled",
    dtype: str = "float32",
    layout: str = "chw",
    overwrite: bool = False,
    strict: bool = False,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    progress: Progress | None = None,
) -> ApplyResult:
    """Write every image of ``srcs`` as a normalized array ``OUT_DIR/<rel path>.npy``.

    ``stats`` is a manifest path, a loaded ``Stats`` or ``"imagenet"``. Existing outputs are kept
    (resume) unless ``overwrite``; output is refused inside a source folder, and over output
    made from other statistics or options.
    """
    paths, out = _as_list(srcs), os.fspath(out_dir)
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {', '.join(SCALES)}")
    if std not in ("pooled", "per-image-mean") or dtype not in ("float32", "float16"):
        raise ValueError("std must be pooled|per-image-mean and dtype float32|float16")
    if layout not in ("chw", "hwc"):
        raise ValueError("layout must be chw or hwc")
    loaded, ident = _resolve_stats(stats)
    if loaded is None:
        mode, mean, sd = MODES["RGB"], IMAGENET["mean"], IMAGENET["std"]
    else:
        try:
            mode = get_mode(loaded.mode)
        except ValueError as exc:
            raise ManifestError(loaded.path, str(exc)) from None
        if len(loaded.channels) != len(mode.channels):
            raise ManifestError(
                loaded.path, f"{len(loaded.channels)} channels for mode {mode.name}"
            )
        mean = loaded.mean
        sd = loaded.std if std == "pooled" else list(loaded.data["std_per_image_mean"])
    if scale == "standard":
        for name, s in zip(mode.channels, sd, strict=True):
            if not s > 0:
                raise ManifestError(ident.get("path", "imagenet"), f"std of channel {name} is 0")
    _check_out_dir(out, paths)
    options = {
        "scale": scale,
        "std": std,
        "dtype": dtype,
        "layout": layout,
        "mode": mode.name,
        "values": {"mean": list(mean), "std": list(sd)},  # what was applied, for in-memory stats
    }
    provenance = {
        "schema": "normstat/apply@1",
        "tool": f"normstat {__version__}",
        "stats": ident,
        "options": options,
    }
    prov_path = os.path.join(out, "normstat-apply.json")
    same_run = _same_provenance(prov_path, provenance)
    if not overwrite:
        if os.path.exists(prov_path) and not same_run:
            raise OutputError(
                out, "holds output made with other statistics or options; use --overwrite"
            )
        if not os.path.exists(prov_path) and os.path.isdir(out) and any(os.scandir(out)):
            raise OutputError(out, "is not empty and holds no normstat output; use --overwrite")

    normalizer = Normalizer(scale, mode.max_value, tuple(mean), tuple(sd), dtype, layout)
    result = ApplyResult(out)
    with make_executor(workers) as ex:
        images, skipped = discover_images(
            paths, ex, max_pixels=max_pixels, keep_alpha=mode.alpha, progress=progress
        )
        if strict and skipped:
            raise InputError(skipped[0].path, skipped[0].reason)
        for f, p in images:  # refuse before anything is written
            if p.canonical == "F" and mode.integer:
                raise InputError(
                    f.path, f"a float (mode F) image cannot be converted to {mode.name}"
                )
        seen: dict[str, str] = {}
        for f, _ in images:
            if f.rel in seen:
                raise InputError(f.path, f"has the same relative path as {seen[f.rel]}")
            seen[f.rel] = f.path
        os.makedirs(out, exist_ok=True)
        remove_stale_temps(out)
        if not same_run:  # outputs of other options must not survive to be "resumed" later
            for f, _ in images:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(output_path(out, f.rel))
        atomic_write_bytes(prov_path, (json.dumps(provenance, indent=2) + "\n").encode())
        result.skipped.extend(skipped)
        chunks = chunked(images, ex.workers)
        tasks = [
            WriteTask(
                [(f.path, output_path(out, f.rel)) for f, _ in c],
                mode.name,
                normalizer,
                overwrite,
                max_pixels,
            )
            for c in chunks
        ]
        done = 0
        for chunk, outcomes in _run(ex, apply_chunk, chunks, tasks):
            for outcome in outcomes:
                if outcome == "written":
                    result.written += 1
                elif outcome == "kept":
                    result.kept += 1
                else:
                    assert isinstance(outcome, Skipped)
                    if strict:
                        raise InputError(outcome.path, outcome.reason)
                    result.skipped.append(outcome)
            done += len(chunk)
            _tick(progress, "apply", done, len(images))
    result.skipped.sort(key=lambda s: s.path)
    return result


def check(
    test_srcs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    stats: Stats | str | os.PathLike[str],
    *,
    workers: int | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    progress: Progress | None = None,
) -> LeakReport:
    """Find test images that were among the statistics' contributors: exact copies (same decoded
    pixels) and near-duplicates whose pixel correlation with a contributor reaches ``threshold``."""
    if not 0 < threshold <= 1:
        raise ValueError("threshold must be in (0, 1]")
    paths = _as_list(test_srcs)
    loaded = stats if isinstance(stats, Stats) else Stats.load(os.fspath(stats))
    if loaded.fingerprints is None:
        raise ManifestError(loaded.path, "manifest has no fingerprints to check against")
    fp = loaded.fingerprints
    mode = get_mode(loaded.mode)
    report = LeakReport([], 0, manifest=loaded.path or "")
    report.warnings = root_overlaps(list(loaded.data.get("sources", [])), paths)
    report.warnings += contributor_warnings(fp)
    tests: list[tuple[str, bytes, np.ndarray]] = []
    with make_executor(workers) as ex:
        images, skipped = discover_images(
            paths, ex, max_pixels=max_pixels, keep_alpha=mode.alpha, progress=progress
        )
        bad = list(skipped)
        chunks = chunked(images, ex.workers)
        tasks = (([f.path for f, _ in c], mode.name, max_pixels) for c in chunks)
        done = 0
        for chunk, prints in _run(ex, fingerprint_chunk, chunks, tasks):
            for (f, _), fprint in zip(chunk, prints, strict=True):
                if isinstance(fprint, Skipped):
                    bad.append(fprint)
                else:
                    tests.append((f.path, fprint.pixel_hash, fprint.queries))
            done += len(chunk)
            _tick(progress, "check", done, len(images))
        report.leaked = exact_leaks(fp, [(p, h) for p, h, _ in tests])
        if fp.phash is None:
            report.warnings.append(NO_PHASH)
        else:
            report.threshold = threshold
            found, internal = candidates(fp, tests)
            jobs = found.jobs + internal
            results: list[Any] = []
            vchunks = chunked(jobs, ex.workers)
            layout = str(loaded.data.get("options", {}).get("npy_layout", "auto"))
            vtasks = [(c, mode.name, max_pixels, layout) for c in vchunks]
            for _, res in _run_jobs(ex, vchunks, vtasks):
                results.extend(res)
                _tick(progress, "verify", len(results), len(jobs))
            n = len(found.jobs)
            near, unverified, _ = interpret(found.jobs, results[:n], threshold)
            report.leaked += near
            report.warnings += unverified
            report.warnings += test_duplicate_warnings(tests, internal, results[n:], threshold)
    report.checked = len(tests)
    report.skipped = [
        {"path": s.path, "reason": s.reason} for s in sorted(bad, key=lambda s: s.path)
    ]
    report.leaked.sort(key=lambda leak: (leak.test, -leak.score, leak.train))
    return report


def _run_jobs(
    executor: Executor, chunks: list[list[Any]], tasks: list[Any]
) -> Iterator[tuple[list[Any], list[list[Match]]]]:
    """Verification chunks with their results; a crashed worker names the chunk's test image."""
    try:
        yield from zip(chunks, executor.map(verify_chunk, tasks), strict=True)
    except WorkerDied as exc:
        raise InputError(
            chunks[exc.index][0][0],
            "a worker process died verifying this test image or one after it (a crash in a"
            " decoder); rerun with --workers 1 to find the file",
        ) from None
