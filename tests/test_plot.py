"""``normstat show --plot``: what the figure shows, checked against NumPy on the true pixels
(rebinned counts, mean, std, min/max, nearest-rank percentiles), and the files it writes (a PNG
of the stated size, SVG that parses and names every channel, PDF), refused targets, atomicity,
and the missing-extra error."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import describe, invoke, sidecar_of
from PIL import Image

import normstat
from normstat.cli.app import run
from normstat.cli.plot_data import LOG_RATIO, Panel, choose_log, prepare, rebin
from normstat.manifest import Stats

needs_matplotlib = pytest.mark.skipif(
    importlib.util.find_spec("matplotlib") is None,
    reason="drawing needs matplotlib: pip install 'normstat[plot]'",
)
PERCENTILE_KEYS = ("0.5", "1", "5", "50", "95", "99", "99.5")


def _dataset(base: Path, kind: str) -> SimpleNamespace:
    """Generated images of one kind, their manifest, and the true pixels (N × C)."""
    src = base / "src"
    src.mkdir(parents=True)
    rng = np.random.default_rng(sum(map(ord, kind)))
    arrays = []
    for i in range(4):
        h, w = 20 + i, 31 - i
        if kind == "rgb":  # a black background that dwarfs every other bin, saturated specks
            arr = np.zeros((h, w, 3), dtype=np.uint8)
            obj = rng.normal([150, 110, 80], [35, 30, 45], size=(h - 8, w - 10, 3))
            arr[4:-4, 5:-5] = np.clip(obj, 0, 255).astype(np.uint8)
            arr[0, : 3 + i] = 255
            Image.fromarray(arr).save(src / f"img{i}.png")
        elif kind == "gray":  # spread evenly: nothing towers
            arr = rng.integers(0, 256, size=(h, w, 1), dtype=np.uint8)
            Image.fromarray(arr[..., 0]).save(src / f"img{i}.png")
        elif kind == "gray16":  # a range that fills no power of two, edges 37 and 60001
            arr = rng.integers(37, 60002, size=(h, w, 1), dtype=np.uint16)
            arr[0, 0, 0], arr[-1, -1, 0] = 37, 60001
            Image.fromarray(arr[..., 0]).save(src / f"img{i}.png")
        elif kind == "rgb16":  # 12-bit data in 16-bit arrays, a stack of images in one .npy
            arr = rng.integers(100, 4000, size=(h, w, 3), dtype=np.uint16)
        else:  # float32: negative values, no histogram stored
            arr = rng.normal(0.25, 1.5, size=(h, w, 3)).astype(np.float32)
        arrays.append(arr)
    if kind in ("rgb16", "float"):
        h = min(a.shape[0] for a in arrays)
        w = min(a.shape[1] for a in arrays)
        arrays = [a[:h, :w] for a in arrays]
        np.save(src / "stack.npy", np.stack(arrays))
    stats = base / "stats.json"
    normstat.compute(src, workers=1).save(str(stats))
    pixels = np.concatenate([a.reshape(-1, a.shape[2]) for a in arrays])
    return SimpleNamespace(stats=stats, pixels=pixels, images=len(arrays), kind=kind)


@pytest.fixture(scope="module", params=["rgb", "gray", "gray16", "rgb16", "float"])
def dataset(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    return _dataset(tmp_path_factory.mktemp(f"plot_{request.param}"), request.param)


@pytest.fixture(scope="module")
def rgb(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    return _dataset(tmp_path_factory.mktemp("plot_rgb_cli"), "rgb")


def _load(path: Path) -> Stats:
    return Stats.load(str(path), with_fingerprints=False, with_histogram=True)


# --------------------------------------------------------------------------------------------
# the figure's content, against NumPy on the true pixels


def test_histogram_loads_without_fingerprints(dataset: SimpleNamespace) -> None:
    light, full = _load(dataset.stats), Stats.load(str(dataset.stats))
    assert light.fingerprints is None and full.fingerprints is not None
    if dataset.kind == "float":
        assert light.histogram is None and full.histogram is None
    else:
        assert light.histogram is not None and full.histogram is not None
        np.testing.assert_array_equal(light.histogram, full.histogram)


def test_marks_are_the_true_statistics(dataset: SimpleNamespace) -> None:
    data = prepare(_load(dataset.stats))
    px = dataset.pixels
    assert [p.channel for p in data.panels] == list(
        json.loads(dataset.stats.read_text())["channels"]
    )
    assert (data.images, data.pixels) == (dataset.images, px.shape[0])
    for c, panel in enumerate(data.panels):
        values = px[:, c].astype(np.float64)
        assert panel.mean == pytest.approx(values.mean(), rel=1e-9)
        assert panel.std == pytest.approx(values.std(), rel=1e-9)
        assert (panel.lo, panel.hi) == (float(values.min()), float(values.max()))
        if dataset.kind == "float":
            assert panel.percentiles == {}
            continue
        expected = {
            f"p{q}": float(np.percentile(px[:, c], float(q), method="inverted_cdf"))
            for q in PERCENTILE_KEYS
        }
        assert panel.percentiles == expected


def test_rebinned_counts_are_exact_sums(dataset: SimpleNamespace) -> None:
    data = prepare(_load(dataset.stats))
    px = dataset.pixels
    if dataset.kind == "float":
        assert all(p.counts is None for p in data.panels)
        assert data.note == "no histogram stored for float data: mean ± std, min and max only"
        return
    assert data.note is None
    if px.dtype == np.uint8:  # every value its own bin, the whole 0..255 range
        start, width, n = 0, 1, 256
    else:  # the data's range over all channels, in at most 1024 bins of one integer width
        start, stop = int(px.min()), int(px.max())
        width = math.ceil((stop - start + 1) / 1024)
        n = math.ceil((stop - start + 1) / width)
        assert n <= 1024 and width > 1
    for c, panel in enumerate(data.panels):
        assert (panel.start, panel.width, len(panel.counts)) == (start, width, n)
        expected = np.bincount((px[:, c].astype(np.int64) - start) // width, minlength=n)
        np.testing.assert_array_equal(panel.counts, expected)
        assert panel.counts.dtype == np.int64
        edges = panel.edges
        np.testing.assert_array_equal(edges, start - 0.5 + width * np.arange(n + 1))
        # every mark lies inside the drawn range, and in the bin holding its value
        for value in [panel.mean, panel.lo, panel.hi, *panel.percentiles.values()]:
            assert edges[0] < value < edges[-1]
        for value in panel.percentiles.values():
            k = int(np.searchsorted(edges, value) - 1)
            assert panel.counts[k] > 0


def test_rebin_with_python_integers() -> None:
    """Huge counts (sums past 2^53, where float64 would round) and a span not a multiple of
    the width."""
    rng = np.random.default_rng(5)
    row = rng.integers(0, 2**50, size=65536, dtype=np.int64)
    for start, stop, bins in [(0, 65535, 1024), (37, 60001, 1024), (10, 20, 4), (5, 5, 1024)]:
        counts, width = rebin(row, start, stop, bins)
        span = stop - start + 1
        assert width == -(-span // bins) and len(counts) <= bins
        values = [int(v) for v in row]
        expected = [
            sum(values[v] for v in range(start + k * width, start + (k + 1) * width) if v <= 65535)
            for k in range(len(counts))
        ]
        assert [int(x) for x in counts] == expected
        assert sum(expected) >= sum(values[start : stop + 1])


def _panel(counts: list[int]) -> Panel:
    return Panel("L", 1.0, 1.0, 0.0, 1.0, {}, np.asarray(counts, dtype=np.int64))


def test_log_scale_when_one_bin_towers(dataset: SimpleNamespace) -> None:
    stats = _load(dataset.stats)
    if dataset.kind == "rgb":  # the black background
        assert prepare(stats).log is True
    elif dataset.kind in ("gray", "gray16", "rgb16"):  # spread evenly
        assert prepare(stats).log is False
    assert prepare(stats, log=False).log is False
    assert prepare(stats, log=True).log is True
    median = 100
    assert choose_log([_panel([median] * 9 + [LOG_RATIO * median])]) is False
    assert choose_log([_panel([median] * 9 + [LOG_RATIO * median + 1, 0, 0])]) is True


# --------------------------------------------------------------------------------------------
# the files written


@needs_matplotlib
def test_png_of_the_stated_size(dataset: SimpleNamespace, tmp_path: Path) -> None:
    out = tmp_path / "hist.png"
    result = invoke("show", dataset.stats, "--plot", out, "--quiet")
    assert result.exit_code == 0, describe(result)
    channels = dataset.pixels.shape[1]
    panel = 125 if dataset.kind == "float" else 225
    with Image.open(out) as im:
        assert im.format == "PNG"
        assert im.size == (900, 100 + panel * channels)
        im.load()  # the whole stream decodes
    assert [p.name for p in tmp_path.iterdir()] == ["hist.png"]  # no temp left
    if dataset.kind == "float":
        warned = invoke("show", dataset.stats, "--plot", out)
        assert "no histogram stored for float data" in warned.stderr


@needs_matplotlib
def test_svg_parses_and_names_each_channel(dataset: SimpleNamespace, tmp_path: Path) -> None:
    out = tmp_path / "hist.SVG"  # the extension's case does not matter
    result = invoke("show", dataset.stats, "--plot", out)
    assert result.exit_code == 0, describe(result)
    root = ET.fromstring(out.read_bytes())
    assert root.tag.endswith("svg")
    text = " ".join(t for t in root.itertext())
    manifest = json.loads(dataset.stats.read_text())
    for channel in manifest["channels"]:
        assert f"{channel}: mean" in text
    assert f"{dataset.images:,} images" in text and f"mode {manifest['mode']}" in text
    if dataset.kind != "float":
        assert "p1, p50, p99" in text  # the legend


@needs_matplotlib
def test_pdf_and_format_together(rgb: SimpleNamespace, tmp_path: Path) -> None:
    out = tmp_path / "hist.pdf"
    result = invoke("show", rgb.stats, "--format", "json", "--plot", out)
    assert result.exit_code == 0, describe(result)
    assert json.loads(result.stdout) == json.loads(rgb.stats.read_text())  # stdout stays JSON
    assert f"wrote {out}" in result.stderr
    body = out.read_bytes()
    assert body.startswith(b"%PDF-") and body.rstrip().endswith(b"%%EOF")


@needs_matplotlib
def test_same_data_same_bytes(rgb: SimpleNamespace, tmp_path: Path) -> None:
    for name in ("a.svg", "b.svg", "a.png", "b.png"):
        assert invoke("show", rgb.stats, "-q", "--plot", tmp_path / name).exit_code == 0
    assert (tmp_path / "a.svg").read_bytes() == (tmp_path / "b.svg").read_bytes()
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


@needs_matplotlib
def test_replaces_an_earlier_figure(rgb: SimpleNamespace, tmp_path: Path) -> None:
    out = tmp_path / "hist.png"
    assert invoke("show", rgb.stats, "--plot", out, "--linear").exit_code == 0
    linear = out.read_bytes()
    assert invoke("show", rgb.stats, "--plot", out, "--log").exit_code == 0
    assert out.read_bytes() != linear


# --------------------------------------------------------------------------------------------
# refused, atomic, missing extra


def _one_error_line(result_err: str, *needles: str) -> None:
    lines = result_err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result_err
    for needle in needles:
        assert needle in lines[0], result_err


def test_unknown_extension_is_a_usage_error(
    rgb: SimpleNamespace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["show", str(rgb.stats), "--plot", str(tmp_path / "hist.jpg")]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    _one_error_line(captured.err, "hist.jpg", ".png, .svg, .pdf")
    assert list(tmp_path.iterdir()) == []


@needs_matplotlib
def test_missing_folder(rgb: SimpleNamespace, tmp_path: Path) -> None:
    result = invoke("show", rgb.stats, "--plot", tmp_path / "nope" / "hist.png")
    assert result.exit_code == 2, describe(result)
    _one_error_line(result.stderr, "nope/hist.png", "does not exist")
    result = invoke("show", rgb.stats, "--plot", str(tmp_path) + "/")
    assert result.exit_code == 2


@needs_matplotlib
def test_never_over_the_manifest_or_its_sidecar(rgb: SimpleNamespace, tmp_path: Path) -> None:
    manifest = tmp_path / "stats.png"  # a manifest may have any name
    manifest.write_bytes(rgb.stats.read_bytes())
    side = sidecar_of(rgb.stats)
    (tmp_path / side.name).write_bytes(side.read_bytes())
    (tmp_path / "to-side.png").symlink_to(tmp_path / side.name)
    (tmp_path / "to-manifest.svg").symlink_to(manifest)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    for target in ("stats.png", "to-side.png", "to-manifest.svg"):
        result = invoke("show", manifest, "--plot", tmp_path / target)
        assert result.exit_code == 2, describe(result)
        _one_error_line(result.stderr, target, "refusing to overwrite")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


@needs_matplotlib
def test_never_over_another_file(rgb: SimpleNamespace, tmp_path: Path) -> None:
    notes = tmp_path / "notes.png"
    notes.write_text("not an image\n")
    result = invoke("show", rgb.stats, "--plot", notes)
    assert result.exit_code == 2, describe(result)
    _one_error_line(result.stderr, "notes.png", "is not a PNG image")
    assert notes.read_text() == "not an image\n"
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    result = invoke("show", rgb.stats, "--plot", fifo)  # must not block
    assert result.exit_code == 2 and "FIFO" in result.stderr, describe(result)


@needs_matplotlib
def test_failed_drawing_leaves_nothing(
    rgb: SimpleNamespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import normstat.cli.plot as plot

    out = tmp_path / "hist.png"
    assert invoke("show", rgb.stats, "-q", "--plot", out).exit_code == 0
    earlier = out.read_bytes()

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("renderer exploded")

    monkeypatch.setattr(plot, "draw", broken)
    for target in (out, tmp_path / "new.svg"):
        result = invoke("show", rgb.stats, "--plot", target)
        assert result.exit_code == 2, describe(result)
        _one_error_line(result.stderr, "renderer exploded")
    assert out.read_bytes() == earlier  # the earlier figure stays whole
    assert [p.name for p in tmp_path.iterdir()] == ["hist.png"]  # no temp, no new.svg


def test_missing_matplotlib_names_the_extra(
    rgb: SimpleNamespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    out = tmp_path / "hist.png"
    result = invoke("show", rgb.stats, "--plot", out)
    assert result.exit_code == 2, describe(result)
    _one_error_line(result.stderr, "hist.png", "pip install 'normstat[plot]'")
    assert result.stdout == ""
    assert not out.exists()
    assert invoke("show", rgb.stats).exit_code == 0  # show without --plot needs no matplotlib


@needs_matplotlib
def test_no_display_and_an_interactive_backend_set(rgb: SimpleNamespace, tmp_path: Path) -> None:
    """The Agg canvas only: no window opens and $DISPLAY is never needed, whatever
    MPLBACKEND says."""
    out = tmp_path / "hist.png"
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["MPLBACKEND"] = "TkAgg"
    code = (
        "import sys; from normstat.cli import main; "
        f"sys.argv = ['normstat', 'show', {str(rgb.stats)!r}, '-q', '--plot', {str(out)!r}]; "
        "main()"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    with Image.open(out) as im:
        assert im.format == "PNG"
