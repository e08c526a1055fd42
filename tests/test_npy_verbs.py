"""apply and check read ``.npy`` sources (single images and stacks) through the same reader
registry as compute: no special case in either verb. Images of a stack are named
``stack.npy[i]`` everywhere (sidecar, reports, skips) and apply writes ``stack.npy[i].npy``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import describe, invoke, without_references
from PIL import Image

import normstat

RNG = np.random.default_rng(11)


def _digits(n: int) -> np.ndarray:
    """Smooth 28×28 images that differ from each other (no two look alike)."""
    y, x = np.mgrid[0:28, 0:28]
    out = []
    for i in range(n):
        blob = 255 * np.exp(-(((x - 6 - i % 17) ** 2 + (y - 5 - (3 * i) % 19) ** 2) / 30.0))
        out.append(np.clip(blob + RNG.normal(0, 4, (28, 28)), 0, 255).astype(np.uint8))
    return np.stack(out)


@pytest.fixture
def split(tmp_path: Path) -> dict[str, Path]:
    train = tmp_path / "train"
    train.mkdir()
    digits = _digits(12)
    np.save(train / "digits.npy", digits[:10])  # a stack N×H×W
    np.save(train / "one.npy", digits[10])  # a single image H×W
    Image.fromarray(digits[11]).save(train / "file.png")
    stats = tmp_path / "stats.json"
    normstat.compute(train, workers=1).save(str(stats))
    return {"train": train, "stats": stats, "tmp": tmp_path}


@pytest.mark.parametrize("workers", [1, 2])
def test_apply_writes_every_image_of_stacks_and_single_arrays(
    split: dict[str, Path], workers: int
) -> None:
    out = split["tmp"] / f"out{workers}"
    result = normstat.apply(split["train"], str(split["stats"]), out, workers=workers)
    assert (result.written, result.kept, result.skipped) == (12, 0, [])
    stats = normstat.Stats.load(str(split["stats"]))
    (mean,), (std,) = stats.mean, stats.std
    digits = np.load(split["train"] / "digits.npy")
    for i in range(10):
        got = np.load(out / f"digits.npy[{i}].npy")
        want = ((digits[i].astype(np.float64) / 255 - mean) / std)[None]
        assert got.shape == (1, 28, 28) and got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert np.load(out / "one.npy.npy").shape == (1, 28, 28)
    assert np.load(out / "file.png.npy").shape == (1, 28, 28)
    again = normstat.apply(split["train"], str(split["stats"]), out, workers=workers)
    assert (again.written, again.kept) == (0, 12)  # a rerun resumes, image by image


@pytest.mark.parametrize("workers", [1, 2])
def test_check_reads_test_stacks_and_verifies_against_train_stacks(
    split: dict[str, Path], workers: int
) -> None:
    """A test stack holding an exact copy of a train stack's image, a brightened copy of the
    single-image array, and images nobody contributed: leaks named ``stack.npy[i]`` on both
    sides, each verified by reading the train stack's image back."""
    test = split["tmp"] / "test"
    test.mkdir()
    digits = np.load(split["train"] / "digits.npy")
    one = np.load(split["train"] / "one.npy")
    brighter = np.clip(one.astype(np.int32) * 1.15 + 10, 0, 255).astype(np.uint8)
    others = _digits(40)[30:33]
    np.save(test / "mixed.npy", np.stack([others[0], digits[7], brighter, others[1]]))
    np.save(test / "single.npy", others[2])
    report = normstat.check(test, str(split["stats"]), workers=workers)
    assert report.checked == 5
    found = {(leak.test, leak.train, leak.kind) for leak in report.leaked}
    assert found == {
        (str(test / "mixed.npy[1]"), str(split["train"] / "digits.npy[7]"), "exact"),
        (str(test / "mixed.npy[2]"), str(split["train"] / "one.npy"), "near"),
    }
    assert not [w for w in report.warnings if "cannot verify" in w]


def test_check_warns_when_a_train_stack_changed(split: dict[str, Path]) -> None:
    """The train stack rewritten after compute: with stored references nothing is read and
    the copy is still found; a manifest without them reads the stack, which cannot verify its
    image any more, and says so."""
    test = split["tmp"] / "test"
    test.mkdir()
    one = np.load(split["train"] / "one.npy")
    np.save(test / "near.npy", np.clip(one.astype(np.int32) + 12, 0, 255).astype(np.uint8))
    np.save(split["train"] / "one.npy", _digits(50)[45])
    report = normstat.check(test, str(split["stats"]), workers=1)
    assert [(leak.train, leak.kind) for leak in report.leaked] == [
        (str(split["train"] / "one.npy"), "near")
    ]
    without_references(split["stats"])
    report = normstat.check(test, str(split["stats"]), workers=1)
    assert report.leaked == []
    assert any("changed since" in w for w in report.warnings), report.warnings


def test_apply_skips_a_float_stack_for_an_integer_manifest(split: dict[str, Path]) -> None:
    """Skipped as compute skips it, and a run that wrote nothing fails (0.2.0 stopped at it)."""
    src = split["tmp"] / "val"
    src.mkdir()
    np.save(src / "f.npy", RNG.random((2, 28, 28)).astype(np.float32))
    with pytest.raises(normstat.InputError) as compute_err:
        normstat.compute(src, workers=1, mode="L")
    result = invoke("apply", src, "--stats", split["stats"], "-o", split["tmp"] / "o", "-w", "1")
    assert result.exit_code == 2, describe(result)
    assert result.stderr.startswith(f"Error: {src}: no image could be read (2 skipped; first:")
    reason = compute_err.value.reason.split("first reason: ")[1].rstrip(")")
    assert reason in result.stderr, (reason, result.stderr)
    assert not (split["tmp"] / "o").exists()  # nothing written: the folder it made is gone


def test_apply_and_check_through_the_cli(split: dict[str, Path]) -> None:
    out = split["tmp"] / "cli-out"
    result = invoke("apply", split["train"], "--stats", split["stats"], "-o", out, "-w", "1")
    assert result.exit_code == 0, describe(result)
    assert "Wrote 12 arrays" in result.stdout
    result = invoke("check", split["train"], "--stats", split["stats"], "-w", "1", "--json", "-")
    assert result.exit_code == 1, describe(result)
    leaked = json.loads(result.stdout)["leaked"]
    name = str(split["train"] / "digits.npy[9]")
    assert {"test": name, "train": name, "kind": "exact"}.items() <= leaked[9].items()
