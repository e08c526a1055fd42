"""compute --covariance: the exact channel covariance, correlation and PCA, checked against
Python-integer (Fraction) references and np.cov on the concatenated true pixels, through every
route (PNG files, uint8/uint16/float .npy stacks), any --workers, merge, partials, validation,
and show --format pca."""

from __future__ import annotations

import ast
import copy
import json
import math
import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from helpers import invoke
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import normstat
from normstat.cli.console import covariance_lines
from normstat.cli.snippets import FORMATS, snippet
from normstat.errors import DeviceError, ManifestError
from normstat.manifest.validate import validate
from normstat.reduce.covariance import cross_products, pca


def exact_cov(pixels: list[np.ndarray]) -> list[list[Fraction]]:
    """Population covariance with Python integers (integer pixels) or exact rationals."""
    x = np.concatenate([p.reshape(-1, p.shape[-1]) for p in pixels])
    n, c = x.shape
    cols = [
        [Fraction(int(v)) if x.dtype.kind == "u" else Fraction(float(v)) for v in x[:, i]]
        for i in range(c)
    ]
    sums = [sum(col) for col in cols]
    return [
        [
            sum(a * b for a, b in zip(cols[i], cols[j], strict=True)) / n
            - sums[i] * sums[j] / n / n
            for j in range(c)
        ]
        for i in range(c)
    ]


