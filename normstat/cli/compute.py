"""compute: a train split → its stats manifest."""

from __future__ import annotations

from collections.abc import Callable

import typer

from normstat import api
from normstat.fileops import replaceable
from normstat.modes import MODES
from normstat.options import float_list, percentile_list, range_pair

from .base import app, capped_workers, errors
from .console import Reporter, covariance_lines, stats_table
from .params import (
    Alphas,
    Colors,
    Column,
    Debug,
    Devices,
    NpyLayouts,
    Quiet,
    StorageOptions,
    Workers,
    mode_option,
)

__all__ = ["compute"]


@app.command()
@errors
def compute(
    srcs: list[str] = typer.Argument(
        ...,
        metavar="SRC...",
        help="Folders (recursive), image files, @list.txt files, .tar or .parquet shards "
        "(brace patterns: shard-{000..127}.tar), or URLs of any of these (s3://bucket/prefix).",
    ),
    output: str = typer.Option(..., "--output", "-o", help="The stats manifest to write."),
    workers: int | None = Workers,
    scheduler: str | None = typer.Option(
        None,
        "--scheduler",
        envvar="DASK_SCHEDULER_ADDRESS",
        metavar="tcp://HOST:PORT",
        help="Run on this Dask cluster (needs the dask extra).",
    ),
    retries: int = typer.Option(
        0, "--retries", min=0, help="On a cluster: retry a shard this often on transient errors."
    ),
    partials_dir: str | None = typer.Option(
        None,
        "--partials-dir",
        metavar="DIR",
        help="Keep each finished shard here (folder or URL); a rerun redoes only what is missing.",
    ),
    storage_options: str | None = StorageOptions,
    column: str | None = Column,
    device: Devices = typer.Option(
        "auto",
        help="Where to reduce: auto uses a usable GPU for large .npy data.",
    ),
    strict: bool = typer.Option(False, "--strict", help="Exit 2 on the first unreadable image."),
    mode: str | None = typer.Option(
        None,
        callback=mode_option,
        help=f"Dataset mode ({', '.join(MODES)}, B<n>, B<n>;16, B<n>;F); default: majority.",
    ),
    alpha: Alphas = typer.Option(
        "drop", help="Drop or keep alpha channels, or mask: alpha 0 pixels are left out."
    ),
    nodata: str | None = typer.Option(
        None,
        callback=lambda v: _checked(lambda x: float_list("nodata", x), v),
        metavar="V[,V...]",
        help="Leave pixels equal to this out (one value, or one per channel; nan for floats).",
    ),
    percentiles: str | None = typer.Option(
        None,
        callback=lambda v: _checked(percentile_list, v),
        metavar="Q[,Q...]",
        help="The percentiles to report (0-100); default 0.5,1,5,50,95,99,99.5.",
    ),
    value_range: str | None = typer.Option(
        None,
        "--range",
        callback=lambda v: _checked(range_pair, v),
        metavar="LO,HI",
        help="Float data: histogram [LO, HI] in 65536 bins for percentiles (to one bin width).",
    ),
    max_pixels: int = typer.Option(
        api.DEFAULT_MAX_PIXELS, min=1, help="Skip images larger than this (decompression bombs)."
    ),
    npy_layout: NpyLayouts = typer.Option(
        "auto",
        help="3-D .npy arrays: H×W×C image (hwc), N×H×W stack (nhw), or auto.",
    ),
    covariance: bool = typer.Option(
        False,
        "--covariance",
        help="Also the exact channel covariance, correlation and PCA (for PCA lighting, ZCA).",
    ),
    color: Colors | None = typer.Option(
        None,
        "--color",
        help="lab: statistics of CIELAB L*, a*, b* (D65, from the RGB pixels) instead of R, G, B.",
    ),
    quiet: bool = Quiet,
    debug: bool = Debug,
) -> None:
    """Compute per-channel statistics of a train split and write a manifest.

    Example: normstat compute data/train -o stats.json --workers 4
    """
    replaceable(output, "stats manifest", "normstat/stats@")  # before the long pass
    rep = Reporter(quiet)
    partials = None
    if partials_dir is not None:
        partials = api.Partials(partials_dir, storage_options or {})  # type: ignore[arg-type]
    with rep.progress() as progress:
        stats = api.compute(
            srcs,
            workers=capped_workers(rep, workers),
            mode=mode,
            alpha=alpha,
            strict=strict,
            max_pixels=max_pixels,
            device=device,
            npy_layout=npy_layout,
            storage_options=storage_options,  # type: ignore[arg-type]  # parsed by the callback
            column=column,
            scheduler=scheduler,
            retries=retries,
            partials_dir=partials,
            progress=progress,
            nodata=nodata,
            percentiles=percentiles,
            covariance=covariance,
            value_range=value_range,
            color=color,
        )
    replaceable(output, "stats manifest", "normstat/stats@")  # and again: it took a while
    stats.save(output)
    for s in stats.skipped[:10]:
        rep.warn(f"skipped {s['path']}: {s['reason']}")
    if len(stats.skipped) > 10:
        rep.warn(f"... and {len(stats.skipped) - 10} more skipped (listed in {output})")
    rep.out.print(stats_table(stats))
    for line in covariance_lines(stats):
        rep.say(line)
    if partials is not None:
        rep.say(
            f"Partials in {partials_dir}: {partials.kept} shards kept, {partials.made} reduced"
            + (f", {partials.redone} unreadable ones redone" if partials.redone else "")
        )
    rep.say(f"Wrote {output}")


def _checked(parse: Callable[[str], object], value: str | None) -> str | None:
    """A usage error, in the option's words, for a value ``parse`` refuses."""
    if value is not None:
        try:
            parse(value)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
    return value
