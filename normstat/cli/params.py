"""The options several commands share, and the CLI's choices, made from the library's own
value sets (one list each, in ``normstat.options``): typer offers and checks a Literal's values."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Literal

import typer

from normstat.modes import MODES, get_mode
from normstat.options import (
    ALPHAS,
    COLORS,
    DEVICES,
    DTYPES,
    INVALIDS,
    LAYOUTS,
    NPY_LAYOUTS,
    SCALES,
    STDS,
)

from .snippets import FORMATS

__all__ = [
    "SHOW_FORMATS",
    "Alphas",
    "Colors",
    "Column",
    "Debug",
    "Devices",
    "Dtypes",
    "Invalids",
    "Layouts",
    "NpyLayouts",
    "Quiet",
    "Scales",
    "ShowFormats",
    "Stds",
    "StorageOptions",
    "Workers",
    "mode_option",
]

Quiet = typer.Option(False, "--quiet", "-q", help="No progress or warnings on stderr.")
Debug = typer.Option(False, "--debug", help="Run in this process and show a traceback on errors.")
Workers = typer.Option(None, "--workers", "-w", min=1, help="Processes (default: all cores).")


def _storage_options(value: str | None) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"not JSON ({exc.msg})") from None
    if not isinstance(parsed, dict):
        raise typer.BadParameter("must be a JSON object, such as '{\"anon\": true}'")
    return parsed


StorageOptions = typer.Option(
    None,
    "--storage-options",
    metavar="JSON",
    callback=_storage_options,
    help="fsspec options for URL sources, as a JSON object (never written to any output).",
)
Column = typer.Option(None, "--column", help="Parquet shards: the image column (default: found).")


SHOW_FORMATS = ("text", "json", *FORMATS)

if TYPE_CHECKING:
    Alphas = str
    Colors = str
    Devices = str
    NpyLayouts = str
    Scales = str
    Stds = str
    Dtypes = str
    Layouts = str
    Invalids = str
    ShowFormats = str
else:
    Alphas = Literal[ALPHAS]
    Colors = Literal[COLORS]
    Devices = Literal[DEVICES]
    NpyLayouts = Literal[NPY_LAYOUTS]
    Scales = Literal[SCALES]
    Stds = Literal[STDS]
    Dtypes = Literal[DTYPES]
    Layouts = Literal[LAYOUTS]
    Invalids = Literal[INVALIDS]
    ShowFormats = Literal[SHOW_FORMATS]


def mode_option(value: str | None) -> str | None:
    if value is not None and value not in MODES:
        try:
            get_mode(value)  # a band mode: B<n>, B<n>;16, B<n>;F
        except ValueError:
            raise typer.BadParameter(
                f"choose from {', '.join(MODES)}, B<n>, B<n>;16, B<n>;F (n bands)"
            ) from None
    return value
