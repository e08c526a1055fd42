"""--range LO,HI: float data histogrammed over [LO, HI]. Bins are checked value by value
against floor((x - LO)·B/(HI - LO)) computed with Fractions, on edge values (LO, HI, their
neighbours, exact and inexact bin edges and their neighbours, -0.0, subnormals); percentiles
against NumPy's nearest rank (``inverted_cdf``) on the true arrays; workers, merge and tampering
like the other statistics."""

from __future__ import annotations

import hashlib
import io
import json
import math
import zipfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from helpers import invoke, sidecar_of
from PIL import Image

import normstat
from normstat.errors import DeviceError, InputError, ManifestError
from normstat.reduce.ranges import FloatRange, range_histogram, range_percentiles

B = 65536
RANGES = [(0.0, 1.0), (-1.0, 1.0), (0.1, 0.7), (-0.5, 0.5), (-1e-300, 3e-300), (1e8, 1e8 + 3)]


def _ref_bin(x: float, lo: float, hi: float) -> int | str:
    """The exact bin of x: 'below', 'above', or floor((x - LO)·B/(HI - LO)), HI in the last."""
    if x < lo:
        return "below"
    if x > hi:
        return "above"
    k = math.floor((Fraction(x) - Fraction(lo)) * B / (Fraction(hi) - Fraction(lo)))
    return min(k, B - 1)


