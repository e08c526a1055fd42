"""Hostile manifests and sidecars (issue 10, classes 8, 10, 11, 12): each test takes a real
manifest, tampers with it, and requires one ManifestError, never another exception, a hang, a
memory spike or a path outside the recorded sources. The last tests fuzz the loader."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import PEAK_KIB, copy_manifest, sidecar_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from rich.console import Console

import normstat
from normstat import ManifestError, Stats
from normstat.cli.console import stats_table
from normstat.cli.snippets import FORMATS, snippet

Doc = dict[str, Any]


def _dataset(root: Path, mode: str) -> Path:
    root.mkdir(parents=True)
    rng = np.random.default_rng(7)
    shape = (6, 5, 3) if mode == "RGB" else (6, 5)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(root / f"{i}.png")
    stats = root.parent / "stats.json"
    normstat.compute(root, workers=1).save(str(stats))
    return stats


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _dataset(tmp_path_factory.mktemp("rgb") / "train", "RGB")


@pytest.fixture
def manifest(saved: Path, tmp_path: Path) -> Path:
    return copy_manifest(saved, tmp_path)


def _edit(path: Path, edit: Callable[[Doc], Any]) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    edit(data)
    path.write_text(json.dumps(data), encoding="utf-8")


def _refused(path: Path, *, with_fingerprints: bool = True) -> str:
    with pytest.raises(ManifestError) as info:
        Stats.load(str(path), with_fingerprints=with_fingerprints)
    assert info.value.path == str(path)
    assert "\n" not in info.value.reason
    return info.value.reason


# ---------------------------------------------------------------- 8. the document, completely


def _set(*keys: str, value: Any) -> Callable[[Doc], None]:
    def edit(d: Doc) -> None:
        for k in keys[:-1]:
            d = d[k]
        d[keys[-1]] = value

    return edit


def _pop(*keys: str) -> Callable[[Doc], None]:
    def edit(d: Doc) -> None:
        for k in keys[:-1]:
            d = d[k]
        d.pop(keys[-1])

    return edit


DOC_DEFECTS: dict[str, tuple[Callable[[Doc], Any], str]] = {  # edit, what the reason names
    "mode-L-with-3-channels": (_set("mode", value="L"), "channels"),
    "unknown-mode": (_set("mode", value="CMYK;32"), "unknown mode"),
    "mode-not-str": (_set("mode", value=["RGB"]), "mode"),
    "channels-renamed": (_set("channels", value=["R", "G", "X"]), "channels"),
    "dtype-wrong": (_set("dtype", value="uint16"), "dtype"),
    "max-value-wrong": (_set("max_value", value=1), "max_value"),
    "no-sources": (_pop("sources"), "sources"),
    "sources-str": (_set("sources", value="/data"), "sources"),
    "sources-empty": (_set("sources", value=[]), "sources"),
    "sources-int": (_set("sources", value=[3]), "sources"),
    "sources-nul": (_set("sources", value=["/da\0ta"]), "sources"),
    "no-options": (_pop("options"), "options"),
    "options-list": (_set("options", value=["npy_layout"]), "options"),
    "options-layout-int": (_set("options", "npy_layout", value=3), "npy_layout"),
    "images-str": (_set("images", value="4"), "images"),
    "images-huge": (_set("images", value=10**400), "images"),
    "images-bool": (_set("images", value=True), "images"),
    "pixels-missing": (_pop("pixels"), "pixels"),
    "skipped-ints": (_set("skipped", value=[1]), "skipped"),
    "skipped-path-int": (_set("skipped", value=[{"path": 1, "reason": "x"}]), "skipped"),
    "files-count": (_set("files", "count", value=5), "files"),
    "files-not-object": (_set("files", value=4), "files"),
    "no-state": (_pop("state"), "state"),
    "state-kind": (_set("state", "kind", value="float"), "state"),
    "state-sum-short": (lambda d: d["state"]["sum"].pop(), "state.sum"),
    "state-sum-str": (lambda d: d["state"]["sum"].__setitem__(0, "1"), "state.sum"),
    "state-sum-huge": (lambda d: d["state"]["sum_sq"].__setitem__(0, 10**4000), "state.sum_sq"),
    "state-count-zero": (_set("state", "count", value=0), "state.count"),
    "state-not-object": (_set("state", value=[1, 2]), "state"),
    "no-raw": (_pop("raw"), "raw"),
    "raw-no-var": (_pop("raw", "var"), "raw"),
    "raw-percentiles-partial": (_set("raw", "percentiles", value={"1": [0, 0, 0]}), "percent"),
    "std-1e-320": (lambda d: d["std"].__setitem__(0, 1e-320), "std"),
    "mean-1e308": (lambda d: d["mean"].__setitem__(1, 1e308), "mean"),
    "std-per-image-inf": (_set("std_per_image_mean", value=[float("inf")] * 3), "std_per_image"),
    "std-per-image-missing": (_pop("std_per_image_mean"), "std_per_image_mean"),
    "raw-mean-absurd": (lambda d: d["raw"]["mean"].__setitem__(0, 1e300), "raw.mean"),
    "min-above-max": (lambda d: d["raw"]["min"].__setitem__(0, 256), "raw.min"),
    "sidecar-backslash": (_set("sidecar", "path", value="..\\x.npz"), "sidecar"),
    "sidecar-nul": (_set("sidecar", "path", value="x\0.npz"), "sidecar"),
    "sidecar-dotdot": (_set("sidecar", "path", value=".."), "sidecar"),
    "sidecar-sha-int": (_set("sidecar", "sha256", value=7), "sha256"),
    "modes-count-str": (_set("modes", value={"RGB": "4"}), "modes"),
}


@pytest.mark.parametrize("defect", list(DOC_DEFECTS))
def test_tampered_document_is_one_manifest_error(defect: str, manifest: Path) -> None:
    """0.2.0 loaded most of these and failed later with KeyError/TypeError, or wrote NaN."""
    edit, mention = DOC_DEFECTS[defect]
    _edit(manifest, edit)
    assert mention in _refused(manifest)
    assert mention in _refused(manifest, with_fingerprints=False)


def test_mode_l_with_three_channels_is_refused_by_check(manifest: Path, tmp_path: Path) -> None:
    """The issue's example: check compared L pixels with RGB fingerprints and exited 0."""
    _edit(manifest, _set("mode", value="L"))
    test = tmp_path / "test"
    test.mkdir()
    Image.new("RGB", (5, 6)).save(test / "x.png")
    with pytest.raises(ManifestError, match="channels"):
        normstat.check(test, manifest, workers=1)


