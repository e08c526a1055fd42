"""check: the leak gate; exit 1 when test images were among the contributors."""

from __future__ import annotations

import json
import sys

import typer

from normstat import api
from normstat.fileops import atomic_write_bytes, replaceable

from .base import app, capped_workers, errors
from .console import Reporter, leak_table
from .params import (
    Column,
    Debug,
    Quiet,
    StorageOptions,
    Workers,
)

__all__ = ["check"]


@app.command()
@errors
def check(
    test_src: list[str] = typer.Argument(..., metavar="TEST_SRC...", help="The test split."),
    stats: str = typer.Option(..., help="Stats manifest of the train split."),
    json_out: str | None = typer.Option(
        None, "--json", metavar="REPORT.json", help="Write the report as JSON ('-': stdout)."
    ),
    threshold: float = typer.Option(
        api.DEFAULT_THRESHOLD,
        min=0.5,
        max=1.0,
        help="Pixel correlation a near-duplicate must reach (higher: fewer, surer reports).",
    ),
    workers: int | None = Workers,
    max_pixels: int = typer.Option(api.DEFAULT_MAX_PIXELS, min=1, help="Skip larger images."),
    storage_options: str | None = StorageOptions,
    column: str | None = Column,
    quiet: bool = Quiet,
    debug: bool = Debug,
) -> None:
    """Exit 1 if test images, or near-duplicates of them, were among the images the statistics
    came from.

    Example: normstat check data/test --stats stats.json --json leaks.json
    """
    if json_out and json_out != "-":
        replaceable(json_out, "leak report", "normstat/leak-report@", inputs=[stats])
    rep = Reporter(quiet)
    with rep.progress() as progress:
        report = api.check(
            test_src,
            stats,
            workers=capped_workers(rep, workers),
            threshold=threshold,
            max_pixels=max_pixels,
            storage_options=storage_options,  # type: ignore[arg-type]  # parsed by the callback
            column=column,
            progress=progress,
        )
    for w in report.warnings:
        rep.warn(w)
    for s in report.skipped:
        rep.warn(f"skipped {s['path']}: {s['reason']}")
    text = json.dumps(report.to_json(), indent=2) + "\n"
    if json_out == "-":
        sys.stdout.write(text)
    else:
        if json_out:
            atomic_write_bytes(json_out, text.encode())
        if report.leaked:
            rep.out.print(leak_table(report))
        verdict = "clean" if report.clean else f"LEAKED: {len(report.leaked)}"
        rep.say(f"Checked {report.checked} test images: {verdict}")
    raise typer.Exit(0 if report.clean else 1)