def _adversarial(lo: float, hi: float, rng: np.random.Generator) -> np.ndarray:
    width = (Fraction(hi) - Fraction(lo)) / B
    values = [lo, hi, -0.0, 0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1e-310, -1e-310]
    for v in (lo, hi):
        values += [math.nextafter(v, -math.inf), math.nextafter(v, math.inf)]
    for k in [*rng.integers(0, B + 1, 60).tolist(), 1, B // 2, B - 1]:
        edge = float(Fraction(lo) + k * width)  # nearest float64 to the exact edge
        values += [edge, math.nextafter(edge, -math.inf), math.nextafter(edge, math.inf)]
    values += (lo + (hi - lo) * rng.uniform(-0.1, 1.1, 100)).tolist()
    return np.array(values, dtype=np.float64)


@pytest.mark.parametrize(("lo", "hi"), RANGES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_bins_are_the_exact_formula(lo: float, hi: float, dtype: type) -> None:
    rng = np.random.default_rng(int(abs(lo) * 1000) % 97)
    values = _adversarial(lo, hi, rng).astype(dtype)
    spec = FloatRange(lo, hi)
    expected = np.zeros(B + 2, dtype=np.int64)
    for x in values.tolist():
        ref = _ref_bin(float(x), lo, hi)
        where = 0 if ref == "below" else B + 1 if ref == "above" else int(ref) + 1
        expected[where] += 1
        alone = range_histogram(np.array([x], dtype=dtype), spec)
        assert alone[where] == 1 and alone.sum() == 1, (x, ref, np.flatnonzero(alone))
    assert np.array_equal(range_histogram(values, spec), expected)


def test_edge_values_exactly() -> None:
    spec = FloatRange(-1.0, 1.0)

    def where(x: float) -> int:
        return int(np.flatnonzero(range_histogram(np.array([x]), spec))[0])

    assert where(-1.0) == 1 and where(1.0) == B  # LO in bin 0, HI in the last bin
    assert where(math.nextafter(-1.0, -2)) == 0 and where(math.nextafter(1.0, 2)) == B + 1
    assert where(-0.0) == where(0.0) == B // 2 + 1  # 0 is the edge of bin B/2
    assert where(-5e-324) == B // 2 and where(5e-324) == B // 2 + 1
    low = FloatRange(0.0, 1.0)
    assert int(np.flatnonzero(range_histogram(np.array([-0.0, 5e-324]), low))[0]) == 1
    assert range_histogram(np.array([-0.0, 5e-324, -5e-324]), low)[[0, 1]].tolist() == [1, 2]


def _ref_hist(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    out = np.zeros(B + 2, dtype=np.int64)
    for x in values.tolist():
        ref = _ref_bin(float(x), lo, hi)
        out[0 if ref == "below" else B + 1 if ref == "above" else int(ref) + 1] += 1
    return out


def _assert_percentiles(stats: normstat.Stats, values: list[np.ndarray], lo: float, hi: float):  # type: ignore[no-untyped-def]
    """Each reported percentile is a bin edge whose bin holds NumPy's nearest rank, or the tail
    it lies in; the below/above counts and the sidecar histogram are the exact ones."""
    block = stats.data["range"]
    width = (Fraction(hi) - Fraction(lo)) / B
    assert block["lo"] == lo and block["hi"] == hi and block["bins"] == B
    for c, v in enumerate(values):
        assert block["below"][c] == int(np.count_nonzero(v < lo))
        assert block["above"][c] == int(np.count_nonzero(v > hi))
        assert stats.histogram is not None
        assert np.array_equal(stats.histogram[c], _ref_hist(v, lo, hi))
        for key, got in stats.data["raw"]["percentiles"].items():
            p = float(np.percentile(v, float(key), method="inverted_cdf"))
            if p < lo:
                assert got[c] == "below", (key, c)
            elif p > hi:
                assert got[c] == "above", (key, c)
            else:
                edge = Fraction(got[c])
                k = math.floor((edge - Fraction(lo)) / width)
                exact = Fraction(lo) + k * width
                assert exact <= edge < exact + Fraction(math.ulp(got[c])), (
                    key,
                    c,
                )  # e_k rounded up
                top = exact + width
                assert edge <= Fraction(p) and (Fraction(p) < top or (k == B - 1 and p == hi))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_percentiles_contain_numpy_nearest_rank(tmp_path: Path, dtype: type) -> None:
    rng = np.random.default_rng(3)
    a = (rng.standard_normal((6, 17, 19, 3)) * [1.0, 0.3, 2.0] + [0.0, 0.2, -0.5]).astype(dtype)
    a[0, 0, :4, 0] = [-1.0, 1.0, -0.0, 5e-324]  # the range's edges, -0.0 and a subnormal
    np.save(tmp_path / "s.npy", a)
    qs = "0,0.5,1,5,25,50,75,95,99,99.5,100"
    stats = normstat.compute(str(tmp_path), value_range="-1,1", percentiles=qs, workers=1)
    assert stats.data["schema"] == "normstat/stats@2" and "note" not in stats.data
    assert stats.data["options"]["range"] == [-1.0, 1.0] and stats.data["options"]["bins"] == B
    values = [a[..., c].ravel().astype(np.float64) for c in range(3)]
    _assert_percentiles(stats, values, -1.0, 1.0)
    assert "below" in stats.data["raw"]["percentiles"]["0.5"]  # the tails are reported as such
    path = tmp_path / "o" / "s.json"
    stats.save(str(path))
    loaded = normstat.Stats.load(str(path))
    assert loaded.data["raw"] == stats.data["raw"]
    assert np.array_equal(loaded.histogram, stats.histogram)  # type: ignore[arg-type]


def test_percentiles_of_histograms_are_nearest_rank_bins() -> None:
    """Straight from histograms (tails, single bins, empty bins, q = 0 and 100): the percentile
    is the lower edge of the bin holding NumPy's nearest-rank sample, or below / above."""
    rng = np.random.default_rng(21)
    qs = (0.0, 0.5, 1.0, 5.0, 33.333, 50.0, 95.0, 99.5, 100.0)
    for bins in (1, 2, 4, 16):
        spec = FloatRange(-1.5, 2.25, bins)
        edges = spec.edges()
        hists = [np.eye(bins + 2, dtype=np.int64)[k] for k in range(bins + 2)]
        hists += [
            rng.integers(0, 4, bins + 2) * (rng.random(bins + 2) < 0.5)
            + np.eye(bins + 2, dtype=np.int64)[k % (bins + 2)]
            for k in range(50)
        ]
        for hist in hists:
            samples = np.repeat(np.arange(bins + 2), hist)
            want = [int(np.percentile(samples, q, method="inverted_cdf")) for q in qs]
            got = range_percentiles(hist, spec, qs)
            assert got == [
                "below" if i == 0 else "above" if i == bins + 1 else float(edges[i - 1])
                for i in want
            ]


def test_nan_nodata_and_float_tiffs(tmp_path: Path) -> None:
    """The per-file route (float TIFFs) and masks: NaN pixels are nodata, not counted."""
    rng = np.random.default_rng(5)
    arrays = []
    for i in range(4):
        a = rng.uniform(-0.2, 1.2, (9 + i, 7)).astype(np.float32)
        a[: i + 1, :3] = np.nan
        Image.fromarray(a, "F").save(tmp_path / f"f{i}.tif")
        arrays.append(a)
    stats = normstat.compute(str(tmp_path), value_range=(0, 1), nodata="nan", workers=1)
    v = np.concatenate([a.ravel() for a in arrays]).astype(np.float64)
    v = v[~np.isnan(v)]
    assert stats.data["pixels_valid"] == [v.size]
    _assert_percentiles(stats, [v], 0.0, 1.0)
    stack = tmp_path / "stack"
    stack.mkdir()
    np.save(stack / "s.npy", np.stack([np.pad(a, ((0, 12 - a.shape[0]), (0, 0))) for a in arrays]))
    masked = normstat.compute(str(stack), value_range=(0, 1), nodata="nan", workers=1)
    w = np.stack([np.pad(a, ((0, 12 - a.shape[0]), (0, 0))) for a in arrays]).ravel()
    _assert_percentiles(masked, [w[~np.isnan(w)].astype(np.float64)], 0.0, 1.0)


def _saved(stats: normstat.Stats, path: Path) -> dict:  # type: ignore[type-arg]
    stats.save(str(path))
    data = json.loads(path.read_text())
    data.pop("created"), data.pop("sidecar")
    return data  # type: ignore[no-any-return]


def _float_folder(folder: Path) -> list[Path]:
    folder.mkdir()
    rng = np.random.default_rng(9)
    paths = []
    for i in range(5):
        p = folder / f"f{i}.tif"
        Image.fromarray(rng.standard_normal((20, 11 + i)).astype(np.float32), "F").save(p)
        paths.append(p)
    np.save(folder / "s.npy", rng.standard_normal((40, 33, 35)).astype(np.float32))
    return paths


def test_workers_and_merge_identical(tmp_path: Path) -> None:
    paths = _float_folder(tmp_path / "d")
    one = normstat.compute(str(tmp_path / "d"), value_range="-2,2.5", workers=1)
    two = normstat.compute(str(tmp_path / "d"), value_range="-2,2.5", workers=2)
    assert _saved(one, tmp_path / "one.json") == _saved(two, tmp_path / "two.json")
    assert np.array_equal(one.histogram, two.histogram)  # type: ignore[arg-type]
    parts = []
    for k, chosen in enumerate([[paths[0], paths[3]], [paths[1], paths[2], paths[4]]]):
        out = tmp_path / f"p{k}.json"
        normstat.compute([str(p) for p in chosen], value_range="-2,2.5").save(str(out))
        parts.append(out)
    whole = normstat.compute([str(p) for p in paths], value_range="-2,2.5", workers=1)
    merged = invoke("merge", *parts, "-o", tmp_path / "m.json")
    assert merged.exit_code == 0, merged.stderr
    m = normstat.Stats.load(str(tmp_path / "m.json"))
    for key in ("pixels_valid", "mean", "std", "raw", "state", "range"):
        assert m.data[key] == whole.data[key], key
    assert np.array_equal(m.histogram, whole.histogram)  # type: ignore[arg-type]


def test_merge_refuses_other_ranges(tmp_path: Path) -> None:
    paths = _float_folder(tmp_path / "d")
    for name, extra in (("a", {"value_range": "-2,2"}), ("b", {"value_range": "-2,3"}), ("c", {})):
        src = [str(paths[0])] if name == "a" else [str(paths[1])]
        normstat.compute(src, **extra).save(str(tmp_path / f"{name}.json"))  # type: ignore[arg-type]
    for other in ("b", "c"):
        result = invoke("merge", tmp_path / "a.json", tmp_path / f"{other}.json", "-o", "m.json")
        assert result.exit_code == 2 and "options.range" in result.stderr, result.stderr


def test_tampering_is_refused(tmp_path: Path) -> None:
    _float_folder(tmp_path / "d")
    path = tmp_path / "o" / "s.json"
    normstat.compute(str(tmp_path / "d"), value_range="-1,1").save(str(path))
    original = path.read_text()
    data = json.loads(original)
    tamper = [
        lambda d: d["range"].update(below=[d["range"]["below"][0] + 1]),
        lambda d: d["raw"]["percentiles"].update({"50": [d["raw"]["percentiles"]["50"][0] + 1e-9]}),
        lambda d: d["raw"]["percentiles"].update({"50": ["below"]}),
        lambda d: d["options"].update(bins=1024),
        lambda d: d["options"].update(range=[1, -1]),
        lambda d: d.update(schema="normstat/stats@1"),
    ]
    for change in tamper:
        copy = json.loads(original)
        change(copy)
        path.write_text(json.dumps(copy))
        with pytest.raises(ManifestError):
            normstat.Stats.load(str(path))

    # a sidecar histogram that disagrees with the manifest (its sha256 updated) is refused
    def add(h: np.ndarray) -> None:
        h[0, 1 + int(np.flatnonzero(h[0, 1:-1])[5])] += 1  # one pixel more than counted

    def untail(h: np.ndarray) -> None:
        h[0, 0] -= 1  # a pixel below LO moved into bin 0
        h[0, 1] += 1

    def past_min(h: np.ndarray) -> None:
        h[0, 0] = 0  # the tails emptied into the first bins: below and min disagree
        h[0, 1] += data["range"]["below"][0]

    side = sidecar_of(path)
    side_bytes = side.read_bytes()
    for change, why in ((add, "count"), (untail, "below"), (past_min, "agree")):
        path.write_text(original)
        side.write_bytes(side_bytes)
        _tamper_sidecar(path, change)
        with pytest.raises(ManifestError, match=why):
            normstat.Stats.load(str(path))
        normstat.Stats.load(str(path), with_fingerprints=False)  # show reads no histogram


def _tamper_sidecar(path: Path, change) -> None:  # type: ignore[no-untyped-def]
    side = sidecar_of(path)
    with zipfile.ZipFile(side) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    hist = np.load(io.BytesIO(members["histogram.npy"]))
    change(hist)
    buf = io.BytesIO()
    np.save(buf, hist)
    members["histogram.npy"] = buf.getvalue()
    with zipfile.ZipFile(side, "w") as zf:
        for name, blob in members.items():
            zf.writestr(name, blob)
    data = json.loads(path.read_text())
    data["sidecar"]["sha256"] = hashlib.sha256(side.read_bytes()).hexdigest()
    path.write_text(json.dumps(data))


def test_integer_data_are_refused(tmp_path: Path) -> None:
    Image.fromarray(np.full((4, 4, 3), 9, np.uint8)).save(tmp_path / "a.png")
    with pytest.raises(InputError, match="exact histograms"):
        normstat.compute(str(tmp_path), value_range=(0, 255))
    result = invoke("compute", tmp_path, "-o", tmp_path / "s.json", "--range", "0,255")
    assert result.exit_code == 2 and "--range is for float data" in result.stderr
    assert not (tmp_path / "s.json").exists()
    forced = invoke("compute", tmp_path, "-o", tmp_path / "s.json", "--range", "0,1", "--mode", "L")
    assert forced.exit_code == 2 and "exact histograms" in forced.stderr
    with pytest.raises(DeviceError, match="CPU"):
        normstat.compute(str(tmp_path), value_range=(0, 1), device="gpu")


@pytest.mark.parametrize(
    "bad", ["1,1", "2,1", "inf,1", "nan,1", "1", "a,b", "1,2,3", "-1e308,1e308"]
)
def test_bad_ranges_are_usage_errors(tmp_path: Path, bad: str) -> None:
    np.save(tmp_path / "f.npy", np.zeros((3, 3), np.float32))
    result = invoke("compute", tmp_path, "-o", tmp_path / "s.json", "--range", bad)
    assert result.exit_code == 2, result.stderr
    assert "--range" in result.stderr and "Traceback" not in result.stderr
    with pytest.raises(ValueError):
        normstat.compute(str(tmp_path), value_range=bad)


def test_show_and_partials(tmp_path: Path) -> None:
    _float_folder(tmp_path / "d")
    out = tmp_path / "s.json"
    args = ("compute", tmp_path / "d", "-o", out, "--range", "-1,1", "--workers", "1")
    first = invoke(*args, "--partials-dir", tmp_path / "parts")
    assert first.exit_code == 0, first.stderr
    shown = invoke("show", out)
    text = shown.stdout + shown.stderr
    assert shown.exit_code == 0 and "No percentiles" not in text and "Float percentiles" in text
    # a kept partial of another range is never used: its name differs
    other = invoke(*args[:4], "--range", "-1,2", "--partials-dir", tmp_path / "parts")
    assert other.exit_code == 0 and "0 shards kept" in other.stdout + other.stderr
    again = invoke(*args, "--partials-dir", tmp_path / "parts")
    assert again.exit_code == 0 and "0 shards kept" not in again.stdout + again.stderr
    data = json.loads(out.read_text())
    whole = normstat.compute(str(tmp_path / "d"), value_range="-1,1", workers=1)
    assert data["raw"] == whole.data["raw"] and data["range"] == whole.data["range"]
