"""Manifests and sidecars are byte-identical to what normstat 0.2.0 wrote for the same input (apart
from ``tool`` and ``created``), for every route compute takes: Pillow and the JPEG/PNG fast paths,
palette/alpha/grey conversions, a corrupt file, .npy images and stacks, 16-bit and float data,
forced modes; with one and two workers. The sidecar is pinned through the sha256 the manifest
records. The fixture and the expected files come from ``tests/golden/make_fixture.py``.

Since sidecars store each contributor's reference (``thumb``, ``thumb_range``, ``colour``: what
check verifies near-duplicates against), their sha256, and so the manifest's ``sidecar.path``
and ``sidecar.sha256``, are no longer 0.2.0's; every other byte of the manifests is.

One change from 0.2.0, deliberate: float data's var/std (and the float ``state``) are now the
exact values of the per-image partials rounded once (0.2.0's Chan merge was off in the last
digits: 15532730.894805245 for the correctly rounded 15532730.89480525 of the float fixture,
which tests/test_reduce.py checks against Fractions)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

import normstat

HERE = Path(__file__).resolve().parent / "golden"
_spec = importlib.util.spec_from_file_location("make_fixture", HERE / "make_fixture.py")
assert _spec is not None and _spec.loader is not None
fixture = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixture)


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize(("name", "folder", "options"), fixture.CASES)
def test_manifest_is_byte_identical_to_0_2_0(
    tmp_path: Path, name: str, folder: str, options: dict, workers: int
) -> None:
    out = tmp_path / f"{name}.json"
    normstat.compute(str(fixture.DATA / folder), workers=workers, **options).save(str(out))
    expected = (fixture.EXPECTED / f"{name}.json").read_text(encoding="utf-8")
    assert fixture.normalized(out, fixture.DATA) == expected
