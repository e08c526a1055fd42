"""--percentiles: the exact percentiles a manifest reports, nearest rank (NumPy's
``inverted_cdf``) on the true pixels, over valid pixels only with masks; a bad list is a usage
error; float data say they have none."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import invoke
from PIL import Image

import normstat


def _images(folder: Path) -> list[np.ndarray]:
    rng = np.random.default_rng(4)
    arrays = []
    for i in range(5):
        a = rng.integers(0, 256, (7 + i, 9, 3), dtype=np.uint8)
        a[: i + 1] = 0  # many zeros: nodata 0 moves every percentile
        arrays.append(a)
        Image.fromarray(a).save(folder / f"im{i}.png")
    return arrays


@pytest.mark.parametrize("nodata", [None, 0])
def test_chosen_percentiles_exact(tmp_path: Path, nodata: int | None) -> None:
    arrays = _images(tmp_path)
    qs = [0, 0.5, 2, 33.3, 98, 99.5, 100]
    stats = normstat.compute(
        str(tmp_path), percentiles="99.5,2,0.5,98,33.3,0,100,2", nodata=nodata, workers=1
    )
    assert stats.data["schema"] == "normstat/stats@2"
    assert stats.data["options"]["percentiles"] == qs
    pct = stats.data["raw"]["percentiles"]
    assert list(pct) == [f"{q:g}" for q in qs]
    for c in range(3):
        values = np.concatenate([a[..., c].ravel() for a in arrays])
        if nodata is not None:
            values = values[values != nodata]
        for q in qs:
            assert pct[f"{q:g}"][c] == int(np.percentile(values, q, method="inverted_cdf")), (c, q)
    # saved, loaded, validated; merge refuses other percentile lists
    stats.save(str(tmp_path / "o" / "a.json"))
    normstat.Stats.load(str(tmp_path / "o" / "a.json"))


@pytest.mark.parametrize("bad", ["101", "-1", "a", "", "nan", "1,,2"])
def test_bad_percentiles_are_usage_errors(tmp_path: Path, bad: str) -> None:
    _images(tmp_path)
    result = invoke("compute", tmp_path, "-o", tmp_path / "s.json", "--percentiles", bad)
    assert result.exit_code == 2
    assert "--percentiles" in result.stderr and "Traceback" not in result.stderr


def test_merge_refuses_other_percentiles(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    _images(tmp_path / "a")
    Image.fromarray(np.full((3, 3, 3), 7, np.uint8)).save(tmp_path / "b" / "x.png")
    normstat.compute(str(tmp_path / "a"), percentiles="1,2").save(str(tmp_path / "a.json"))
    normstat.compute(str(tmp_path / "b"), percentiles="1,3").save(str(tmp_path / "b.json"))
    result = invoke("merge", tmp_path / "a.json", tmp_path / "b.json", "-o", tmp_path / "m.json")
    assert result.exit_code == 2 and "options.percentiles" in result.stderr


def test_tampered_percentile_list_is_refused(tmp_path: Path) -> None:
    _images(tmp_path)
    path = tmp_path / "o" / "s.json"
    normstat.compute(str(tmp_path), percentiles="5,95").save(str(path))
    data = json.loads(path.read_text())
    data["options"]["percentiles"] = [95, 5]
    path.write_text(json.dumps(data))
    with pytest.raises(normstat.ManifestError, match="percentiles"):
        normstat.Stats.load(str(path))


def test_float_data_say_they_have_no_percentiles(tmp_path: Path) -> None:
    np.save(tmp_path / "f.npy", np.random.default_rng(0).standard_normal((5, 6)))
    stats = normstat.compute(str(tmp_path), percentiles="2,98", workers=1)
    assert "percentiles" not in stats.data["raw"]
    assert "no percentiles" in stats.data["note"]
    stats.save(str(tmp_path / "o" / "s.json"))
    shown = invoke("show", tmp_path / "o" / "s.json")
    assert shown.exit_code == 0 and "No percentiles: float data" in shown.stdout + shown.stderr
