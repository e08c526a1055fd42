"""What every command shares: the typer app they register on, the error wrapper that makes any
failure one line and exit 2 (1 is check's leak code), the workers warning."""

from __future__ import annotations

import functools
import os
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from normstat.engine import IN_PROCESS, default_workers
from normstat.errors import NormstatError

from .console import Reporter

__all__ = ["app", "capped_workers", "errors", "one_line"]

app = typer.Typer(
    help="Per-channel normalization statistics for image datasets, with proof of what went in.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

F = TypeVar("F", bound=Callable[..., Any])


def one_line(exc: Exception) -> str:
    if isinstance(exc, NormstatError):
        return str(exc)
    if isinstance(exc, OSError):  # an output that cannot be written: disk full, permissions
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}"
    return f"unexpected {type(exc).__name__}: {exc} (rerun with --debug)"  # a bug


def errors(fn: F) -> F:
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
            Reporter().error(one_line(exc))
            raise typer.Exit(2) from None
        finally:
            if debug and before is None:
                os.environ.pop(IN_PROCESS, None)
            elif debug:
                os.environ[IN_PROCESS] = before  # type: ignore[assignment]

    return wrapper  # type: ignore[return-value]


def capped_workers(rep: Reporter, workers: int | None) -> int | None:
    """More workers than usable CPUs only adds processes (0.2.0 forked them all): the engine
    caps them; say so."""
    usable = default_workers()
    if workers is not None and workers > usable:
        rep.warn(f"--workers {workers} is more than the {usable} CPUs usable here; using {usable}")
    return workers
