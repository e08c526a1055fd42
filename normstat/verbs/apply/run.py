"""apply: manifest → the split's images (stacks expanded) → (read → normalize → write temp →
rename) on an engine; a rerun with the same statistics and options resumes."""

from __future__ import annotations

import contextlib
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

from normstat._version import __version__
from normstat.engine import make_engine
from normstat.errors import InputError, ManifestError, OutputError
from normstat.fileops import atomic_write_bytes, sha256_file
from normstat.manifest import Stats
from normstat.modes import MODES, Mode
from normstat.options import ApplyOptions, MaskOptions, ReadOptions
from normstat.readers import Skipped
from normstat.sources import Source
from normstat.verbs.common import (
    ImageRef,
    Progress,
    Skips,
    first_name,
    image_refs,
    none_read,
    reading,
    run_chunks,
    scan,
    split,
    tick,
)

from .journal import JOURNAL, LOCK, Journal, locked
from .normalize import Normalizer
from .outputs import (
    PROVENANCE,
    WriteTask,
    apply_chunk,
    check_out_dir,
    output_path,
    remove_stale_temps,
    same_provenance,
    source_version,
)
from .stack import STACK, check_names, remove_stack, row_shape
from .stackrun import StackJob, apply_stack

__all__ = ["IMAGENET", "ApplyResult", "apply"]

IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


@dataclass
class ApplyResult:
    """What ``apply`` did: files written now, kept from an earlier run, and skipped (why)."""

    out_dir: str
    written: int = 0
    kept: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    stack: str | None = None  # --stack: OUT/stack.npy; written and kept then count its rows


def _resolve_stats(stats: Stats | str) -> tuple[Stats | None, dict[str, Any]]:
    """A loaded manifest (or the ImageNet preset) and its identity for the provenance file."""
    if isinstance(stats, Stats):
        ident = {"path": stats.path or "", "sha256": sha256_file(stats.path) if stats.path else ""}
        return stats, ident
    if stats == "imagenet":
        return None, {"preset": "imagenet", **IMAGENET}
    loaded = Stats.load(stats, with_fingerprints=False)
    return loaded, {"path": os.path.abspath(stats), "sha256": sha256_file(stats)}


def _values(loaded: Stats | None, std: str) -> tuple[Mode, list[float], list[float]]:
    """The mode images are read in, and the mean and std to apply."""
    if loaded is None:
        return MODES["RGB"], IMAGENET["mean"], IMAGENET["std"]
    mode = loaded.read_mode()
    if len(loaded.channels) != len(mode.channels):
        raise ManifestError(loaded.path, f"{len(loaded.channels)} channels for mode {mode.name}")
    sd = loaded.std if std == "pooled" else list(loaded.data["std_per_image_mean"])
    return mode, loaded.mean, sd


