"""The command line: parse, call the API, render. The only place exit codes are decided:
0 success, 1 leakage found (check), 2 usage or input error."""

from __future__ import annotations

import functools
import json
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer

from normstat import api
from normstat._version import __version__
from normstat.engine import IN_PROCESS, default_workers
from normstat.errors import NormstatError
from normstat.fileops import atomic_write_bytes, replaceable
from normstat.manifest import Stats
from normstat.modes import MODES

from .console import Reporter, leak_table, stats_table
from .params import (
    Alphas,
    Column,
    Debug,
    Devices,
    Dtypes,
    Layouts,
    NpyLayouts,
    Quiet,
    Scales,
    ShowFormats,
    Stds,
    StorageOptions,
    Workers,
    mode_option,
)
from .snippets import snippet

__all__ = ["app", "main", "run"]

app = typer.Typer(
    help="Per-channel normalization statistics for image datasets, with proof of what went in.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

F = TypeVar("F", bound=Callable[..., Any])


def _one_line(exc: Exception) -> str:
    if isinstance(exc, NormstatError):
        return str(exc)
    if isinstance(exc, OSError):  # an output that cannot be written: disk full, permissions
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}"
    return f"unexpected {type(exc).__name__}: {exc} (rerun with --debug)"  # a bug


def _errors(fn: F) -> F:
    """Turn any error into one line ``Error: <path>: <reason>`` and exit 2 (1 is the leak
    code); --debug runs the work in this process (NORMSTAT_IN_PROCESS) and prints the
    traceback first."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = bool(kwargs.get("debug"))
        before = os.environ.get(IN_PROCESS)
        if debug:
            os.environ[IN_PROCESS] = "1"
        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except KeyboardInterrupt:
            Reporter().error("interrupted")
            raise typer.Exit(130) from None
        except Exception as exc:
            if debug:
                traceback.print_exc()
            Reporter().error(_one_line(exc))
            raise typer.Exit(2) from None
        finally:
            if debug and before is None:
                os.environ.pop(IN_PROCESS, None)
            elif debug:
                os.environ[IN_PROCESS] = before  # type: ignore[assignment]

    return wrapper  # type: ignore[return-value]


def _workers(rep: Reporter, workers: int | None) -> int | None:
    """More workers than usable CPUs only adds processes (0.2.0 forked them all): the engine
    caps them; say so."""
    usable = default_workers()
    if workers is not None and workers > usable:
        rep.warn(f"--workers {workers} is more than the {usable} CPUs usable here; using {usable}")
    return workers


@app.command()
@_errors
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
        None, callback=mode_option, help=f"Dataset mode ({', '.join(MODES)}); default: majority."
    ),
    alpha: Alphas = typer.Option("drop", help="Drop or keep alpha channels."),
    max_pixels: int = typer.Option(
        api.DEFAULT_MAX_PIXELS, min=1, help="Skip images larger than this (decompression bombs)."
    ),
    npy_layout: NpyLayouts = typer.Option(
        "auto",
        help="3-D .npy arrays: H×W×C image (hwc), N×H×W stack (nhw), or auto.",
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
            workers=_workers(rep, workers),
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
        )
    replaceable(output, "stats manifest", "normstat/stats@")  # and again: it took a while
    stats.save(output)
    for s in stats.skipped[:10]:
        rep.warn(f"skipped {s['path']}: {s['reason']}")
    if len(stats.skipped) > 10:
        rep.warn(f"... and {len(stats.skipped) - 10} more skipped (listed in {output})")
    rep.out.print(stats_table(stats))
    if partials is not None:
        rep.say(
            f"Partials in {partials_dir}: {partials.kept} shards kept, {partials.made} reduced"
            + (f", {partials.redone} unreadable ones redone" if partials.redone else "")
        )
    rep.say(f"Wrote {output}")


@app.command()
@_errors
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
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
    strict: bool = typer.Option(False, "--strict", help="Exit 2 on the first unreadable image."),
    max_pixels: int = typer.Option(api.DEFAULT_MAX_PIXELS, min=1, help="Skip larger images."),
    storage_options: str | None = StorageOptions,
    column: str | None = Column,
    quiet: bool = Quiet,
    debug: bool = Debug,
) -> None:
    """Write every image of a split as a normalized float array, using train statistics.

    Example: normstat apply data/val --stats stats.json -o data/val-npy
    """
    rep = Reporter(quiet)
    with rep.progress() as progress:
        result = api.apply(
            src,
            stats,
            str(output),
            workers=_workers(rep, workers),
            scale=scale,
            std=std,
            dtype=dtype,
            layout=layout,
            overwrite=overwrite,
            strict=strict,
            max_pixels=max_pixels,
            storage_options=storage_options,  # type: ignore[arg-type]  # parsed by the callback
            column=column,
            progress=progress,
        )
    for s in result.skipped:
        rep.warn(f"skipped {s.path}: {s.reason}")
    rep.say(
        f"Wrote {result.written} arrays to {result.out_dir}"
        f" ({result.kept} already there, {len(result.skipped)} skipped)"
    )


@app.command()
@_errors
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
            workers=_workers(rep, workers),
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


@app.command()
@_errors
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


@app.command()
@_errors
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
        for s in stats.skipped:
            rep.say(f"skipped {s['path']}: {s['reason']}")
    elif format == "json":
        sys.stdout.write(json.dumps(stats.data, indent=2) + "\n")
    else:
        sys.stdout.write(snippet(stats, format))


def _version(value: bool) -> None:
    if value:
        typer.echo(f"normstat {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """normstat: per-channel mean/std of image datasets, applied and checked for test leakage."""


# Usage errors: typer's own (it vendors click from 0.20 on) and, before that, click's.
_USAGE: tuple[type[Exception], ...] = tuple(
    cls
    for cls in (
        getattr(typer, "TyperException", None),
        getattr(getattr(typer.main, "click", None), "ClickException", None),
    )
    if isinstance(cls, type)
)


def run(args: list[str]) -> int:
    """The CLI on ``args``; its exit code. Usage errors are one ``Error:`` line, exit 2."""
    command = typer.main.get_command(app)
    try:
        code = command.main(args=args, prog_name="normstat", standalone_mode=False)
    except typer.Abort:
        Reporter().error("interrupted")
        return 130
    except _USAGE as exc:
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError":  # the help, already printed
            return 2
        hint = f" (see: {ctx.command_path} --help)" if ctx is not None else ""
        Reporter().error(f"{getattr(exc, 'format_message', exc.__str__)()}{hint}")
        return int(getattr(exc, "exit_code", 2))
    return code if isinstance(code, int) else 0


def main() -> None:
    sys.exit(run(sys.argv[1:]))
