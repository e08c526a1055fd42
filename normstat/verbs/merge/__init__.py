"""merge: manifests of disjoint parts → the manifest one pass over their union gives."""

from __future__ import annotations

from .run import merge

__all__ = ["merge"]
