"""``show --plot``: the dataset's per-channel histograms as a PNG, SVG or PDF, drawn with
matplotlib (the ``plot`` extra, imported only here and only when a plot is asked for) on its
Agg canvas: no window, no $DISPLAY, no pyplot state. The figure is rendered in memory and
written atomically, so a failed drawing leaves nothing behind."""

from __future__ import annotations

import io
import os
from typing import Any

import typer

from normstat.errors import OutputError
from normstat.fileops import atomic_write_bytes, replaceable
from normstat.readers.registry import install_hint

from .plot_data import Panel, PlotData

__all__ = ["PLOT_FORMATS", "check_output", "draw", "plot_path", "render", "write_plot"]

PLOT_FORMATS = ("png", "svg", "pdf")
DPI = 100
# Inches, exact in binary: a PNG is 900 × (100 + 225·C) pixels, 900 × (100 + 125·C) without bars.
WIDTH_IN, HEAD_IN, PANEL_IN, BARLESS_IN = 9.0, 1.0, 2.25, 1.25
COLOURS = {"R": "#d62728", "G": "#2ca02c", "B": "#1f77b4", "A": "#9467bd"}
GREY = "#4d4d4d"
MAIN_MARKS = ("p1", "p50", "p99")  # labelled; the manifest's other percentiles are fainter
# What an earlier figure of each format starts with: only those are replaced.
MAGIC = {"png": (b"\x89PNG\r\n\x1a\n",), "pdf": (b"%PDF-",), "svg": (b"<?xml", b"<svg")}


def plot_path(value: str | None) -> str | None:
    """The --plot callback: the extension chooses the format, and must be one we draw."""
    if value is not None and _format(value) not in PLOT_FORMATS:
        supported = ", ".join(f".{f}" for f in PLOT_FORMATS)
        raise typer.BadParameter(f"{value}: unknown image type; use {supported}")
    return value


def _format(path: str) -> str:
    return os.path.splitext(path)[1].lower().lstrip(".")


def check_output(path: str, protected: list[str]) -> None:
    """OutputError unless ``path`` may receive the figure: its folder exists, it is none of
    ``protected`` (the manifest, its sidecar), and it is absent or an earlier figure."""
    if not os.path.isdir(os.path.dirname(os.path.abspath(path))) and not path.endswith("/"):
        raise OutputError(path, f"folder {os.path.dirname(path) or '.'} does not exist")
    fmt = _format(path)
    replaceable(
        path,
        f"{fmt.upper()} image",
        lambda head: head.lstrip().startswith(MAGIC[fmt]),
        protected,
        "the manifest or its sidecar",
    )


def _matplotlib() -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    return Figure


def figure_class(path: str) -> Any:
    """matplotlib's Figure, or OutputError naming the extra that installs it."""
    figure = _matplotlib()
    if figure is None:
        raise OutputError(path, f"drawing a plot needs matplotlib: {install_hint('plot')}")
    return figure


def _engineering() -> Any:
    from matplotlib.ticker import EngFormatter

    return EngFormatter(sep="")


def _colour(channel: str) -> str:
    return COLOURS.get(channel, GREY)


def _fmt(value: float) -> str:
    return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.3e}"


