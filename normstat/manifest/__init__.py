"""The manifest: ``Stats`` ⇄ STATS.json + its fingerprint sidecar; validated, atomic, versioned."""

from __future__ import annotations

from .document import document
from .stats import Stats
from .validate import SCHEMA

__all__ = ["SCHEMA", "Stats", "document"]