def test_constant_dataset_with_std_zero_still_loads(tmp_path: Path) -> None:
    """std 0 (every pixel equal) is legal; apply refuses to divide by it, unit scaling works."""
    src = tmp_path / "flat"
    src.mkdir()
    for i in range(2):
        Image.new("L", (4, 3), 77).save(src / f"{i}.png")
    normstat.compute(src, workers=1).save(str(tmp_path / "stats.json"))
    stats = Stats.load(str(tmp_path / "stats.json"))
    assert stats.std == [0.0]
    result = normstat.apply(src, str(tmp_path / "stats.json"), tmp_path / "out", scale="unit")
    assert result.written == 2
    with pytest.raises(ManifestError, match="std of channel L is 0"):
        normstat.apply(src, str(tmp_path / "stats.json"), tmp_path / "out2")


def test_huge_integer_literal(manifest: Path) -> None:
    """Past Python's int-string limit json raises ValueError (0.2.0: unexpected ValueError)."""
    text = manifest.read_text(encoding="utf-8")
    manifest.write_text(text.replace('"images": 4', '"images": ' + "9" * 5000), encoding="utf-8")
    assert "not JSON" in _refused(manifest)


def test_deeply_nested_json(manifest: Path) -> None:
    """0.2.0: RecursionError from json; 40 levels parse but would break show --format json."""
    text = manifest.read_text(encoding="utf-8")
    for depth in (100_000, 40):
        deep = "[" * depth + "]" * depth
        manifest.write_text(text.replace('"options": {', f'"deep": {deep}, "options": {{'))
        assert "nests" in _refused(manifest)


