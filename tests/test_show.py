"""``normstat show``: the manifest as JSON or a table, and code snippets that, executed against
stub libraries, receive exactly the manifest's statistics."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from helpers import describe, invoke
from PIL import Image

import normstat


def _dataset(base: Path, kind: str) -> SimpleNamespace:
    """Images of one kind, their manifest, and float64 reference statistics (raw units)."""
    src = base / "src"
    src.mkdir(parents=True)
    rng = np.random.default_rng(17 if kind == "rgb" else 18)
    arrays = []
    for i in range(6):
        h, w = 9 + i, 14 - i
        if kind == "rgb":
            arr = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
            arr[..., 2] //= 2  # channels with different statistics
        else:
            arr = rng.integers(0, 65536, size=(h, w), dtype=np.uint16)
        Image.fromarray(arr).save(src / f"img{i}.png")
        arrays.append(arr.reshape(h, w, -1))
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    stats = base / "stats.json"
    normstat.compute(src, workers=1).save(str(stats))
    max_value = 255.0 if kind == "rgb" else 65535.0
    flat = np.concatenate([a.reshape(-1, a.shape[2]) for a in arrays]).astype(np.float64)
    return SimpleNamespace(
        src=src,
        stats=stats,
        manifest=json.loads(stats.read_text()),
        images=len(arrays),
        raw_mean=flat.mean(axis=0),
        raw_var=flat.var(axis=0),
        mean=(flat / max_value).mean(axis=0),
        std=(flat / max_value).std(axis=0),
        max_value=max_value,
    )


@pytest.fixture(scope="module")
def rgb(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    return _dataset(tmp_path_factory.mktemp("show_rgb"), "rgb")


@pytest.fixture(scope="module")
def gray16(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    return _dataset(tmp_path_factory.mktemp("show_gray16"), "gray16")


@pytest.fixture(params=["rgb", "gray16"])
def dataset(request: pytest.FixtureRequest) -> SimpleNamespace:
    return request.getfixturevalue(request.param)


def test_reference_statistics(dataset: SimpleNamespace) -> None:
    man = dataset.manifest
    assert man["mode"] == ("RGB" if dataset.max_value == 255 else "I;16")
    assert man["images"] == dataset.images
    assert len(man["skipped"]) == 1
    np.testing.assert_allclose(man["mean"], dataset.mean, rtol=1e-12, atol=0)
    np.testing.assert_allclose(man["std"], dataset.std, rtol=1e-12, atol=0)
    np.testing.assert_allclose(man["raw"]["mean"], dataset.raw_mean, rtol=1e-12, atol=0)
    np.testing.assert_allclose(man["raw"]["var"], dataset.raw_var, rtol=1e-12, atol=0)


# --------------------------------------------------------------------------------------------
# json and text


def test_show_json_equals_manifest(dataset: SimpleNamespace) -> None:
    for flag in ("--format", "-f"):
        result = invoke("show", dataset.stats, flag, "json")
        assert result.exit_code == 0, describe(result)
        assert json.loads(result.stdout) == json.loads(dataset.stats.read_text())
        assert result.stderr == ""


def test_show_text_lists_channels_and_image_count(dataset: SimpleNamespace) -> None:
    result = invoke("show", dataset.stats)
    assert result.exit_code == 0, describe(result)
    out = result.stdout
    assert f"{dataset.images} images" in out
    assert "1 skipped" in out
    assert "broken.png" in out
    channels = dataset.manifest["channels"]
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.replace("┃", "│").split("│")]
        if len(cells) > 3 and cells[1] in channels:
            rows[cells[1]] = cells[2:]
    assert list(rows) == channels
    for i, ch in enumerate(channels):
        assert rows[ch][0] == f"{dataset.mean[i]:.4f}", rows[ch]
        assert rows[ch][1] == f"{dataset.std[i]:.4f}", rows[ch]


def test_show_missing_manifest_exit_2(tmp_path: Path) -> None:
    result = invoke("show", tmp_path / "nope.json")
    assert result.exit_code == 2, describe(result)
    assert len(result.stderr.strip().splitlines()) == 1
    assert "nope.json" in result.stderr


# --------------------------------------------------------------------------------------------
# snippets executed against stub libraries


class Recorder:
    """A stand-in class that records how it was called."""

    calls: list[Recorder]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.kwargs = kwargs
        type(self).calls.append(self)


def recorder(name: str) -> type[Recorder]:
    return type(name, (Recorder,), {"calls": []})


def _module(monkeypatch: pytest.MonkeyPatch, name: str, **attrs: Any) -> types.ModuleType:
    mod = types.ModuleType(name)
    for key, value in attrs.items():
        setattr(mod, key, value)
    monkeypatch.setitem(sys.modules, name, mod)
    return mod


def _run_snippet(stats: Path, fmt: str) -> dict[str, Any]:
    result = invoke("show", stats, "--format", fmt)
    assert result.exit_code == 0, describe(result)
    namespace: dict[str, Any] = {"__name__": "snippet"}
    exec(compile(result.stdout, f"<{fmt} snippet>", "exec"), namespace)
    return namespace


def test_torchvision_snippet(dataset: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    float32 = object()
    torch = _module(monkeypatch, "torch", float32=float32)
    v2 = _module(
        monkeypatch,
        "torchvision.transforms.v2",
        ToImage=recorder("ToImage"),
        ToDtype=recorder("ToDtype"),
        Normalize=recorder("Normalize"),
        Compose=recorder("Compose"),
    )
    transforms = _module(monkeypatch, "torchvision.transforms", v2=v2)
    _module(monkeypatch, "torchvision", transforms=transforms)

    ns = _run_snippet(dataset.stats, "torchvision")
    assert ns["torch"] is torch
    (compose,) = v2.Compose.calls
    assert ns["transform"] is compose
    (steps,) = compose.args
    assert [type(s).__name__ for s in steps] == ["ToImage", "ToDtype", "Normalize"]
    to_dtype = steps[1]
    assert to_dtype.args == (float32,)
    assert to_dtype.kwargs == {"scale": True}  # to [0, 1], the units of the statistics
    norm = steps[2]
    assert set(norm.kwargs) == {"mean", "std"}
    assert norm.kwargs["mean"] == dataset.manifest["mean"]  # exact: floats round-trip
    assert norm.kwargs["std"] == dataset.manifest["std"]
    np.testing.assert_allclose(norm.kwargs["mean"], dataset.mean, rtol=1e-12, atol=0)
    np.testing.assert_allclose(norm.kwargs["std"], dataset.std, rtol=1e-12, atol=0)


def test_keras_snippet(dataset: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    layers = _module(monkeypatch, "keras.layers", Normalization=recorder("Normalization"))
    _module(monkeypatch, "keras", layers=layers)

    ns = _run_snippet(dataset.stats, "keras")
    (layer,) = layers.Normalization.calls
    assert ns["normalize"] is layer
    assert layer.kwargs["axis"] == -1
    assert layer.kwargs["mean"] == dataset.manifest["raw"]["mean"]
    assert layer.kwargs["variance"] == dataset.manifest["raw"]["var"]
    # Raw pixel units (0..max_value), variance not std.
    np.testing.assert_allclose(layer.kwargs["mean"], dataset.raw_mean, rtol=1e-12, atol=0)
    np.testing.assert_allclose(layer.kwargs["variance"], dataset.raw_var, rtol=1e-12, atol=0)


def test_albumentations_snippet(dataset: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    albumentations = _module(monkeypatch, "albumentations", Normalize=recorder("Normalize"))

    ns = _run_snippet(dataset.stats, "albumentations")
    (norm,) = albumentations.Normalize.calls
    assert ns["normalize"] is norm
    assert norm.kwargs["mean"] == dataset.manifest["mean"]
    assert norm.kwargs["std"] == dataset.manifest["std"]
    assert norm.kwargs["max_pixel_value"] == dataset.max_value
    np.testing.assert_allclose(norm.kwargs["mean"], dataset.mean, rtol=1e-12, atol=0)
    np.testing.assert_allclose(norm.kwargs["std"], dataset.std, rtol=1e-12, atol=0)


def test_stubs_do_not_leak() -> None:
    for name in ("torch", "torchvision", "keras", "albumentations"):
        module = sys.modules.get(name)
        assert module is None or getattr(module, "__file__", None) is not None, name
