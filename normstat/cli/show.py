"""show: a manifest as a table, JSON, or code to paste; with --plot, its histograms as an image."""

from __future__ import annotations

import json
import sys

import typer

from normstat.manifest import Stats

from .base import app, errors
from .console import Reporter, covariance_lines, stats_table
from .params import Debug, Quiet, ShowFormats
from .plot import check_output, figure_class, plot_path, write_plot
from .plot_data import prepare
from .snippets import snippet

__all__ = ["show"]


@app.command()
@errors
def show(
    manifest: str = typer.Argument(..., metavar="STATS.json", help="A stats manifest."),
    format: ShowFormats = typer.Option("text", "--format", "-f", help="Output format."),
    plot: str | None = typer.Option(
        None,
        "--plot",
        metavar="IMAGE",
        callback=plot_path,
        help="Also draw the per-channel histograms to IMAGE (.png, .svg or .pdf).",
    ),
    log: bool | None = typer.Option(
        None, "--log/--linear", help="Plot counts on a log axis (default: when a bin towers)."
    ),
    quiet: bool = Quiet,
    debug: bool = Debug,
) -> None:
    """Print a manifest as a table, as JSON, or as code for torchvision, Keras, albumentations,
    or PCA lighting (pca: a manifest computed with --covariance); --plot draws its histograms
    with mean, std and percentiles marked.

    Example: normstat show stats.json --format torchvision --plot hist.png
    """
    rep = Reporter(quiet)
    if plot is None:
        stats = Stats.load(manifest, with_fingerprints=False)  # mean and std need no sidecar
    else:
        figure = figure_class(plot)
        stats = Stats.load(manifest, with_fingerprints=False, with_histogram=True)
        check_output(plot, [manifest, stats.sidecar_path])  # the plot must never replace it
        data = prepare(stats, log)
        if data.note:
            rep.warn(f"{plot}: {data.note}")
        write_plot(data, plot, figure)
        rep.info(f"wrote {plot}")
    if format == "text":
        rep.out.print(stats_table(stats))
        if stats.data["dtype"] == "float32" and "range" not in stats.data:
            rep.say("No percentiles: float data have no histogram.")
        if "range" in stats.data:
            rng = stats.data["range"]
            rep.say(
                f"Float percentiles: lower edges of {rng['bins']} bins of width "
                f"{rng['width']:.6g} over [{rng['lo']:g}, {rng['hi']:g}] (the true value lies "
                f"in [edge, edge + width)); below {rng['below']}, above {rng['above']} pixels."
            )
        for line in covariance_lines(stats):
            rep.say(line)
        for s in stats.skipped:
            rep.say(f"skipped {s['path']}: {s['reason']}")
    elif format == "json":
        sys.stdout.write(json.dumps(stats.data, indent=2) + "\n")
    else:
        sys.stdout.write(snippet(stats, format))
