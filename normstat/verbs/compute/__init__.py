"""compute: sources → shards of items → (read → reduce + fingerprint) on an engine → folded in
item order → manifest."""

from __future__ import annotations

from .run import compute

__all__ = ["compute"]