def test_non_utf8_manifest(manifest: Path) -> None:
    blob = manifest.read_bytes().replace(b'"tool": "normstat', b'"tool": "\xffnormstat')
    manifest.write_bytes(blob)
    assert "UTF-8" in _refused(manifest)


def _run_python(code: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout
    )


def test_fifo_as_manifest_fails_at_once(tmp_path: Path) -> None:
    """0.2.0 blocked in open() until a writer appeared; run in a child so a hang is a failure."""
    fifo = tmp_path / "stats.json"
    os.mkfifo(fifo)
    code = (
        "import normstat\n"
        "try:\n"
        f"    normstat.Stats.load({str(fifo)!r}, with_fingerprints=False)\n"
        "except normstat.ManifestError as exc:\n"
        "    print(exc.reason)\n"
    )
    try:
        done = _run_python(code, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("Stats.load blocked on a FIFO")
    assert done.returncode == 0, done.stderr
    assert "FIFO" in done.stdout


def test_oversized_manifest_is_refused_before_reading(tmp_path: Path) -> None:
    """A sparse 300 MiB file: refused from its size, not read into memory (0.2.0 read it)."""
    big = tmp_path / "stats.json"
    with open(big, "wb") as fh:
        fh.truncate(300 << 20)
    code = PEAK_KIB + (
        "import normstat\n"
        "before = peak_kib()\n"
        "try:\n"
        f"    normstat.Stats.load({str(big)!r})\n"
        "except normstat.ManifestError as exc:\n"
        "    print(exc.reason)\n"
        "print(peak_kib() - before)\n"
    )
    reason, grown_kib = _run_python(code).stdout.splitlines()
    assert "bytes" in reason
    assert int(grown_kib) < 50 << 10


# ---------------------------------------------------------------- 11, 12. the sidecar


def _arrays(manifest: Path) -> dict[str, np.ndarray]:
    with np.load(sidecar_of(manifest)) as npz:
        return {k: npz[k] for k in npz.files}


def _write_sidecar(
    manifest: Path, arrays: dict[str, np.ndarray], compression: int = zipfile.ZIP_STORED
) -> None:
    """Replace the sidecar's arrays and re-sign it, so only the arrays themselves are wrong."""
    side = sidecar_of(manifest)
    with zipfile.ZipFile(side, "w", compression) as zf:
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asanyarray(arr), allow_pickle=False)
            zf.writestr(f"{name}.npy", buf.getvalue())
    _resign(manifest)


def _resign(manifest: Path) -> None:
    digest = hashlib.sha256(sidecar_of(manifest).read_bytes()).hexdigest()
    _edit(manifest, _set("sidecar", "sha256", value=digest))


def _paths(*names: bytes) -> dict[str, np.ndarray]:
    blob = b"".join(names)
    offsets = np.cumsum([0, *map(len, names)]).astype(np.int64)
    return {"path_bytes": np.frombuffer(blob, dtype=np.uint8), "path_offsets": offsets}


def _with(**changes: Any) -> Callable[[dict[str, np.ndarray]], None]:
    return lambda a: a.update(changes)


