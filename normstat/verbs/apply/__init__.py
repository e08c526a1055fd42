"""apply: every image of a split written as a normalized array, with the train statistics."""

from __future__ import annotations

from .run import IMAGENET, ApplyResult, apply

__all__ = ["IMAGENET", "ApplyResult", "apply"]
