"""Everything people see: progress on stderr, tables on stdout, one-line errors. The only module
besides the CLI that imports rich."""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from normstat.manifest import Stats
from normstat.verbs.check import LeakReport

__all__ = ["Reporter", "covariance_lines", "leak_table", "printable", "stats_table"]

_PHASES = {
    "scan": "scanning",
    "compute": "reducing",
    "shards": "reducing shards",
    "apply": "writing",
    "check": "checking",
}


# What a file name must not send to a terminal: C0/C1 control characters (escape sequences
# clear the screen or set the window title), bidirectional overrides (which reorder what is
# shown) and the lone surrogates a non-UTF-8 name decodes to (which cannot be printed at all).
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]"
)


def _escape(match: re.Match[str]) -> str:
    code = ord(match[0])
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8, as surrogateescape keeps it
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` with everything a terminal would act on shown as a visible escape (``\\x1b``)."""
    return _UNSAFE.sub(_escape, text)


class _Rate(TextColumn):
    """Images (or, for containers, shards) per second of the current phase."""

    def __init__(self) -> None:
        super().__init__("")

    def render(self, task: Any) -> Any:
        speed = task.finished_speed or task.speed
        if not speed:
            return ""
        unit = "shards/s" if task.description == _PHASES["shards"] else "img/s"
        return f"{speed:,.{1 if speed < 10 else 0}f} {unit}"


class Reporter:
    """Progress and messages: a rich bar on a terminal, a plain line every 10 s otherwise."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        # No markup anywhere: names are data, and "[blink]a.png" is a legal file name.
        self.err = Console(stderr=True, markup=False, highlight=False, soft_wrap=True)
        self.out = Console(markup=False, highlight=False, soft_wrap=True)
        self._progress: Progress | None = None
        self._tasks: dict[str, TaskID] = {}
        self._last_line = time.monotonic()

    def error(self, message: str) -> None:
        self.err.print(f"Error: {printable(message)}")

    def warn(self, message: str) -> None:
        if not self.quiet:
            self.err.print(f"Warning: {printable(message)}")

    def info(self, message: str) -> None:
        if not self.quiet:
            self.err.print(printable(message))

    def say(self, message: str) -> None:
        """A line of the result, on stdout."""
        self.out.print(printable(message))

    @contextmanager
    def progress(self) -> Iterator[Any]:
        """Yield the callback the API calls as ``progress(phase, done, total)``."""
        if self.quiet:
            yield None
            return
        if not self.err.is_terminal:
            yield self._plain
            return
        with Progress(
            TextColumn("{task.description:<9}"),
            BarColumn(),
            MofNCompleteColumn(),
            _Rate(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.err,
            transient=False,
        ) as bar:
            self._progress = bar
            yield self._rich
        self._progress = None

    def _rich(self, phase: str, done: int, total: int) -> None:
        assert self._progress is not None
        if phase not in self._tasks:
            self._tasks[phase] = self._progress.add_task(_PHASES.get(phase, phase), total=total)
        self._progress.update(self._tasks[phase], completed=done, total=total)

    def _plain(self, phase: str, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self._last_line >= 10 or (done == total and total > 1000):
            self._last_line = now
            print(f"{_PHASES.get(phase, phase)}: {done}/{total}", file=sys.stderr, flush=True)


def _fmt(values: list[Any], digits: int = 4) -> list[str]:
    return [f"{v:.{digits}f}" if isinstance(v, float) else str(v) for v in values]


def _pct(value: Any) -> str:
    """An integer percentile as it is; a float one (a bin edge) to 6 digits; a tail's name."""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def stats_table(stats: Stats) -> Table:
    d = stats.data
    raw = d.get("raw", {})
    pct = raw.get("percentiles", {})
    table = Table(
        title=(
            f"{d['images']:,} images, {d.get('pixels', 0):,} pixels per channel, "
            f"mode {d['mode']}, {len(d['skipped'])} skipped"
        ),
        title_justify="left",
    )
    table.add_column("channel")
    for col in ("mean", "std", "std/img", "min", "max"):
        table.add_column(col, justify="right")
    shown = ["1", "50", "99"] if all(k in pct for k in ("1", "50", "99")) else list(pct)[:4]
    if pct:
        table.add_column(f"{' / '.join('p' + k for k in shown)} (raw)", justify="right")
    if "pixels_valid" in d:
        table.add_column("valid px", justify="right")
    per_image = d.get("std_per_image_mean", [None] * len(d["channels"]))
    for i, ch in enumerate(d["channels"]):
        row = [
            printable(str(ch)),
            f"{d['mean'][i]:.4f}",
            f"{d['std'][i]:.4f}",
            "" if per_image[i] is None else f"{per_image[i]:.4f}",
            *_fmt([d.get("min", [None] * (i + 1))[i], d.get("max", [None] * (i + 1))[i]]),
        ]
        if pct:
            row.append(" / ".join(_pct(pct[k][i]) for k in shown))
        if "pixels_valid" in d:
            row.append(f"{d['pixels_valid'][i]:,}")
        table.add_row(*row)
    return table


def covariance_lines(stats: Stats) -> list[str]:
    """Brief lines under the table for a manifest with the covariance: the correlation of each
    channel pair, and the PCA eigenvalues ([0, 1] units)."""
    d = stats.data
    if "correlation" not in d or "pca" not in d:
        return []
    names, corr = [printable(str(c)) for c in d["channels"]], d["correlation"]
    pairs = [
        f"{names[i]}-{names[j]} " + ("n/a" if corr[i][j] is None else f"{corr[i][j]:.4f}")
        for i in range(len(names))
        for j in range(i + 1, len(names))
    ]
    lines = [f"correlation: {', '.join(pairs)}"] if pairs else []
    values = ", ".join(f"{v:.4g}" for v in d["pca"]["eigenvalues"])
    return [*lines, f"PCA eigenvalues ([0, 1] units): {values}"]


def _short(path: str) -> str:
    """Paths under the working folder are shown relative to it."""
    rel = os.path.relpath(path) if os.path.isabs(path) else path
    return path if rel.startswith("..") else rel


def leak_table(report: LeakReport, look_alikes: bool = False) -> Table:
    """The leaks (or, with ``look_alikes``, the look-alikes listed for review) as a table."""
    rows = report.look_alikes if look_alikes else report.leaked
    title = f"{len(rows)} look-alikes (for review)" if look_alikes else f"{len(rows)} leaked"
    table = Table(title=f"{title} test images", title_justify="left")
    table.add_column("test image", overflow="fold")
    table.add_column("train image", overflow="fold")
    table.add_column("kind")
    table.add_column("score", justify="right")
    table.add_column("distinct", justify="right")
    for leak in rows:
        changes = (leak.transform or {}).get("changes") or []
        kind = ", ".join([leak.kind, *changes]) if leak.kind != "exact" else leak.kind
        distinct = "" if leak.distinct is None else f"{leak.distinct:.1f}"
        test, train = printable(_short(leak.test)), printable(_short(leak.train))
        table.add_row(test, train, kind, f"{leak.score:.3f}", distinct)
    return table
