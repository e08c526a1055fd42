"""Conformance suites for the four contracts (as fsspec's ``tests/abstract/`` does for file
systems): every implementation of a contract runs the same tests. A new source, reader, engine
or partial statistic is added to the parameter lists below and must pass them all.

- Source: sorted, de-duplicated items; ``open`` gives a readable, seekable binary file object;
  the source pickles (a worker reopens items itself); a missing item is an OSError; its shards
  cover the items once, in order, and stream their bytes; every item has a version stamp.
- Reader: gets a file object, never a path; bad bytes give ``Skipped``, never an exception;
  ``read`` yields ``probe.count`` images of the target's dtype and channels, and a slice of them
  on request; the registry imports reader modules lazily and names the extra a missing one needs.
- Engine: results in task order whatever finishes first; tasks consumed as work proceeds.
- Partial: ``from_state(to_state(x)) == x`` through JSON; merge is associative, has the empty
  partial as identity, and parts merged give the whole (exact references for integers).
"""

from __future__ import annotations

import builtins
import io
import itertools
import json
import math
import pickle
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import memory_copy, slow_square
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import normstat
from normstat.engine import PoolEngine, SerialEngine, make_engine
from normstat.modes import MODES, get_mode
from normstat.options import ReadOptions
from normstat.readers import Decoded, Probe, Skipped, reader_for, registry
from normstat.readers.npy import READER as NPY
from normstat.readers.pillow import READER as PILLOW
from normstat.reduce import DatasetMoments, FloatMoments, IntMoments
from normstat.reduce.exact import ExactSum
from normstat.sources import Item, LocalSource

RNG = np.random.default_rng(7)


# ---------------------------------------------------------------- sources


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tree")
    (root / "b").mkdir()
    (root / "a.png").write_bytes(_png(RNG.integers(0, 256, (5, 6, 3), dtype=np.uint8)))
    (root / "b" / "c.bin").write_bytes(b"\x00\x01" * 100)
    (root / "z.txt").write_text("hello")
    return root


KINDS = ["local", "memory", "fsspec", "containers"]


def _sources(tree: Path) -> list[Any]:
    """One of each implementation over the same files: fsspec's through its ``file://``
    protocol (no network), the container wrapper over plain files (every verb's source)."""
    from normstat.sources.containers import ContainerSource
    from normstat.sources.remote import FsspecSource

    return [
        LocalSource((str(tree),)),
        memory_copy(tree, "mem://tree"),
        FsspecSource((tree.as_uri(),), {}),
        ContainerSource(LocalSource((str(tree),))),
    ]


@pytest.mark.parametrize("kind", KINDS)
def test_source_items_are_sorted_unique_and_open_to_their_bytes(tree: Path, kind: str) -> None:
    source = _sources(tree)[KINDS.index(kind)]
    items = source.items()
    assert items == sorted(items) and len(set(items)) == len(items)
    assert [i.rel for i in items] == ["a.png", "b/c.bin", "z.txt"]
    for item in items:
        with source.open(item) as fh:
            data = fh.read()
            assert data == (tree / item.rel).read_bytes()
            fh.seek(1)
            assert fh.read(1) == data[1:2]
    assert isinstance(source, normstat.sources.Source)
    assert isinstance(source.name, str) and source.name
    assert isinstance(source.locations(), list)
    assert isinstance(source.manifest_root(items[0].root), str)


@pytest.mark.parametrize("kind", KINDS)
def test_source_pickles_and_reopens_in_another_process(tree: Path, kind: str) -> None:
    source = _sources(tree)[KINDS.index(kind)]
    again = pickle.loads(pickle.dumps(source))
    assert again == source and again.items() == source.items()
    with make_engine(2) as engine:
        sizes = list(engine.map(_size, [(source, item) for item in source.items()]))
    assert sizes == [(tree / i.rel).stat().st_size for i in source.items()]


@pytest.mark.parametrize("kind", KINDS)
def test_source_shards_cover_items_in_order_and_stream_their_bytes(tree: Path, kind: str) -> None:
    source = _sources(tree)[KINDS.index(kind)]
    items = source.items()
    shards = source.shards()
    streamed = [(item, f) for shard in shards for item, f in source.stream(shard)]
    assert [item for item, _ in streamed] == items
    for item, f in streamed:
        assert not isinstance(f, OSError)
        with f:
            assert f.read() == (tree / item.rel).read_bytes()
    versions = [source.version(item) for item in items]
    assert all(isinstance(v, str) and v for v in versions)
    assert source.shards() == shards  # the same plan each time


def _size(task: tuple[Any, Item]) -> int:
    source, item = task
    with source.open(item) as fh:
        return len(fh.read())


