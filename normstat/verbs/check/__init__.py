"""check: test images (exact and near copies) that were among the statistics' contributors."""

from __future__ import annotations

from .leakage import Leak, LeakReport
from .page import is_page, write_page
from .run import check

__all__ = ["Leak", "LeakReport", "check", "is_page", "write_page"]
