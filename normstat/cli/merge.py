"""merge: manifests of disjoint parts → the manifest of their union."""

from __future__ import annotations

import typer

from normstat import api
from normstat.fileops import replaceable

from .base import app, errors
from .console import Reporter, stats_table
from .params import (
    Debug,
    Quiet,
)

__all__ = ["merge"]


@app.command()
@errors
def merge(
    manifests: list[str] = typer.Argument(
        ..., metavar="STATS.json...", help="Manifests of disjoint parts of one dataset."
    ),
    output: str = typer.Option(..., "--output", "-o", help="The merged manifest to write."),
    quiet: bool = Quiet,
    debug: bool = Debug,
) -> None:
    """Merge manifests of disjoint parts into exactly the manifest one pass over their union
    gives (its sidecar too, so check works against it).

    Example: normstat merge part-0.json part-1.json -o stats.json
    """
    if len(manifests) < 2:
        raise typer.BadParameter("give at least two manifests", param_hint="STATS.json...")
    replaceable(output, "stats manifest", "normstat/stats@", inputs=manifests)
    rep = Reporter(quiet)
    stats = api.merge(manifests)
    stats.save(output)
    rep.out.print(stats_table(stats))
    rep.say(f"Wrote {output} ({stats.images} images from {len(manifests)} manifests)")
