"""The command line (typer): a thin layer over ``normstat.api``; ``console.py`` is the only other
module that imports rich."""

from __future__ import annotations

from .app import app, main

__all__ = ["app", "main"]
