"""normstat merge, and the exact fold it rests on: manifests of disjoint parts merge into the
byte-identical manifest and sidecar of one pass over their union, for integer, 16-bit and float
data, stacks included, parts interleaved; overlaps and incompatible parts are refused."""

from __future__ import annotations

import json
import random
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from helpers import invoke
from PIL import Image

import normstat
from normstat.modes import get_mode
from normstat.reduce import DatasetMoments, float_partial
from normstat.verbs.merge.order import row_key


def _comparable(path: Path) -> tuple[dict, bytes]:
    """A saved manifest without what legitimately differs (creation time, sidecar file name),
    and its sidecar's bytes."""
    data = json.loads(path.read_text())
    sidecar = (path.parent / data["sidecar"]["path"]).read_bytes()
    data.pop("created")
    data["sidecar"].pop("path")
    return data, sidecar


def _rgb_split(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(1)
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b, a / "sub"):
        d.mkdir(exist_ok=True)
    for i in range(40):
        folder = [a, b, a / "sub"][i % 3]
        px = rng.integers(0, 256, (5 + i % 4, 7, 3), dtype=np.uint8)
        Image.fromarray(px).save(folder / f"img{i:02d}.png")
    Image.fromarray(rng.integers(0, 256, (6, 6), dtype=np.uint8)).save(b / "grey.png")
    np.save(b / "stack.npy", rng.integers(0, 256, (4, 6, 6, 3), dtype=np.uint8))
    (b / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    return a, b


def _same_as_one_pass(tmp_path: Path, parts: list[list[str]], union: list[str], **kw) -> Path:
    paths = []
    for k, srcs in enumerate(parts):
        out = tmp_path / f"part{k}.json"
        normstat.compute(srcs, workers=1, **kw).save(str(out))
        paths.append(out)
    one = tmp_path / "one.json"
    normstat.compute(union, workers=1, **kw).save(str(one))
    merged = tmp_path / "merged.json"
    result = invoke("merge", *paths, "-o", merged)
    assert result.exit_code == 0, result.stderr
    assert _comparable(merged) == _comparable(one)
    return merged


def test_two_folders_merge_into_the_one_pass_manifest(tmp_path: Path) -> None:
    a, b = _rgb_split(tmp_path)
    merged = _same_as_one_pass(tmp_path, [[str(a)], [str(b)]], [str(a), str(b)])
    data = json.loads(merged.read_text())
    assert data["images"] == 40 + 1 + 4
    assert [s["path"] for s in data["skipped"]] == [str(b / "broken.png")]


def test_interleaved_parts_of_one_folder_merge_in_file_order(tmp_path: Path) -> None:
    """Parts that alternate file by file (odd and even names, as @lists): the merge interleaves
    their rows back into the folder's order."""
    rng = np.random.default_rng(2)
    folder = tmp_path / "data"
    folder.mkdir()
    names = [f"{i:03d}.png" for i in range(30)]
    for n in names:
        Image.fromarray(rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)).save(folder / n)
    lists = []
    for k in range(3):
        lst = tmp_path / f"list{k}.txt"
        lst.write_text("".join(f"data/{n}\n" for n in names[k::3]))
        lists.append([f"@{lst}"])
    _same_as_one_pass(tmp_path, lists, [str(folder)])


def test_16_bit_and_float_parts_merge_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    for sub in ("p", "q"):
        (tmp_path / sub).mkdir()
        for i in range(6):
            deep = rng.integers(0, 65536, (5, 4), dtype=np.uint16)
            Image.fromarray(deep).save(tmp_path / sub / f"d{i}.png")
    _same_as_one_pass(
        tmp_path, [[str(tmp_path / "p")], [str(tmp_path / "q")]], [str(tmp_path / s) for s in "pq"]
    )
    for sub in ("f", "g"):
        (tmp_path / sub).mkdir()
        for i in range(5):  # far from zero, tiny spread: order-sensitive for a float fold
            x = 1e4 + rng.normal(0, 1e-3, (4, 6, 1)).astype(np.float32) * (i + 1)
            np.save(tmp_path / sub / f"x{i}.npy", x)
    (tmp_path / "floats").mkdir()
    _same_as_one_pass(
        tmp_path / "floats",
        [[str(tmp_path / "f")], [str(tmp_path / "g")]],
        [str(tmp_path / "f"), str(tmp_path / "g")],
        npy_layout="hwc",
    )