SIDECAR_DEFECTS: dict[str, tuple[Callable[[dict[str, np.ndarray]], Any], str]] = {
    "root-out-of-range": (lambda a: a["root"].__setitem__(1, 5), "root index"),
    "phash-2d": (lambda a: a.update(phash=a["phash"].reshape(-1, 1)), "phash"),
    "phash-pairs": (lambda a: a.update(phash=np.zeros((4, 2), np.uint64)), "phash"),
    "dhash-scalar": (_with(dhash=np.array(7, dtype=np.uint64)), "dhash"),
    "root-scalar": (_with(root=np.array(0, dtype=np.uint32)), "root"),
    "offsets-scalar": (_with(path_offsets=np.array(0, dtype=np.int64)), "path_offsets"),
    "dhash-float": (lambda a: a.update(dhash=a["dhash"].astype(np.float64)), "dhash"),
    "width-short": (lambda a: a.update(width=a["width"][:-1]), "width"),
    "pixel-hash-flat": (lambda a: a.update(pixel_hash=a["pixel_hash"].ravel()), "pixel_hash"),
    "offsets-falling": (lambda a: a["path_offsets"].__setitem__(2, 0), "path_offsets"),
    "offsets-past-end": (lambda a: a["path_offsets"].__setitem__(-1, 10**6), "path_bytes"),
    "histogram-bins": (lambda a: a.update(histogram=a["histogram"][:, :255]), "histogram"),
    "histogram-channels": (lambda a: a.update(histogram=a["histogram"][:1]), "histogram"),
    "histogram-negative": (lambda a: a["histogram"].__setitem__((0, 0), -1), "histogram"),
    "histogram-other-data": (lambda a: a["histogram"].__setitem__((0, 0), 9), "histogram"),
    "no-dhash": (lambda a: a.pop("dhash"), "dhash"),
    "path-dotdot": (lambda a: a.update(_paths(b"a.png", b"../../etc/passwd", b"c", b"d")), ".."),
    "path-inner-dotdot": (lambda a: a.update(_paths(b"a", b"b", b"x/../../y", b"d")), ".."),
    "path-absolute": (lambda a: a.update(_paths(b"a", b"/etc/shadow", b"c", b"d")), "outside"),
    "path-nul": (lambda a: a.update(_paths(b"a", b"b\0", b"c", b"d")), "NUL"),
    "path-empty": (lambda a: a.update(_paths(b"a", b"", b"c", b"dd")), "path_offsets"),
}


@pytest.mark.parametrize("defect", list(SIDECAR_DEFECTS))
def test_tampered_sidecar_arrays(defect: str, manifest: Path) -> None:
    """Re-signed sidecars with wrong arrays: 0.2.0 loaded most of them (IndexError in check,
    paths outside the sources opened) or failed with an unexpected error."""
    edit, mention = SIDECAR_DEFECTS[defect]
    arrays = _arrays(manifest)
    edit(arrays)
    _write_sidecar(manifest, arrays)
    assert mention in _refused(manifest)
    Stats.load(str(manifest), with_fingerprints=False)  # mean and std need none of it


def test_dotdot_path_never_reaches_check(manifest: Path, tmp_path: Path) -> None:
    arrays = _arrays(manifest)
    arrays.update(_paths(b"0.png", b"1.png", b"2.png", b"../../../../../../etc/passwd"))
    _write_sidecar(manifest, arrays)
    test = tmp_path / "test"
    test.mkdir()
    Image.new("RGB", (5, 6)).save(test / "x.png")
    with pytest.raises(ManifestError, match="outside its source"):
        normstat.check(test, manifest, workers=1)


def test_deflated_member_is_refused(manifest: Path) -> None:
    _write_sidecar(manifest, _arrays(manifest), zipfile.ZIP_DEFLATED)
    assert "compressed" in _refused(manifest)


def test_deflate_bomb_sidecar_memory_stays_flat(manifest: Path) -> None:
    """A histogram of zeros inflating to 512 MiB from under 1 MiB: 0.2.0 inflated it (RSS
    +512 MiB for show and check); now it is refused from the zip directory."""
    arrays = _arrays(manifest)
    arrays["histogram"] = np.zeros((4, 16 << 20), dtype=np.int64)
    _write_sidecar(manifest, arrays, zipfile.ZIP_DEFLATED)
    assert sidecar_of(manifest).stat().st_size < 2 << 20
    code = PEAK_KIB + (
        "import normstat\n"
        "before = peak_kib()\n"
        "for fingerprints in (False, True):\n"
        "    try:\n"
        f"        normstat.Stats.load({str(manifest)!r}, with_fingerprints=fingerprints)\n"
        "        print('loaded')\n"
        "    except normstat.ManifestError as exc:\n"
        "        print(exc.reason)\n"
        "print(peak_kib() - before)\n"
    )
    light, full, grown_kib = _run_python(code, timeout=120).stdout.splitlines()
    assert light == "loaded"
    assert "compressed" in full
    assert int(grown_kib) < 32 << 10


def test_member_claiming_more_than_the_file(manifest: Path) -> None:
    """A central directory entry whose size runs past the end of the file."""
    side = sidecar_of(manifest)
    blob = bytearray(side.read_bytes())
    cd = blob.rfind(b"PK\x01\x02")  # the last central directory entry
    blob[cd + 20 : cd + 28] = (10**9).to_bytes(4, "little") * 2  # compressed and plain size
    side.write_bytes(bytes(blob))
    _resign(manifest)
    assert "more bytes" in _refused(manifest)