def _panel(ax: Any, p: Panel, data: PlotData) -> None:
    colour, scale = _colour(p.channel), data.max_value
    ax.axvspan(p.mean - p.std, p.mean + p.std, color=colour, alpha=0.13, lw=0, label="mean ± std")
    if p.counts is not None:
        ax.stairs(p.counts, p.edges, fill=True, color=colour, alpha=0.45, lw=0)
        ax.stairs(p.counts, p.edges, color=colour, lw=0.8, label="pixels")
        ax.set_yscale("log" if data.log else "linear")
        if data.log:
            ax.set_ylim(bottom=0.7)
        else:
            ax.set_ylim(bottom=0)
            ax.yaxis.set_major_formatter(_engineering())  # 400k, not 400000
        per = "" if p.width == 1 else f" per {p.width} values"
        ax.set_ylabel(f"pixels{per}" + (" (log)" if data.log else ""), fontsize=8)
    else:
        ax.hlines(0.5, p.lo, p.hi, color=colour, lw=2.5, label="min .. max")
        ax.plot([p.lo, p.hi], [0.5, 0.5], "|", color=colour, ms=18, mew=2.5)
        ax.set_ylim(0, 1)
        ax.set_yticks([])
        if data.note:
            ax.text(
                0.5,
                0.85,
                data.note,
                transform=ax.transAxes,
                ha="center",
                va="center",
                fontsize=9,
                style="italic",
                color=GREY,
            )
    ax.axvline(p.mean, color="black", lw=1.5, label="mean")
    labels: dict[float, list[str]] = {}
    for name, value in p.percentiles.items():
        main = name in MAIN_MARKS
        ax.axvline(
            value,
            color=GREY,
            lw=0.9 if main else 0.6,
            ls="--" if main else ":",
            alpha=0.9 if main else 0.6,
            label=(
                "p1, p50, p99" if name == "p50" else "other percentiles" if name == "p5" else None
            ),
        )
        if main:
            labels.setdefault(value, []).append(name)
    trans = ax.get_xaxis_transform()
    lo, hi = _xlim(data)
    for value, names in labels.items():  # percentiles on one value share one label
        side = "left" if value - lo < 0.04 * (hi - lo) else "right"  # off the y axis
        ax.text(
            value,
            0.97,
            " " + " ".join(names) + " ",
            transform=trans,
            rotation=90,
            ha=side,
            va="top",
            fontsize=7,
            color=GREY,
        )
    left = f"{p.channel}: mean {_fmt(p.mean)}, std {_fmt(p.std)}"
    if data.max_value != 1:
        left += f"   ([0, 1] scale: {p.mean / scale:.4f}, {p.std / scale:.4f})"
    ax.set_title(left, loc="left", fontsize=9, fontweight="bold")
    marks = [f"{n} {_fmt(v)}" for n, v in p.percentiles.items() if n in MAIN_MARKS]
    marks.append(f"min {_fmt(p.lo)}, max {_fmt(p.hi)}")
    if p.counts is not None and p.counts.sum():
        k = int(p.counts.argmax())
        share = 100 * int(p.counts[k]) / int(p.counts.sum())
        if share >= 5:  # a spike worth naming (a background, a saturated highlight)
            where = _fmt(p.start + k * p.width) if p.width == 1 else _bin_range(p, k)
            marks.append(f"{share:.1f}% at {where}")
    ax.set_title(";  ".join(marks), loc="right", fontsize=8, color=GREY)
    ax.tick_params(labelsize=8)


def _bin_range(p: Panel, k: int) -> str:
    first = p.start + k * p.width
    return f"{first}..{min(first + p.width - 1, int(p.hi))}"


def _xlim(data: PlotData) -> tuple[float, float]:
    first = data.panels[0]
    if first.counts is not None:
        edges = first.edges
        return float(edges[0]), float(edges[-1])
    lo = min(min(p.lo, p.mean - p.std) for p in data.panels)
    hi = max(max(p.hi, p.mean + p.std) for p in data.panels)
    pad = (hi - lo) * 0.05 or max(abs(lo), 1.0) * 0.05
    return lo - pad, hi + pad


def draw(data: PlotData, figure: Any) -> Any:
    """The figure: one panel per channel on a shared raw-value axis, the [0, 1] scale on top."""
    n = len(data.panels)
    height = BARLESS_IN if data.panels[0].counts is None else PANEL_IN
    fig = figure(figsize=(WIDTH_IN, HEAD_IN + height * n), dpi=DPI, layout="constrained")
    axes = fig.subplots(n, 1, sharex=True, squeeze=False)[:, 0]
    for ax, panel in zip(axes, data.panels, strict=True):
        _panel(ax, panel, data)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(
        handles, names, loc="outside lower center", ncols=len(names), fontsize=8, frameon=False
    )
    axes[0].set_xlim(*_xlim(data))
    scale = data.max_value
    if scale != 1:
        top = axes[0].secondary_xaxis("top", functions=(lambda x: x / scale, lambda x: x * scale))
        top.set_xlabel(f"[0, 1] scale (raw ÷ {scale:g})", fontsize=8)
        top.tick_params(labelsize=8)
    units = f"{data.dtype}, 0..{scale:g}" if scale != 1 else f"{data.dtype}, not rescaled"
    axes[-1].set_xlabel(f"raw pixel value ({units})", fontsize=9)
    skipped = f", {data.skipped:,} skipped" if data.skipped else ""
    fig.suptitle(
        f"{data.name}: {data.images:,} images{skipped}, {data.pixels:,} pixels per channel, "
        f"mode {data.mode}",
        fontsize=10,
    )
    return fig


def render(data: PlotData, fmt: str, figure: Any) -> bytes:
    """The figure's file bytes; the same data give the same bytes (no dates, fixed SVG ids)."""
    import matplotlib

    fig = draw(data, figure)
    buf = io.BytesIO()
    metadata = {"png": {"Software": None}, "svg": {"Date": None}, "pdf": {"CreationDate": None}}
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "normstat"}):
        fig.savefig(buf, format=fmt, metadata=metadata[fmt])
    return buf.getvalue()


def write_plot(data: PlotData, path: str, figure: Any) -> None:
    """Render, then write atomically: the file appears whole or not at all."""
    atomic_write_bytes(path, render(data, _format(path), figure))