@pytest.mark.parametrize("kind", KINDS)
def test_source_missing_item_is_an_oserror(tree: Path, kind: str) -> None:
    source = _sources(tree)[KINDS.index(kind)]
    root = source.items()[0].root
    with pytest.raises(OSError):
        source.open(Item(root, "nothing/here.png"))


# ---------------------------------------------------------------- readers


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def _jpeg(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _png16_rgb(arr: np.ndarray) -> bytes:
    """A 16-bit colour PNG (Pillow cannot write one; its exact reader is pypng's)."""
    import png  # pypng

    buf = io.BytesIO()
    h, w, _ = arr.shape
    png.Writer(w, h, greyscale=False, bitdepth=16).write(buf, arr.reshape(h, w * 3).tolist())
    return buf.getvalue()


def _tiff(arr: np.ndarray, **kw: Any) -> bytes:
    import tifffile

    buf = io.BytesIO()
    tifffile.imwrite(buf, arr, **kw)
    return buf.getvalue()


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


# (reader, bytes of a good file, images it holds)
GOOD = [
    ("pillow", _png(RNG.integers(0, 256, (9, 11, 3), dtype=np.uint8)), 1),
    ("pillow", _jpeg(RNG.integers(0, 256, (16, 8, 3), dtype=np.uint8)), 1),
    ("pillow", _png(RNG.integers(0, 65536, (7, 5), dtype=np.uint16)), 1),
    ("pillow", _png16_rgb(RNG.integers(0, 65536, (6, 4, 3), dtype=np.uint16)), 1),
    ("npy", _npy(RNG.integers(0, 256, (6, 7), dtype=np.uint8)), 1),
    ("npy", _npy(RNG.integers(0, 256, (5, 6, 7, 3), dtype=np.uint8)), 5),
    ("npy", _npy(RNG.standard_normal((4, 3, 5)).astype(np.float32)), 4),  # last axis > 4: a stack
    ("npy", _npy(RNG.standard_normal((4, 3, 2))), 1),  # float64 H×W×C (gray + alpha)
    ("npy", _npy(np.asfortranarray(RNG.integers(0, 65536, (3, 8, 9), dtype=np.uint16))), 3),
    (
        "tiff",
        _tiff(
            RNG.integers(0, 65536, (13, 6, 7), dtype=np.uint16),
            photometric="minisblack",
            planarconfig="separate",
            compression="zlib",
        ),
        1,
    ),
    (
        "tiff",
        _tiff(
            RNG.standard_normal((6, 7, 5)).astype(np.float32),
            predictor=3,
            compression="zlib",
            photometric="minisblack",
        ),
        1,
    ),
    ("tiff", _tiff(RNG.integers(0, 256, (4, 6, 7), dtype=np.uint8), photometric="minisblack"), 4),
    ("tiff", _tiff(RNG.integers(0, 256, (6, 7, 3), dtype=np.uint8), photometric="rgb"), 1),
]
BAD = [
    b"",
    b"not an image at all",
    GOOD[0][1][:40],
    GOOD[1][1][:200],
    b"\x93NUMPY",
    GOOD[4][1][:150],
    b"\x89PNG\r\n\x1a\n" + b"\x00" * 30,
    b"II*\x00",
    GOOD[9][1][: len(GOOD[9][1]) // 2],
    b"MM\x00+" + b"\xff" * 40,
]
READERS = {"pillow": PILLOW, "npy": NPY, "tiff": registry._load(registry.ENTRIES[1])}


@pytest.fixture
def no_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a path while this runs fails the test."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"a reader opened a path: {args[:1]}")

    monkeypatch.setattr(builtins, "open", refuse)
    monkeypatch.setattr(io, "open", refuse)


@pytest.mark.parametrize(("kind", "data", "count"), GOOD)
def test_reader_is_chosen_by_content_and_reads_file_objects(
    kind: str, data: bytes, count: int, no_paths: None
) -> None:
    reader = reader_for(data[:16])
    assert reader is READERS[kind]
    opts = ReadOptions()
    probe = reader.probe(io.BytesIO(data), "x", opts)
    assert isinstance(probe, Probe) and probe.count == count
    target = get_mode(probe.canonical)
    images = list(reader.read(io.BytesIO(data), "x", target, opts))
    assert len(images) == count
    for dec in images:
        assert isinstance(dec, Decoded)
        assert dec.pixels.ndim == 3 and dec.pixels.shape[2] == len(target.channels)
        wide = not target.integer and dec.pixels.dtype == np.float64  # float64 arrays stay so
        assert dec.pixels.dtype == np.dtype(target.dtype) or wide
    if count > 1:  # a slice is the same images
        part = list(reader.read(io.BytesIO(data), "x", target, opts, 1, count))
        for a, b in zip(part, images[1:], strict=True):
            assert isinstance(a, Decoded) and isinstance(b, Decoded)
            assert np.array_equal(a.pixels, b.pixels)


@pytest.mark.parametrize(("kind", "data", "count"), GOOD)
def test_reader_gives_the_same_pixels_from_a_real_file(
    tmp_path: Path, kind: str, data: bytes, count: int
) -> None:
    """A local file (memory-mapped .npy) and a stream (range reads) read the same values."""
    path = tmp_path / "f"
    path.write_bytes(data)
    reader, opts = READERS[kind], ReadOptions()
    probe = reader.probe(io.BytesIO(data), "x", opts)
    assert isinstance(probe, Probe)
    target = get_mode(probe.canonical)
    with open(path, "rb") as fh:
        from_file = list(reader.read(fh, "x", target, opts))
    from_stream = list(reader.read(io.BytesIO(data), "x", target, opts))
    for a, b in zip(from_file, from_stream, strict=True):
        assert isinstance(a, Decoded) and isinstance(b, Decoded)
        assert np.array_equal(a.pixels, b.pixels)


@pytest.mark.parametrize("kind", sorted(READERS))
@pytest.mark.parametrize("data", BAD, ids=range(len(BAD)))
def test_reader_turns_bad_bytes_into_skips(kind: str, data: bytes, no_paths: None) -> None:
    reader = READERS[kind]
    opts = ReadOptions()
    probe = reader.probe(io.BytesIO(data), "bad.png", opts)
    assert probe is None or isinstance(probe, Skipped | Probe)
    for dec in reader.read(io.BytesIO(data), "bad.png", MODES["RGB"], opts):
        assert isinstance(dec, Skipped | Decoded)
        if isinstance(dec, Skipped):
            assert dec.path.startswith("bad.png") and dec.reason


def test_registry_imports_reader_modules_only_when_a_file_needs_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An entry whose module needs a missing package: nothing happens until a file with its
    magic appears; then each such file is skipped with the install command, and compute goes
    on with the others."""
    entry = registry.Entry("fake", "tests_fake_reader_module", (b"FAKEIMG",), "formats")
    monkeypatch.setattr(registry, "ENTRIES", [entry, *registry.ENTRIES])
    assert "tests_fake_reader_module" not in sys.modules
    assert reader_for(b"\x89PNG\r\n\x1a\n") is PILLOW
    assert entry.name not in registry._loaded
    (tmp_path / "a.fake").write_bytes(b"FAKEIMG and then some pixels")
    (tmp_path / "b.png").write_bytes(_png(RNG.integers(0, 256, (4, 4, 3), dtype=np.uint8)))
    stats = normstat.compute(tmp_path, workers=1)
    monkeypatch.delitem(registry._loaded, entry.name)
    assert stats.images == 1
    (skip,) = stats.skipped
    assert skip["path"] == str(tmp_path / "a.fake")
    assert "pip install 'normstat[formats]'" in skip["reason"]


# ---------------------------------------------------------------- engines


def _engines() -> list[Any]:
    return [SerialEngine(), PoolEngine(2)]


@pytest.mark.parametrize("index", [0, 1], ids=["serial", "pool"])
def test_engine_yields_results_in_task_order(index: int) -> None:
    with _engines()[index] as engine:
        assert engine.workers >= 1
        assert list(engine.map(slow_square, range(23))) == [i * i for i in range(23)]
        assert list(engine.map(slow_square, [])) == []


@pytest.mark.parametrize("index", [0, 1], ids=["serial", "pool"])
def test_engine_consumes_tasks_as_work_proceeds(index: int) -> None:
    taken = itertools.count()

    def tasks() -> Any:
        for i in range(10_000):
            next(taken)
            yield i

    with _engines()[index] as engine:
        results = engine.map(abs, tasks())
        assert next(results) == 0
        assert next(taken) < 1000  # a bounded window, not the whole list up front


@pytest.mark.parametrize("index", [0, 1], ids=["serial", "pool"])
def test_engine_passes_a_task_error_on(index: int) -> None:
    with _engines()[index] as engine, pytest.raises(ZeroDivisionError):
        list(engine.map(_invert, [1, 2, 0, 4]))


def _invert(x: int) -> float:
    return 1 / x


# ---------------------------------------------------------------- partial statistics

ints = st.lists(st.integers(0, 65535), min_size=1, max_size=40)
floats = st.lists(
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False), min_size=1, max_size=40
)


def _int_partial(values: list[int]) -> IntMoments:
    return IntMoments(len(values), sum(values), sum(v * v for v in values))


def _float_partial(values: list[float]) -> FloatMoments:
    from normstat.reduce import float_partial

    return float_partial(np.asarray(values, dtype=np.float64))


def _json(state: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(state))
    return out


@given(ints, ints, ints)
@settings(max_examples=60, deadline=None)
def test_int_moments_partial_contract(a: list[int], b: list[int], c: list[int]) -> None:
    pa, pb, pc = (_int_partial(v) for v in (a, b, c))
    assert IntMoments.from_state(_json(pa.to_state())) == pa
    assert pa.merge(IntMoments()) == pa == IntMoments().merge(pa)
    assert pa.merge(pb).merge(pc) == pa.merge(pb.merge(pc)) == _int_partial(a + b + c)
    whole = a + b + c
    mean = Fraction(sum(whole), len(whole))
    assert pa.merge(pb).merge(pc).mean == float(mean)


@given(floats, floats, floats)
@settings(max_examples=60, deadline=None)
def test_float_moments_partial_contract(a: list[float], b: list[float], c: list[float]) -> None:
    pa, pb, pc = (_float_partial(v) for v in (a, b, c))
    assert FloatMoments.from_state(_json(pa.to_state())) == pa
    assert pa.merge(FloatMoments()) == pa == FloatMoments().merge(pa)
    left, right = pa.merge(pb).merge(pc), pa.merge(pb.merge(pc))
    whole = [Fraction(v) for v in a + b + c]
    mean = sum(whole) / len(whole)
    var = sum((v - mean) ** 2 for v in whole) / len(whole)
    scale = max(1.0, max(abs(v) for v in a + b + c))
    for got in (left, right):
        assert got.count == len(whole)
        assert math.isclose(got.mean, float(mean), rel_tol=1e-12, abs_tol=1e-12 * scale)
        assert math.isclose(got.var, float(var), rel_tol=1e-9, abs_tol=1e-12 * scale * scale)
        assert (got.lo, got.hi) == (min(a + b + c), max(a + b + c))


@given(floats, floats)
@settings(max_examples=40, deadline=None)
def test_exact_sum_partial_contract(a: list[float], b: list[float]) -> None:
    sa, sb = ExactSum(), ExactSum()
    for v in a:
        sa.add(v)
    for v in b:
        sb.add(v)
    assert ExactSum.from_state(_json(sa.to_state())) == sa
    assert sa.merge(ExactSum()) == sa
    assert sa.merge(sb) == sb.merge(sa)
    assert sa.merge(sb).value == float(sum(Fraction(v) for v in a + b))


def _dataset_of(images: list[np.ndarray], mode_name: str) -> DatasetMoments:
    from helpers import reduce_image

    moments = DatasetMoments(MODES[mode_name])
    for px in images:
        record, hists = reduce_image(Decoded(px, mode_name), mode_name)
        moments.add(record.moments)
        moments.add_histogram(hists)
    return moments


@pytest.mark.parametrize("mode_name", ["L", "RGB;16", "RGB;F"])
def test_dataset_moments_partial_contract(mode_name: str) -> None:
    mode = MODES[mode_name]
    shape = (5, 4, len(mode.channels))
    if mode.integer:
        images = [
            RNG.integers(0, int(mode.max_value) + 1, shape).astype(mode.dtype) for _ in range(6)
        ]
    else:
        images = [(RNG.standard_normal(shape) + 1e4).astype(np.float32) for _ in range(6)]
    a, b = _dataset_of(images[:2], mode_name), _dataset_of(images[2:], mode_name)
    whole = _dataset_of(images, mode_name)
    back = DatasetMoments.from_state(
        _json(a.to_state()),
        mode=mode,
        images=a.images,
        hist=a.hist,
        lo=[m.lo for m in a.moments] if not mode.integer else None,
        hi=[m.hi for m in a.moments] if not mode.integer else None,
    )
    assert back.to_state() == a.to_state() and back.summary() == a.summary()
    merged = a.merge(DatasetMoments(mode)).merge(b)
    assert merged.images == whole.images == 6
    if mode.integer:  # exact: identical state and numbers
        assert merged.to_state() == whole.to_state()
        assert merged.summary() == whole.summary()
        assert merged.hist is not None and whole.hist is not None
        assert np.array_equal(merged.hist, whole.hist)
    else:
        for x, y in zip(merged.summary()["raw"]["var"], whole.summary()["raw"]["var"], strict=True):
            assert math.isclose(x, y, rel_tol=1e-9)


def test_manifest_state_reads_back_and_parts_merge_into_the_whole(tmp_path: Path) -> None:
    """``Stats.partial()``: the manifest's ``state`` (and the sidecar's histogram) read back;
    manifests of two disjoint parts merge into exactly the statistics of one pass over both."""
    for part, n in (("a", 3), ("b", 4)):
        (tmp_path / "all" / part).mkdir(parents=True)
        for i in range(n):
            arr = RNG.integers(0, 256, (6 + i, 5, 3), dtype=np.uint8)
            Image.fromarray(arr).save(tmp_path / "all" / part / f"{i}.png")
    saved = {}
    for name in ("a", "b"):
        normstat.compute(tmp_path / "all" / name, workers=1).save(str(tmp_path / f"{name}.json"))
        saved[name] = normstat.Stats.load(str(tmp_path / f"{name}.json"))
    whole = normstat.compute(tmp_path / "all", workers=1)
    a = saved["a"].partial()
    assert a.to_state() == saved["a"].data["state"]
    assert a.summary()["mean"] == saved["a"].mean
    merged = a.merge(saved["b"].partial())
    assert merged.to_state() == whole.data["state"]
    summary = merged.summary()
    assert summary["mean"] == whole.mean and summary["std"] == whole.std
    assert summary["raw"] == whole.data["raw"]


# ---------------------------------------------------------------- a source in memory, end to end


@pytest.fixture
def memory_splits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """train and test splits as files and as MemorySources of the same bytes; the test split
    holds an exact copy, a half-size copy of train images, and one image of a train stack."""
    rng = np.random.default_rng(3)
    train, test = tmp_path / "train", tmp_path / "test"
    train.mkdir()
    test.mkdir()
    photos = []
    for i in range(6):
        y, x = np.mgrid[0:64, 0:80]
        base = np.stack([x * (2 + i), y * 3, (x + y + 9 * i) % 255], axis=2)
        photo = np.clip(base + rng.normal(0, 20, (64, 80, 3)), 0, 255).astype(np.uint8)
        photos.append(photo)
        Image.fromarray(photo).save(train / f"p{i}.png")
    stack = rng.integers(0, 256, (3, 64, 80, 3), dtype=np.uint8)
    np.save(train / "stack.npy", stack)
    Image.fromarray(photos[1]).save(test / "copy.bmp")
    Image.fromarray(photos[4]).resize((40, 32), Image.Resampling.BILINEAR).save(test / "half.png")
    Image.fromarray(stack[2]).save(test / "from_stack.png")
    unrelated = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)
    Image.fromarray(unrelated).save(test / "unrelated.png")
    mem_train, mem_test = memory_copy(train, "mem://train"), memory_copy(test, "mem://test")
    monkeypatch.setitem(normstat.sources.SCHEMES, "mem", lambda roots: mem_train)
    return {"train": train, "test": test, "mem_train": mem_train, "mem_test": mem_test}


@pytest.mark.parametrize("workers", [1, 2])
def test_memory_source_runs_compute_apply_and_check(
    memory_splits: dict[str, Any], tmp_path: Path, workers: int
) -> None:
    from_files = normstat.compute(memory_splits["train"], workers=workers)
    stats = normstat.compute(memory_splits["mem_train"], workers=workers)
    assert stats.data["sources"] == ["mem://train"]
    for key in ("state", "raw", "mean", "std", "images", "modes", "files"):
        assert stats.data[key] == from_files.data[key], key
    assert stats.fingerprints is not None
    assert "stack.npy[2]" in stats.fingerprints.paths

    out_mem, out_files = tmp_path / f"mem-{workers}", tmp_path / f"files-{workers}"
    written = normstat.apply(memory_splits["mem_train"], stats, out_mem, workers=workers)
    normstat.apply(memory_splits["train"], from_files, out_files, workers=workers)
    assert written.written == 9 and written.skipped == []
    for name in ["p0.png.npy", "stack.npy[0].npy", "stack.npy[2].npy"]:
        assert np.array_equal(np.load(out_mem / name), np.load(out_files / name))

    stats.save(str(tmp_path / f"s{workers}.json"))
    report = normstat.check(
        memory_splits["mem_test"], str(tmp_path / f"s{workers}.json"), workers=workers
    )
    found = {(leak.test, leak.train, leak.kind) for leak in report.leaked}
    assert found == {
        ("mem://test/copy.bmp", "mem://train/p1.png", "exact"),
        ("mem://test/from_stack.png", "mem://train/stack.npy[2]", "exact"),
        ("mem://test/half.png", "mem://train/p4.png", "near"),
    }
    assert report.checked == 4 and not report.warnings
