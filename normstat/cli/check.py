"""check: the leak gate; exit 1 when test images were among the contributors."""

from __future__ import annotations

import json
import sys

import typer

from normstat import api
from normstat.fileops import atomic_write_bytes, replaceable

from .base import app, capped_workers, errors
from .console import Reporter, leak_table, printable
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
    report_out: str | None = typer.Option(
        None,
        "--report",
        metavar="leaks.html",
        help="Write an HTML page showing each reported pair side by side.",
    ),
    margin: float = typer.Option(
        api.DEFAULT_MARGIN,
        min=1.0,
        help="How many times closer than the nearest other train image a copy must be.",
    ),
    look_alike: float = typer.Option(
        api.DEFAULT_LOOK_ALIKE,
        "--look-alike",
        min=1.0,
        help="The same for a look-alike listed for review (at most --margin).",
    ),
    fail_on: str = typer.Option(
        "leak",
        "--fail-on",
        help="What fails the gate: 'leak' (copies) or 'look-alike' (look-alikes too).",
    ),
    threshold: float = typer.Option(
        api.DEFAULT_THRESHOLD,
        min=0.5,
        max=1.0,
        help="Least agreement (blurred-thumbnail correlation) of a near-duplicate.",
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
    if report_out:
        replaceable(report_out, "leak page", api.is_leak_page, inputs=[stats, *test_src])
    rep = Reporter(quiet)
    with rep.progress() as progress:
        report = api.check(
            test_src,
            stats,
            workers=capped_workers(rep, workers),
            threshold=threshold,
            margin=margin,
            look_alike=look_alike,
            fail_on=fail_on,
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
    if report_out:
        api.write_leak_page(report, report_out, test_src, stats, column=column)
    if json_out == "-":
        sys.stdout.write(text)
    else:
        if json_out:
            atomic_write_bytes(json_out, text.encode())
        if report.leaked:
            rep.out.print(leak_table(report))
        if report.look_alikes:
            rep.out.print(leak_table(report, look_alikes=True))
        found = [f"LEAKED: {len(report.leaked)}"] if report.leaked else []
        if report.look_alikes:
            found.append(f"{len(report.look_alikes)} look-alikes listed for review")
        verdict = "clean" if report.clean else "FAILED"
        details = f" ({'; '.join(found)})" if found else ""
        rep.say(f"Checked {report.checked} test images: {verdict}{details}")
        if report_out:
            rep.say(f"Wrote {printable(report_out)}")
    raise typer.Exit(0 if report.clean else 1)