def test_sidecar_fifo_and_folder(manifest: Path) -> None:
    side = sidecar_of(manifest)
    side.unlink()
    os.mkfifo(side)
    assert "FIFO" in _refused(manifest)
    side.unlink()
    side.mkdir()
    assert "folder" in _refused(manifest)


def test_sidecar_larger_than_its_images_need(manifest: Path) -> None:
    side = sidecar_of(manifest)
    with open(side, "r+b") as fh:
        fh.truncate(80 << 20)  # sparse: refused from its size, never hashed
    assert "allowed" in _refused(manifest)


# ---------------------------------------------------------------- fuzz: only ManifestError


def _key_paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            out += _key_paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _key_paths(v, (*prefix, i))
    return out


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.sampled_from([0, 1, -1, 2**63, 10**400, 255, 65535])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
    | st.sampled_from(["RGB", "L", "F", "exact-int", "float", "auto", "..", "a/b"]),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)


def _exercise(stats: Stats) -> None:
    """What the verbs read from a loaded manifest must not fail either."""
    Console(file=io.StringIO()).print(stats_table(stats))
    for fmt in FORMATS:
        if fmt == "pca" and "pca" not in stats.data:  # only manifests made with --covariance
            with pytest.raises(ManifestError, match="--covariance"):
                snippet(stats, fmt)
            continue
        snippet(stats, fmt)
    json.dumps(stats.data, indent=2)
    stats.dataset_mode()
    if stats.histogram is None and stats.dataset_mode().integer:
        with pytest.raises(ManifestError, match="histogram"):  # a member renamed by a flip
            stats.partial()
    else:
        stats.partial().summary()


@pytest.fixture(scope="module")
def fuzz_dir(saved: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fuzz")
    copy_manifest(saved, folder)
    return folder


FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(data=st.data())
def test_fuzz_document(data: st.DataObject, fuzz_dir: Path, saved: Path) -> None:
    doc = json.loads(saved.read_text(encoding="utf-8"))
    for _ in range(data.draw(st.integers(1, 3))):
        paths = _key_paths(doc)
        if not paths:
            break
        where = data.draw(st.sampled_from(paths))
        parent = doc
        for k in where[:-1]:
            parent = parent[k]
        if data.draw(st.booleans()):
            parent[where[-1]] = data.draw(JSON)
        elif isinstance(parent, dict):
            del parent[where[-1]]
        else:
            parent.pop(where[-1])
    target = fuzz_dir / "stats.json"
    target.write_text(json.dumps(doc), encoding="utf-8")
    try:
        stats = Stats.load(str(target))
    except ManifestError:
        return
    _exercise(stats)


@FUZZ
@given(blob=st.binary(max_size=300) | st.text(max_size=200).map(str.encode))
def test_fuzz_random_bytes(blob: bytes, fuzz_dir: Path) -> None:
    target = fuzz_dir / "random.json"
    target.write_bytes(blob)
    with pytest.raises(ManifestError):
        Stats.load(str(target))


@FUZZ
@given(
    flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), max_size=4),
    cut=st.none() | st.integers(0, 10**6),
)
def test_fuzz_sidecar_bytes(
    flips: list[tuple[int, int]], cut: int | None, fuzz_dir: Path, saved: Path
) -> None:
    """Flipped or truncated sidecars, re-signed so the parser (not the hash) meets them."""
    blob = bytearray(sidecar_of(saved).read_bytes())
    for at, bits in flips:
        blob[at % len(blob)] ^= bits
    if cut is not None:
        blob = blob[: cut % (len(blob) + 1)]
    manifest = fuzz_dir / "stats.json"
    manifest.write_bytes(saved.read_bytes())
    sidecar_of(manifest).write_bytes(bytes(blob))
    _resign(manifest)
    try:
        stats = Stats.load(str(manifest))
    except ManifestError:
        return
    assert stats.fingerprints is not None
    for i in range(len(stats.fingerprints)):
        assert not stats.fingerprints.path(i).startswith("/etc")
    _exercise(stats)