def test_the_float_fold_is_exact_and_order_free() -> None:
    """Per-image float partials folded in any order give the same state, equal to the exact
    rational mean and variance of those partials' pixels within the partials' own rounding."""
    rng = np.random.default_rng(4)
    images = [1e8 + rng.normal(0, 1e-3, size=(17,)) * (k + 1) for k in range(40)]
    images += [rng.normal(0, 1e-30, size=(5,)), np.full(3, -2.5)]
    mode = get_mode("F")
    states = []
    for seed in range(3):
        order = list(range(len(images)))
        random.Random(seed).shuffle(order)
        acc = DatasetMoments(mode)
        for k in order:
            acc.add((float_partial(images[k]),))
        states.append(json.dumps(acc.to_state()))
    assert states[0] == states[1] == states[2]
    x = np.concatenate(images)
    exact = [Fraction(float(v)) for v in x]
    mean = sum(exact) / len(exact)
    var = sum((v - mean) ** 2 for v in exact) / len(exact)
    acc = DatasetMoments(mode)
    for img in images:
        acc.add((float_partial(img),))
    assert acc.moments[0].mean == pytest.approx(float(mean), rel=1e-15)
    assert acc.moments[0].var == pytest.approx(float(var), rel=1e-9)


def test_merge_refuses_overlapping_parts(tmp_path: Path) -> None:
    a, b = _rgb_split(tmp_path)
    normstat.compute([str(a)], workers=1).save(str(tmp_path / "A.json"))
    normstat.compute([str(a), str(b)], workers=1).save(str(tmp_path / "AB.json"))
    result = invoke("merge", tmp_path / "A.json", tmp_path / "AB.json", "-o", tmp_path / "x.json")
    assert result.exit_code == 2
    assert "overlaps" in result.stderr and str(a / "img00.png") in result.stderr
    assert not (tmp_path / "x.json").exists()
    normstat.compute([str(b)], workers=1).save(str(tmp_path / "B.json"))
    result = invoke("merge", tmp_path / "B.json", tmp_path / "B.json", "-o", tmp_path / "x.json")
    assert result.exit_code == 2 and "overlaps" in result.stderr


def test_merge_refuses_parts_computed_differently(tmp_path: Path) -> None:
    a, b = _rgb_split(tmp_path)
    normstat.compute([str(a)], workers=1).save(str(tmp_path / "A.json"))
    normstat.compute([str(b)], workers=1, mode="L").save(str(tmp_path / "B.json"))
    normstat.compute([str(b)], workers=1, max_pixels=10_000).save(str(tmp_path / "C.json"))
    result = invoke("merge", tmp_path / "A.json", tmp_path / "B.json", "-o", tmp_path / "x.json")
    assert result.exit_code == 2 and "mode is 'L' here, 'RGB' there" in result.stderr
    result = invoke("merge", tmp_path / "A.json", tmp_path / "C.json", "-o", tmp_path / "x.json")
    assert result.exit_code == 2 and "options.max_pixels" in result.stderr
    result = invoke("merge", tmp_path / "A.json", "-o", tmp_path / "x.json")
    assert result.exit_code == 2


def test_check_works_against_a_merged_manifest(tmp_path: Path) -> None:
    a, b = _rgb_split(tmp_path)
    normstat.compute([str(a)], workers=1).save(str(tmp_path / "A.json"))
    normstat.compute([str(b)], workers=1).save(str(tmp_path / "B.json"))
    merged = invoke("merge", tmp_path / "A.json", tmp_path / "B.json", "-o", tmp_path / "M.json")
    assert merged.exit_code == 0, merged.stderr
    test = tmp_path / "test"
    test.mkdir()
    (test / "copy.png").write_bytes((b / "img01.png").read_bytes())
    result = invoke("check", test, "--stats", tmp_path / "M.json")
    assert result.exit_code == 1, result.stderr


def test_compute_lists_rows_in_the_order_merge_assumes(tmp_path: Path) -> None:
    """The key merge interleaves by never decreases along one pass's rows (stacks after files,
    roots within a name, containers' images together)."""
    a, b = _rgb_split(tmp_path)
    fp = normstat.compute([str(b), str(a)], workers=1).fingerprints
    assert fp is not None
    keys = [row_key(fp.roots[int(fp.root[i])], fp.paths[i]) for i in range(len(fp))]
    assert keys == sorted(keys)
    assert keys[-1][0] == 1  # the stack's images come last