def _images(folder: Path, rng: np.random.Generator, count: int = 12) -> list[np.ndarray]:
    """RGB photos whose G follows R closely (correlation near 1) and B is anticorrelated."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(count):
        r = rng.integers(0, 256, (7 + i % 5, 9 + i % 3), dtype=np.int64)
        g = np.clip(r + rng.integers(-3, 4, r.shape), 0, 255)
        b = 255 - np.clip(r + rng.integers(-40, 41, r.shape), 0, 255)
        px = np.stack([r, g, b], axis=-1).astype(np.uint8)
        Image.fromarray(px).save(folder / f"img{i:02d}.png")
        out.append(px)
    return out


def _comparable(path: Path) -> dict:
    data = json.loads(path.read_text())
    data.pop("created")
    data["sidecar"].pop("path")
    return data


def test_cross_products_are_exact_at_the_extremes() -> None:
    full8 = np.full((300, 300, 3), 255, dtype=np.uint8)
    assert cross_products(full8, True) == (255 * 255 * 90000,) * 3
    full16 = np.full((300, 300, 3), 65535, dtype=np.uint16)  # 65535² needs all 32 bits
    assert cross_products(full16, True) == (65535 * 65535 * 90000,) * 3
    rng = np.random.default_rng(0)
    deep = rng.integers(0, 65536, (40, 50, 4), dtype=np.uint16)
    flat = deep.reshape(-1, 4).astype(object)
    want = tuple(int((flat[:, i] * flat[:, j]).sum()) for i in range(4) for j in range(i + 1, 4))
    assert cross_products(deep, True) == want


def test_rgb_covariance_is_exact_and_its_diagonal_is_the_variance(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    pixels = _images(tmp_path / "d", rng)
    stats = normstat.compute(tmp_path / "d", workers=1, covariance=True)
    d = stats.data
    cov = exact_cov(pixels)
    assert d["raw"]["covariance"] == [[float(v) for v in row] for row in cov]
    for i in range(3):
        assert d["raw"]["covariance"][i][i] == d["raw"]["var"][i]  # exactly, not approximately
    ref = np.cov(np.concatenate([p.reshape(-1, 3) for p in pixels]).astype(np.float64).T, bias=True)
    np.testing.assert_allclose(d["raw"]["covariance"], ref, rtol=1e-12)
    corr = ref / np.sqrt(np.outer(np.diag(ref), np.diag(ref)))
    np.testing.assert_allclose(np.array(d["correlation"], dtype=float), corr, rtol=1e-12)
    assert d["correlation"][0][1] > 0.99 and d["correlation"][0][2] < -0.8
    assert d["options"]["covariance"] is True
    assert d["state"]["covariance"]["pairs"] == [[0, 1], [0, 2], [1, 2]]


def test_pca_is_the_eigen_decomposition_of_the_unit_covariance(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    pixels = _images(tmp_path / "d", rng)
    d = normstat.compute(tmp_path / "d", workers=1, covariance=True).data
    unit = np.cov(np.concatenate([p.reshape(-1, 3) for p in pixels]).T / 255.0, bias=True)
    values, vectors = np.linalg.eigh(unit)
    values, vectors = values[::-1], vectors[:, ::-1]
    got_values, got_vectors = np.array(d["pca"]["eigenvalues"]), np.array(d["pca"]["eigenvectors"])
    np.testing.assert_allclose(got_values, values, rtol=1e-9, atol=1e-15)
    assert list(got_values) == sorted(got_values, reverse=True)
    for k in range(3):  # same vector up to sign, and the sign rule: largest component positive
        v = got_vectors[:, k]
        assert np.allclose(np.abs(v @ vectors[:, k]), 1.0, atol=1e-9)
        assert v[np.argmax(np.abs(v))] > 0
        np.testing.assert_allclose(unit @ v, got_values[k] * v, atol=1e-12)
    assert math.isclose(sum(got_values), float(np.trace(unit)), rel_tol=1e-12)


def test_constant_and_identical_channels(tmp_path: Path) -> None:
    """A constant channel has no correlation (null in JSON, never NaN); identical channels
    correlate exactly 1; the PCA of a grey dataset has one non-zero eigenvalue."""
    rng = np.random.default_rng(3)
    (tmp_path / "c").mkdir()
    (tmp_path / "g").mkdir()
    for i in range(5):
        px = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        px[..., 2] = 77
        px[..., 1] = px[..., 0]
        Image.fromarray(px).save(tmp_path / "c" / f"{i}.png")
        grey = rng.integers(0, 256, (6, 8), dtype=np.uint8)
        Image.fromarray(np.stack([grey] * 3, axis=-1)).save(tmp_path / "g" / f"{i}.png")
    normstat.compute(tmp_path / "c", workers=1, covariance=True).save(str(tmp_path / "c.json"))
    text = (tmp_path / "c.json").read_text()
    assert "NaN" not in text
    d = json.loads(text)
    assert d["correlation"][0][1] == 1.0
    assert d["correlation"][0][2] is None and d["correlation"][2][2] is None
    assert d["raw"]["covariance"][2] == [0.0, 0.0, 0.0]
    g = normstat.compute(tmp_path / "g", workers=1, covariance=True).data
    assert g["correlation"] == [[1.0] * 3] * 3
    values = g["pca"]["eigenvalues"]
    assert math.isclose(values[0], 3 * g["raw"]["var"][0] / 255**2, rel_tol=1e-12)
    assert abs(values[1]) < 1e-15 and abs(values[2]) < 1e-15
    np.testing.assert_allclose(np.array(g["pca"]["eigenvectors"])[:, 0], [3**-0.5] * 3)


def test_16_bit_and_float_stacks(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    deep = rng.integers(0, 65536, (6, 20, 30, 3), dtype=np.uint16)
    deep[..., 1] = 65535 - deep[..., 0] // 2  # anticorrelated, near the top of the range
    np.save(tmp_path / "deep.npy", deep)
    d = normstat.compute(tmp_path / "deep.npy", workers=1, covariance=True).data
    assert d["mode"] == "RGB;16"
    assert d["raw"]["covariance"] == [[float(v) for v in row] for row in exact_cov(list(deep))]
    # float data far from zero with a tiny spread: a naive Σxy/n - x̄ȳ would lose every digit
    base = 1e4 + rng.normal(0, 1e-2, (5, 16, 12, 1))
    x = np.concatenate([base, base * 0.5 + rng.normal(0, 1e-3, base.shape), -base], axis=-1)
    np.save(tmp_path / "f.npy", x.astype(np.float32))
    f = normstat.compute(tmp_path / "f.npy", workers=1, covariance=True).data
    assert f["mode"] == "RGB;F"
    true = x.astype(np.float32).astype(np.float64)
    ref = exact_cov(list(true))
    np.testing.assert_allclose(f["raw"]["covariance"], np.array(ref, dtype=float), rtol=1e-9)
    for i in range(3):
        assert f["raw"]["covariance"][i][i] == f["raw"]["var"][i]
    np.testing.assert_allclose(
        f["raw"]["covariance"], np.cov(true.reshape(-1, 3).T, bias=True), rtol=1e-6
    )


def test_any_workers_give_the_same_manifest_and_merge_adds_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    _images(tmp_path / "a", rng)
    _images(tmp_path / "b", rng)
    np.save(tmp_path / "b" / "stack.npy", rng.integers(0, 256, (4, 6, 6, 3), dtype=np.uint8))
    both = [str(tmp_path / "a"), str(tmp_path / "b")]
    for workers, name in ((1, "w1.json"), (2, "w2.json")):
        normstat.compute(both, workers=workers, covariance=True).save(str(tmp_path / name))
    assert _comparable(tmp_path / "w1.json") == _comparable(tmp_path / "w2.json")
    for part in "ab":
        normstat.compute(tmp_path / part, workers=1, covariance=True).save(
            str(tmp_path / f"{part}.json")
        )
    result = invoke("merge", tmp_path / "a.json", tmp_path / "b.json", "-o", tmp_path / "m.json")
    assert result.exit_code == 0, result.stderr
    assert _comparable(tmp_path / "m.json") == _comparable(tmp_path / "w1.json")
    normstat.compute(tmp_path / "b", workers=1).save(str(tmp_path / "plain.json"))
    result = invoke(
        "merge", tmp_path / "a.json", tmp_path / "plain.json", "-o", tmp_path / "x.json"
    )
    assert result.exit_code == 2 and "options.covariance" in result.stderr


def test_partials_keep_the_cross_products(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    _images(tmp_path / "d", rng)
    parts = tmp_path / "parts"
    normstat.compute(tmp_path / "d", workers=1, partials_dir=parts).save(str(tmp_path / "p.json"))
    first = normstat.api.Partials(str(parts))
    normstat.compute(tmp_path / "d", workers=1, covariance=True, partials_dir=first).save(
        str(tmp_path / "c1.json")
    )
    assert first.kept == 0  # a partial made without the products is not reused
    again = normstat.api.Partials(str(parts))
    normstat.compute(tmp_path / "d", workers=1, covariance=True, partials_dir=again).save(
        str(tmp_path / "c2.json")
    )
    assert again.kept > 0 and again.made == 0
    assert _comparable(tmp_path / "c1.json") == _comparable(tmp_path / "c2.json")


def test_default_compute_has_no_covariance(tmp_path: Path) -> None:
    _images(tmp_path / "d", np.random.default_rng(7), 3)
    d = normstat.compute(tmp_path / "d", workers=1).data
    assert "covariance" not in d["options"] and "covariance" not in d["state"]
    assert "covariance" not in d["raw"] and "pca" not in d and "correlation" not in d


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: d["state"]["covariance"]["sum_prod"].__setitem__(0, 10**30), "out of range"),
        (lambda d: d["raw"]["covariance"][0].__setitem__(1, 0.5), "raw.covariance"),
        (lambda d: d["raw"]["covariance"][1].__setitem__(1, 0.5), "raw.covariance"),
        (lambda d: d["correlation"][0].__setitem__(1, None), "null exactly"),
        (lambda d: d["correlation"][0].__setitem__(1, 0.1), "'correlation'"),
        (lambda d: d["pca"]["eigenvalues"].reverse(), "descending"),
        (lambda d: d["pca"]["eigenvectors"][0].__setitem__(0, 2.0), "orthonormal"),
        (lambda d: d["pca"].__setitem__("scale", "raw"), "pca.scale"),
        (lambda d: d.pop("pca"), "without 'pca'"),
        (lambda d: d["state"].pop("covariance"), "without 'state.covariance'"),
        (lambda d: d["state"]["covariance"].__setitem__("pairs", [[0, 1]]), "upper triangle"),
        (lambda d: d["options"].__setitem__("covariance", "yes"), "options.covariance"),
    ],
)
def test_tampered_covariance_keys_are_refused(tmp_path: Path, mutate, reason: str) -> None:
    _images(tmp_path / "d", np.random.default_rng(8), 4)
    normstat.compute(tmp_path / "d", workers=1, covariance=True).save(str(tmp_path / "s.json"))
    data = json.loads((tmp_path / "s.json").read_text())
    validate(copy.deepcopy(data), "m.json")
    bad = copy.deepcopy(data)
    mutate(bad)
    with pytest.raises(ManifestError, match=re.escape(reason)):
        validate(bad, "m.json")


def test_show_pca_prints_the_literals_and_refuses_without_them(tmp_path: Path) -> None:
    _images(tmp_path / "d", np.random.default_rng(9), 4)
    assert (
        invoke("compute", tmp_path / "d", "-o", tmp_path / "s.json", "--covariance").exit_code == 0
    )
    d = json.loads((tmp_path / "s.json").read_text())
    result = invoke("show", tmp_path / "s.json", "--format", "pca")
    assert result.exit_code == 0, result.stderr
    eigval = re.search(r"eigval = torch\.tensor\((\[.*?\])\)", result.stdout)
    eigvec = re.search(r"eigvec = torch\.tensor\((\[.*?\])\)", result.stdout, re.S)
    assert eigval and eigvec
    assert ast.literal_eval(eigval.group(1)) == d["pca"]["eigenvalues"]
    assert ast.literal_eval(eigvec.group(1)) == d["pca"]["eigenvectors"]
    text = invoke("show", tmp_path / "s.json")
    assert "PCA eigenvalues ([0, 1] units)" in text.stdout and "R-G " in text.stdout
    assert invoke("compute", tmp_path / "d", "-o", tmp_path / "p.json").exit_code == 0
    plain = invoke("show", tmp_path / "p.json", "--format", "pca")
    assert plain.exit_code == 2
    assert (
        plain.stderr.strip()
        == f"Error: {tmp_path / 'p.json'}: manifest has no PCA: compute it with --covariance"
    )


def test_covariance_on_the_gpu_is_refused(tmp_path: Path) -> None:
    _images(tmp_path / "d", np.random.default_rng(10), 2)
    result = invoke(
        "compute", tmp_path / "d", "-o", tmp_path / "s.json", "--covariance", "--device", "gpu"
    )
    assert result.exit_code == 2
    assert (
        result.stderr.strip()
        == "Error: --device gpu: the covariance is reduced on the CPU only (--covariance)"
    )
    assert not (tmp_path / "s.json").exists()
    with pytest.raises(DeviceError, match=r"covariance is reduced on the CPU only"):
        normstat.compute(tmp_path / "d", covariance=True, device="gpu")


def test_pca_sign_rule_is_deterministic() -> None:
    cov = np.array([[2.0, -1.0], [-1.0, 2.0]])
    values, vectors = pca(cov)
    assert values == [3.0, 1.0]
    for k in range(2):
        v = np.array(vectors)[:, k]
        assert v[np.argmax(np.abs(v))] > 0


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)


@pytest.fixture(scope="module")
def cov_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cov")
    _images(folder / "d", np.random.default_rng(11), 4)
    normstat.compute(folder / "d", workers=1, covariance=True).save(str(folder / "s.json"))
    return folder / "s.json"


def _leaves(value, path=()):  # type: ignore[no-untyped-def]
    yield path
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _leaves(v, (*path, i))


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_fuzzed_covariance_keys_load_or_are_refused(
    data: st.DataObject, cov_manifest: Path
) -> None:
    """Any value anywhere under the covariance keys: a ManifestError, or a manifest whose
    snippets, table and partial all work."""
    doc = json.loads(cov_manifest.read_text())
    roots = [("state", "covariance"), ("raw", "covariance"), ("correlation",), ("pca",)]
    root = data.draw(st.sampled_from(roots))
    sub = doc
    for k in root:
        sub = sub[k]
    where = root + data.draw(st.sampled_from(list(_leaves(sub))))
    parent = doc
    for k in where[:-1]:
        parent = parent[k]
    parent[where[-1]] = data.draw(JSON)
    try:
        validate(doc, "m.json")
    except ManifestError:
        return
    stats = normstat.Stats(doc)
    for fmt in FORMATS:
        snippet(stats, fmt)
    covariance_lines(stats)


def test_covariance_with_masks_is_refused_in_one_line(tmp_path: Path) -> None:
    """Masks leave pixels out per channel; the cross products would still count them."""
    _images(tmp_path, np.random.default_rng(5), count=2)
    for masks in ({"nodata": 0}, {"alpha": "mask"}):
        with pytest.raises(ValueError, match="--covariance cannot be combined with masks"):
            normstat.compute(tmp_path, covariance=True, workers=1, **masks)  # type: ignore[arg-type]
    result = invoke("compute", tmp_path, "--covariance", "--nodata", "0", "-o", tmp_path / "s.json")
    assert result.exit_code == 2 and not (tmp_path / "s.json").exists()
    assert "--covariance cannot be combined with masks" in result.stderr
