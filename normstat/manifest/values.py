"""Typed reads of untrusted JSON values: each returns the value checked (a finite float, a bounded
int, a list of one per channel...) or raises ManifestError naming the key, so nothing a verb does
with a loaded manifest can meet a KeyError, TypeError or OverflowError later."""

from __future__ import annotations

import math
from typing import Any, NoReturn

from normstat.errors import ManifestError

__all__ = ["MAX_COUNT", "Reader"]

MAX_COUNT = 2**63 - 1  # counts are int64 in the sidecar and in NumPy
_BIG_INT = 2**1000  # float() of a larger int raises OverflowError


class Reader:
    """Checks values of the manifest at ``path``; ``what`` names the value in the reason."""

    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, reason: str) -> NoReturn:
        raise ManifestError(self.path, reason)

    def obj(self, value: Any, what: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(f"'{what}' must be an object")
        return value

    def key(self, parent: dict[str, Any], key: str, what: str) -> Any:
        if key not in parent:
            self.fail(f"'{what}' lacks '{key}'")
        return parent[key]

    def text(self, value: Any, what: str, *, empty: bool = True) -> str:
        if not isinstance(value, str) or (not empty and not value):
            self.fail(f"'{what}' must be a{'' if empty else ' non-empty'} string")
        if "\0" in value:
            self.fail(f"'{what}' holds a NUL character")
        return value

    def integer(self, value: Any, what: str, lo: int = 0, hi: int = MAX_COUNT) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(f"'{what}' must be an integer")
        if not lo <= value <= hi:
            self.fail(f"'{what}' is out of range ({lo} to {hi})")
        return value

    def number(self, value: Any, what: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(f"'{what}' holds a non-finite or non-numeric value: {_short(value)}")
        if isinstance(value, int) and abs(value) > _BIG_INT:
            self.fail(f"'{what}' holds a number too large to use")
        out = float(value)
        if not math.isfinite(out):
            self.fail(f"'{what}' holds a non-finite or non-numeric value: {value!r}")
        return out

    def numbers(self, value: Any, what: str, n: int) -> list[float]:
        """One finite number per channel."""
        if not isinstance(value, list) or len(value) != n:
            self.fail(f"'{what}' must be a list of {n} numbers, one per channel")
        return [self.number(v, what) for v in value]

    def integers(self, value: Any, what: str, n: int, lo: int, hi: int) -> list[int]:
        if not isinstance(value, list) or len(value) != n:
            self.fail(f"'{what}' must be a list of {n} integers, one per channel")
        return [self.integer(v, what, lo, hi) for v in value]

    def choice(self, value: Any, what: str, allowed: tuple[str, ...]) -> str:
        if value not in allowed:
            self.fail(f"'{what}' must be one of {', '.join(allowed)}, not {_short(value)}")
        return str(value)

    def agrees(self, stored: float, exact: float, what: str, rel: float = 1e-9) -> None:
        """``stored`` must be the value recomputed from ``state`` (up to rounding)."""
        if not math.isclose(stored, exact, rel_tol=rel, abs_tol=1e-300):
            self.fail(f"'{what}' {stored!r} does not agree with 'state' ({exact!r})")


def _short(value: Any) -> str:
    """A value for a reason: containers by kind (their repr could be huge), others cut short."""
    if isinstance(value, dict | list):
        return "an object" if isinstance(value, dict) else "a list"
    text = repr(value[:40] if isinstance(value, str) else value)
    return text if len(text) <= 40 else text[:37] + "..."
