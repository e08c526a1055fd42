"""--device without a GPU, and the whole device path driven end to end by a fake "cupy" that is
really NumPy: the GPU code path must give the CPU path's manifest."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from fake_cupy import TwinReductionKernel, make_fake_cupy
from helpers import describe, invoke
from PIL import Image

import normstat
from normstat.errors import DeviceError
from normstat.reduce import device
from normstat.reduce.device import Stager, device_summary, memory_bandwidth, plan

RNG = np.random.default_rng(99)


def assert_one_line_error(result, *words: str) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code == 2, describe(result)
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: --device gpu: "), result.stderr
    for w in words:
        assert w in lines[0], lines[0]


@pytest.fixture
def no_cupy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cupy", None)  # "import cupy" raises ImportError


@pytest.fixture
def fake_cupy(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    fake = make_fake_cupy()
    monkeypatch.setitem(sys.modules, "cupy", fake)
    TwinReductionKernel.calls = 0
    return fake


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """RGB images of a few sizes (same-size runs and ragged) and a uint8 RGB stack."""
    root = tmp_path_factory.mktemp("devdata")
    for i in range(9):
        h, w = (12, 16) if i < 6 else (int(RNG.integers(3, 20)), int(RNG.integers(3, 20)))
        Image.fromarray(RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / f"{i}.png")
    np.save(root / "stack.npy", RNG.integers(0, 256, (7, 10, 11, 3), dtype=np.uint8))
    return root


def _comparable(stats: normstat.Stats) -> str:
    data = dict(stats.data)
    data.pop("created")
    data.pop("options")
    return json.dumps(data, sort_keys=True)


def test_gpu_without_cupy_is_one_line_exit_2(no_cupy: None, dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "s.json"
    result = invoke("compute", dataset, "-o", out, "-w", "1", "--device", "gpu")
    assert_one_line_error(result, "no usable CUDA device: ", "cupy")
    assert not out.exists()


def test_gpu_with_cupy_but_no_device_gives_cupys_reason(
    monkeypatch: pytest.MonkeyPatch, dataset: Path, tmp_path: Path
) -> None:
    fake = make_fake_cupy()

    def no_device() -> int:
        raise RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")

    fake.cuda.runtime.getDeviceCount = no_device  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "cupy", fake)
    result = invoke("compute", dataset, "-o", tmp_path / "s.json", "--device", "gpu")
    assert_one_line_error(result, "no usable CUDA device: cudaErrorNoDevice")
    with pytest.raises(DeviceError, match="no CUDA-capable device"):
        device.load_cupy()
    assert plan("auto", 1 << 40).arrays is np  # auto quietly stays on the CPU


def test_auto_and_cpu_without_cupy_run_on_the_cpu(no_cupy: None, dataset: Path) -> None:
    assert not plan("auto", 1 << 40).uses_gpu
    a = normstat.compute(dataset, workers=1, device="auto")
    b = normstat.compute(dataset, workers=1, device="cpu")
    assert _comparable(a) == _comparable(b)
    assert a.data["options"]["device"] == "auto"


@pytest.mark.parametrize("workers", [1, 2])
def test_gpu_path_gives_the_cpu_manifest(
    fake_cupy: types.ModuleType, dataset: Path, workers: int
) -> None:
    """Decoded images (same-size and ragged batches) and a stack, reduced through the device
    path (staging, batching, the kernel) with fake-cupy: identical to the CPU manifest."""
    gpu = normstat.compute(dataset, workers=workers, device="gpu")
    assert TwinReductionKernel.calls > 0  # the fused kernel was checked and used
    cpu = normstat.compute(dataset, workers=1, device="cpu")
    assert _comparable(gpu) == _comparable(cpu)
    assert gpu.fingerprints is not None and cpu.fingerprints is not None
    assert np.array_equal(gpu.fingerprints.pixel_hash, cpu.fingerprints.pixel_hash)
    assert gpu.data["images"] == 16


@pytest.mark.parametrize("kind", ["uint16", "float32", "float64"])
def test_gpu_path_for_16_bit_and_float(
    fake_cupy: types.ModuleType, tmp_path: Path, kind: str
) -> None:
    """16-bit: identical manifests; float: per-image partials of the same arithmetic, so the
    statistics agree to 1e-12 (here exactly, NumPy standing in for CuPy)."""
    if kind == "uint16":
        arr = RNG.integers(0, 65536, (5, 9, 10, 3), dtype=np.uint16)
    else:
        arr = (1e8 + RNG.standard_normal((5, 9, 10, 3)) * 1e-3).astype(kind)
    np.save(tmp_path / "a.npy", arr)
    for i in range(3):  # decoded files too: 16-bit PNG via pypng, float via TIFF (mode F)
        if kind == "uint16":
            Image.fromarray(arr[i, ..., 0]).save(tmp_path / f"{i}.png")
        else:
            Image.fromarray(arr[i, ..., 0].astype(np.float32)).save(tmp_path / f"{i}.tif")
    gpu = normstat.compute(tmp_path, workers=1, device="gpu")
    cpu = normstat.compute(tmp_path, workers=1, device="cpu")
    assert gpu.data["images"] == 8
    if kind == "uint16":
        assert _comparable(gpu) == _comparable(cpu)
    else:
        for key in ("mean", "std", "std_per_image_mean", "min", "max"):
            np.testing.assert_allclose(gpu.data[key], cpu.data[key], rtol=1e-12, atol=0)


def test_auto_uses_the_device_only_for_large_arrays(
    fake_cupy: types.ModuleType, dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    normstat.compute(dataset, workers=1, device="auto")
    assert TwinReductionKernel.calls == 0  # 2 KB of arrays: not worth a device
    assert plan("auto", 10).files is np and plan("auto", 10).arrays is np
    monkeypatch.setattr(device, "AUTO_MIN_BYTES", 1000)
    p = plan("auto", 1000)
    assert p.arrays is fake_cupy and p.files is np  # decoding-bound files stay on the CPU
    auto = normstat.compute(dataset, workers=1, device="auto")
    assert TwinReductionKernel.calls > 0
    assert _comparable(auto) == _comparable(normstat.compute(dataset, workers=1, device="cpu"))


def test_stager_reuses_one_pinned_buffer(fake_cupy: types.ModuleType) -> None:
    stager = Stager(fake_cupy)
    a = stager.put(np.arange(12, dtype=np.uint16).reshape(3, 4))
    assert np.array_equal(a, np.arange(12).reshape(3, 4)) and a.dtype == np.uint16
    first = stager._buffer
    stager.put(np.ones(5, dtype=np.uint8))
    assert stager._buffer is first  # smaller: the same buffer
    stager.put(np.ones(100, dtype=np.float64))
    assert stager._capacity >= 800
    plain = np.ones(3)
    assert Stager(np).put(plain) is plain


def test_bandwidth_from_device_properties(fake_cupy: types.ModuleType) -> None:
    assert memory_bandwidth(fake_cupy) == 2 * 1e9 * 256 / 8
    assert device_summary(fake_cupy) == "Fake GPU (64 GB/s)"


def test_cli_start_up_and_compute_on_cpu_do_not_import_cupy(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.zeros((4, 5, 3), np.uint8))
    code = (
        "import sys, normstat, normstat.cli;"
        f"normstat.compute({str(tmp_path)!r}, workers=1, device='cpu');"
        "print('cupy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
