"""The command line: parse, call the API, render. The only place exit codes are decided:
0 success, 1 leakage found (check), 2 usage or input error. Each verb is its own module,
registered on ``base.app`` when imported here."""

from __future__ import annotations

import sys

import typer

from normstat._version import __version__

from . import apply, check, compute, merge, show  # noqa: F401  (they register their commands)
from .base import app
from .console import Reporter

__all__ = ["app", "main", "run"]


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