def apply(
    source: Source,
    stats: Stats | str,
    out: str,
    opts: ApplyOptions,
    workers: int | None,
    progress: Progress | None,
) -> ApplyResult:
    """Every image of ``source`` as a normalized array ``OUT/<relative name>.npy``."""
    loaded, ident = _resolve_stats(stats)
    mode, mean, sd = _values(loaded, opts.std)
    lab = _lab(loaded, ident, opts)
    if opts.scale == "standard":
        channels = loaded.channels if loaded is not None else mode.channels
        for name, s in zip(channels, sd, strict=True):
            if not s > 0:
                raise ManifestError(ident.get("path", "imagenet"), f"std of channel {name} is 0")
    mask = loaded.mask if loaded is not None else MaskOptions()
    locations = source.locations()
    check_out_dir(out, locations, [])
    options: dict[str, Any] = {
        "scale": opts.scale,
        "std": opts.std,
        "dtype": opts.dtype,
        "layout": opts.layout,
        "mode": mode.name,
        "values": {"mean": list(mean), "std": list(sd)},  # what was applied, for in-memory stats
    }
    if mask.requested or opts.invalid != "zero":  # recorded only then: older outputs resume
        options["invalid"] = opts.invalid
    if opts.stack:
        options["stack"] = True
    if lab:
        options["color"] = "lab"
    provenance = {
        "schema": "normstat/apply@1",
        "tool": f"normstat {__version__}",
        "stats": ident,
        "options": options,
    }
    prov_path = os.path.join(out, PROVENANCE)
    if not opts.overwrite:
        _refuse_foreign(out, prov_path, provenance)
    fill = math.nan if opts.invalid == "nan" else 0.0
    normalizer = Normalizer(
        opts.scale,
        1.0 if lab else mode.max_value,  # CIELAB statistics are in its own units
        tuple(mean),
        tuple(sd),
        opts.dtype,
        opts.layout,
        fill,
        lab,
    )
    read = (
        loaded.read_options(opts.max_pixels)
        if loaded is not None
        else ReadOptions(opts.max_pixels, mode.alpha)  # the ImageNet preset: RGB, no mask
    )
    result = ApplyResult(out)
    with make_engine(workers) as engine:
        images, skipped = scan(source, engine, read, progress)
        skips = Skips(opts.strict)
        for skip in skipped:
            skips.add(skip)
        refs = image_refs(images)
        seen: dict[str, str] = {}
        for ref in refs:
            if ref.rel in seen:
                raise InputError(ref.name, f"has the same relative path as {seen[ref.rel]}")
            seen[ref.rel] = ref.name
        if opts.stack:  # before anything is written
            row = row_shape(images, len(mode.channels), opts.layout)
            check_names(refs)
        check_out_dir(out, locations, [] if opts.stack else list(seen))
        created = not os.path.lexists(out)
        try:
            os.makedirs(out, exist_ok=True)
        except OSError as exc:
            raise OutputError(out, f"cannot create the folder: {exc.strerror}") from None
        with locked(out):
            same_run = same_provenance(prov_path, provenance)
            if not opts.overwrite:  # again, now that no other run can be writing
                _refuse_foreign(out, prov_path, provenance)
            remove_stale_temps(out)
            journal = Journal(out)
            made_from = journal.load() if same_run and not opts.overwrite else {}
            if not made_from:
                journal.reset()
            if not same_run:  # outputs of other options must not survive to be "resumed" later
                remove_stack(out)
                for ref in refs:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(output_path(out, ref.rel))
            atomic_write_bytes(prov_path, (json.dumps(provenance, indent=2) + "\n").encode())
            if opts.stack:
                job = StackJob(
                    out,
                    source,
                    refs,
                    row,
                    opts.dtype,
                    mode.name,
                    normalizer,
                    read,
                    opts.overwrite,
                    mask,
                )
                result.written, result.kept = apply_stack(job, engine, skips, progress)
                result.stack = os.path.join(out, STACK)
            chunks = split([] if opts.stack else refs, engine.workers)

            def task(c: list[ImageRef]) -> WriteTask:
                # Versions are taken here, as the chunk is handed out (before it is read): a
                # source that listed them answers without a request per image.
                now = {ref.item: source_version(source, ref.item) for ref in c}
                images = [
                    (ref, output_path(out, ref.rel), made_from.get(ref.rel), now[ref.item])
                    for ref in c
                ]
                return WriteTask(
                    source,
                    images,
                    mode.name,
                    normalizer,
                    opts.overwrite,
                    read,
                    journal,
                    mask,
                )

            done = 0
            for chunk, outcomes in run_chunks(
                engine, apply_chunk, chunks, task, first_name, reading
            ):
                for outcome in outcomes:
                    if isinstance(outcome, Skipped):
                        skips.add(outcome)
                    elif outcome == "kept":
                        result.kept += 1
                    else:
                        result.written += 1
                done += len(chunk)
                tick(progress, "apply", done, len(refs))
    if not result.written and not result.kept:
        if created:  # leave no trace of a run that wrote nothing
            for name in (PROVENANCE, JOURNAL):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(out, name))
            with contextlib.suppress(OSError):
                os.rmdir(out)
        raise none_read(source.name, skips.items)
    result.skipped = skips.sorted()
    return result


def _lab(loaded: Stats | None, ident: dict[str, Any], opts: ApplyOptions) -> bool:
    """Whether images are converted to CIELAB: the manifest says so (its statistics would be
    silently wrong on RGB values); ``--color lab`` only insists on it."""
    path = ident.get("path", "imagenet")
    lab = loaded is not None and loaded.lab
    if opts.color == "lab" and not lab:
        raise ManifestError(path, "statistics were computed without --color lab")
    if lab and opts.scale in ("unit", "symmetric"):
        raise ManifestError(
            path,
            f"--scale {opts.scale} maps [0, max] pixel values, which CIELAB statistics "
            "(--color lab) do not have: use --scale standard or per-image",
        )
    return lab


def _refuse_foreign(out: str, prov_path: str, provenance: dict[str, Any]) -> None:
    """OutputError when OUT_DIR holds output of other statistics or options, or other files."""
    if os.path.exists(prov_path):
        if not same_provenance(prov_path, provenance):
            raise OutputError(
                out, "holds output made with other statistics or options; use --overwrite"
            )
    elif os.path.isdir(out) and any(e.name not in (LOCK, JOURNAL) for e in os.scandir(out)):
        raise OutputError(out, "is not empty and holds no normstat output; use --overwrite")
