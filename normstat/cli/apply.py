"""apply: a split → normalized arrays, with the train statistics."""

from __future__ import annotations

from pathlib import Path

import typer

from normstat import api

from .base import app, capped_workers, errors
from .console import Reporter
from .params import (
    Colors,
    Column,
    Debug,
    Dtypes,
    Invalids,
    Layouts,
    Quiet,
    Scales,
    Stds,
    StorageOptions,
    Workers,
)

__all__ = ["apply"]


@app.command()
@errors
def apply(
    src: list[str] = typer.Argument(..., metavar="SRC...", help="The split to normalize."),
    stats: str = typer.Option(..., help="Stats manifest, or 'imagenet' for the ImageNet values."),
    output: Path = typer.Option(..., "--output", "-o", help="Folder for the .npy arrays."),
    workers: int | None = Workers,
    scale: Scales = typer.Option(
        "standard",
        help="(x/max-mean)/std, [0,1], [-1,1], per-image.",
    ),
    std: Stds = typer.Option("pooled", help="Which std 'standard' divides by."),
    dtype: Dtypes = typer.Option("float32", help="Output dtype."),
    layout: Layouts = typer.Option("chw", help="Array layout."),
    invalid: Invalids = typer.Option(
        "zero", help="What pixels masked by the statistics' nodata/alpha rule become."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
    strict: bool = typer.Option(False, "--strict", help="Exit 2 on the first unreadable image."),
    max_pixels: int = typer.Option(api.DEFAULT_MAX_PIXELS, min=1, help="Skip larger images."),
    storage_options: str | None = StorageOptions,
    column: str | None = Column,
    stack: bool = typer.Option(
        False, "--stack", help="One OUT/stack.npy (N rows) and OUT/stack.txt (row names)."
    ),
    color: Colors | None = typer.Option(
        None,
        "--color",
        help="lab: require CIELAB statistics (taken from the manifest in any case).",
    ),
    quiet: bool = Quiet,
    debug: bool = Debug,
) -> None:
    """Write every image of a split as a normalized float array, using train statistics.

    Example: normstat apply data/val --stats stats.json -o data/val-npy

    Example: normstat apply data/train --stats stats.json -o data/train-npy --stack
    """
    rep = Reporter(quiet)
    with rep.progress() as progress:
        result = api.apply(
            src,
            stats,
            str(output),
            workers=capped_workers(rep, workers),
            scale=scale,
            std=std,
            dtype=dtype,
            layout=layout,
            invalid=invalid,
            overwrite=overwrite,
            strict=strict,
            max_pixels=max_pixels,
            storage_options=storage_options,  # type: ignore[arg-type]  # parsed by the callback
            column=column,
            progress=progress,
            stack=stack,
            color=color,
        )
    for s in result.skipped:
        rep.warn(f"skipped {s.path}: {s.reason}")
    if result.stack is not None:
        rows = result.written + result.kept
        rep.say(
            f"Stack {result.stack} is complete ({rows} rows); nothing to do"
            if not result.written
            else f"Wrote {result.written} rows of {rows} to {result.stack}"
            f" ({result.kept} kept from an earlier run, {len(result.skipped)} skipped)"
        )
        return
    rep.say(
        f"Wrote {result.written} arrays to {result.out_dir}"
        f" ({result.kept} already there, {len(result.skipped)} skipped)"
    )
