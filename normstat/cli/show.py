"""show: a manifest as a table, JSON, or code to paste."""

from __future__ import annotations

import json
import sys

import typer

from normstat.manifest import Stats

from .base import app, errors
from .console import Reporter, stats_table
from .params import Debug, Quiet, ShowFormats
from .snippets import snippet

__all__ = ["show"]


@app.command()
@errors
def show(
    manifest: str = typer.Argument(..., metavar="STATS.json", help="A stats manifest."),
    format: ShowFormats = typer.Option("text", "--format", "-f", help="Output format."),
    quiet: bool = Quiet,
    debug: bool = Debug,
) -> None:
    """Print a manifest as a table, as JSON, or as code for torchvision, Keras, albumentations.

    Example: normstat show stats.json --format torchvision
    """
    stats = Stats.load(manifest, with_fingerprints=False)  # mean and std need no sidecar
    rep = Reporter(quiet)
    if format == "text":
        rep.out.print(stats_table(stats))
        if stats.data["dtype"] == "float32" and "range" not in stats.data:
            rep.say("No percentiles: float data have no histogram.")
        elif "range" in stats.data:
            rng = stats.data["range"]
            rep.say(
                f"Float percentiles: lower edges of {rng['bins']} bins of width "
                f"{rng['width']:.6g} over [{rng['lo']:g}, {rng['hi']:g}] (the true value lies "
                f"in [edge, edge + width)); below {rng['below']}, above {rng['above']} pixels."
            )
        for s in stats.skipped:
            rep.say(f"skipped {s['path']}: {s['reason']}")
    elif format == "json":
        sys.stdout.write(json.dumps(stats.data, indent=2) + "\n")
    else:
        sys.stdout.write(snippet(stats, format))
