"""Hostile inputs on the input side (issue 10, classes 10, 11 and 16): non-regular files never
hang and are never dropped silently, memory stays bounded before decoding, and every skip
reason is one deterministic line. Each test builds its own hostile files; those that hung on
0.2.0 run under an alarm."""

from __future__ import annotations

import io
import os
import resource
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from helpers import PEAK_KIB, time_limit
from PIL import Image

import normstat
from normstat.errors import InputError
from normstat.modes import get_mode
from normstat.options import ReadOptions
from normstat.readers.npy import READER as NPY
from normstat.readers.pillow import READER as PILLOW
from normstat.sources.local import LocalSource, discover, expand_sources

GIB = 1 << 30


def png(path: Path, size: tuple[int, int] = (8, 6)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(len(path.name)).integers(0, 256, (size[1], size[0], 3))
    Image.fromarray(pixels.astype(np.uint8)).save(path)
    return path


def skipped_of(stats: normstat.Stats) -> dict[str, str]:
    return {Path(s["path"]).name: s["reason"] for s in stats.skipped}


@pytest.fixture
def hostile_folder(tmp_path: Path) -> Iterator[Path]:
    """One good image among a FIFO, a socket, a dangling link, a link loop, a link to a
    device and a hidden FIFO (hidden entries stay ignored)."""
    root = tmp_path / "data"
    png(root / "good.png")
    os.mkfifo(root / "pipe.png")
    os.mkfifo(root / ".hidden-pipe")
    (root / "dangling.png").symlink_to("missing.png")
    (root / "loop.png").symlink_to("loop.png")
    (root / "null.png").symlink_to("/dev/null")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "sock.png"))
    try:
        yield root
    finally:
        sock.close()


EXPECTED = {
    "pipe.png": "unreadable: a FIFO, not a regular file",
    "sock.png": "unreadable: a socket, not a regular file",
    "dangling.png": "unreadable: dangling symbolic link (target missing)",
    "loop.png": "unreadable: symbolic link loop",
    "null.png": "unreadable: a character device, not a regular file",
}


# ---------------------------------------------------------------- 10: non-regular files


def test_non_regular_entries_in_folders_are_listed_as_skipped(hostile_folder: Path) -> None:
    with time_limit(60):
        stats = normstat.compute(hostile_folder, workers=1)
    assert stats.images == 1
    assert skipped_of(stats) == EXPECTED


def test_non_regular_entries_skipped_by_apply_and_check(
    hostile_folder: Path, tmp_path: Path
) -> None:
    with time_limit(60):
        stats = normstat.compute(hostile_folder, workers=1)
        result = normstat.apply(hostile_folder, stats, tmp_path / "out", workers=1)
        report = normstat.check(hostile_folder, stats, workers=1)
    assert result.written == 1
    assert {Path(s.path).name: s.reason for s in result.skipped} == EXPECTED
    assert {Path(s["path"]).name: s["reason"] for s in report.skipped} == EXPECTED


def test_fifo_given_directly_does_not_block(tmp_path: Path) -> None:
    good = png(tmp_path / "good.png")
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with time_limit(30):
        stats = normstat.compute([str(good), str(fifo)], workers=1)
        with pytest.raises(InputError):
            normstat.compute(str(fifo), workers=1)  # nothing else: no image could be read
    assert skipped_of(stats) == {"pipe.png": EXPECTED["pipe.png"]}
    with time_limit(10), pytest.raises(OSError, match="a FIFO"):
        LocalSource((str(fifo),)).open(discover([str(fifo)])[0])


def test_dangling_link_given_directly_is_skipped_with_reason(tmp_path: Path) -> None:
    good = png(tmp_path / "good.png")
    (tmp_path / "dangling.png").symlink_to("gone.png")
    stats = normstat.compute([str(good), str(tmp_path / "dangling.png")], workers=1)
    assert skipped_of(stats) == {"dangling.png": EXPECTED["dangling.png"]}


def test_fifo_as_path_list_does_not_block(tmp_path: Path) -> None:
    fifo = tmp_path / "list.txt"
    os.mkfifo(fifo)
    with time_limit(10), pytest.raises(InputError, match="a FIFO, not a regular file") as info:
        expand_sources(f"@{fifo}")
    assert info.value.path == str(fifo)


def test_path_list_not_utf8_or_with_nul_is_one_input_error(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.txt"
    bad.write_bytes(b"a.png\ncaf\xe9.png\n")
    with pytest.raises(InputError, match=r"not UTF-8 text \(line 2\)") as info:
        expand_sources(f"@{bad}")
    assert info.value.path == str(bad)
    nul = tmp_path / "nul.txt"
    nul.write_bytes(b"a.png\n\nb\x00.png\n")
    with pytest.raises(InputError, match="line 3 holds a NUL") as info:
        expand_sources(f"@{nul}")
    assert info.value.path == str(nul)


def test_fifo_open_in_a_worker_process_does_not_hang(tmp_path: Path) -> None:
    """Two workers, so the FIFO is opened in another process; a subprocess with a timeout, as a
    hang there would outlive an alarm in this one."""
    png(tmp_path / "d" / "a.png")
    png(tmp_path / "d" / "b.png")
    os.mkfifo(tmp_path / "d" / "c.png")
    code = textwrap.dedent(f"""
        import normstat
        s = normstat.compute({str(tmp_path / "d")!r}, workers=2)
        print(s.images, [x["reason"] for x in s.skipped])
    """)
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "2 ['unreadable: a FIFO, not a regular file']"


# ---------------------------------------------------------------- 11: bounded memory


def _peak_rss_of(code: str) -> tuple[str, int]:
    """(stdout, peak RSS in bytes) of ``code`` run in a fresh interpreter."""
    wrapped = PEAK_KIB + code + "\nprint(peak_kib())"
    run = subprocess.run(
        [sys.executable, "-c", wrapped], capture_output=True, text=True, timeout=120, check=False
    )
    assert run.returncode == 0, run.stderr
    *out, peak = run.stdout.strip().splitlines()
    return "\n".join(out), int(peak) * 1024


def test_sparse_gib_file_with_jpeg_magic_is_refused_before_reading(tmp_path: Path) -> None:
    """0.2.0 read it whole (2.1 GB RSS, over two minutes) before rejecting it."""
    root = tmp_path / "d"
    png(root / "good.png")
    big = root / "big.jpg"
    big.write_bytes(b"\xff\xd8\xff\xe0")
    os.truncate(big, GIB)  # sparse: a few KiB on disk
    out, peak = _peak_rss_of(
        f"import normstat; s = normstat.compute({str(root)!r}, workers=1); print(s.skipped)"
    )
    assert "no image header in the first 16.0 MiB" in out
    assert peak < 400 << 20


def test_png_with_a_gib_chunk_before_its_pixels_is_refused(tmp_path: Path) -> None:
    """A small declared image in a huge file: refused by size, not read into memory."""
    buf = io.BytesIO()
    Image.new("L", (4, 4)).save(buf, "PNG")
    data = buf.getvalue()
    ihdr_end = 8 + 25
    chunk = (GIB).to_bytes(4, "big") + b"prIv"
    path = tmp_path / "huge-chunk.png"
    path.write_bytes(data[:ihdr_end] + chunk)
    os.truncate(path, ihdr_end + 8 + GIB + 4)
    with path.open("ab") as fh:
        fh.write(data[ihdr_end:])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with path.open("rb") as fh:
        probe, pixels = PILLOW.load(fh, str(path), get_mode("L"), ReadOptions())
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < (200 << 20) // 1024
    assert probe == pixels
    assert "no image header in the first 16.0 MiB" in probe.reason


def test_file_far_larger_than_its_declared_image_is_refused(tmp_path: Path) -> None:
    path = png(tmp_path / "padded.png", (8, 8))
    os.truncate(path, 200 << 20)  # a valid 8×8 PNG followed by 200 MiB of zeros
    with path.open("rb") as fh:
        probe, _ = PILLOW.load(fh, str(path), get_mode("RGB"), ReadOptions())
    assert "far larger than its 8×8 RGB image could need" in probe.reason


def test_npy_size_must_match_its_header(tmp_path: Path) -> None:
    good = tmp_path / "good.npy"
    np.save(good, np.zeros((4, 5, 6, 3), np.uint8))
    data = good.read_bytes()
    cases = {
        "short.npy": data[:-1],
        "huge-shape.npy": data.replace(b"(4, 5, 6, 3)", b"(4000000000000, 5, 6, 3)", 1)[:200],
        "padded.npy": data,
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
    os.truncate(tmp_path / "padded.npy", len(data) + (100 << 20))
    reasons = {}
    for name in cases:
        with open(tmp_path / name, "rb") as fh:
            reasons[name] = NPY.probe(fh, name, ReadOptions()).reason
        with io.BytesIO((tmp_path / name).read_bytes()) as fh:  # a file object without fileno
            assert NPY.probe(fh, name, ReadOptions()).reason == reasons[name]
    short = f"file holds {len(data) - 1} bytes, its header declares {len(data)}"
    assert short in reasons["short.npy"]
    assert "its header declares 360000000000128" in reasons["huge-shape.npy"]
    assert "far larger than its array" in reasons["padded.npy"]


# ---------------------------------------------------------------- 16: deterministic reasons


def _npy(header: str, body: bytes = b"\0" * 64) -> bytes:
    text = header.encode("latin1")
    text += b" " * (-(10 + len(text) + 1) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text + body


HOSTILE_NPY = {
    "call.npy": _npy("{'descr': __import__('os'), 'fortran_order': False, 'shape': (4, 4), }"),
    "negative.npy": _npy("{'descr': '|u1', 'fortran_order': False, 'shape': (-4, 4), }"),
    "nested.npy": _npy("{'descr': '|u1', 'fortran_order': False, 'shape': " + "(" * 400),
    "control.npy": _npy("{'descr': '|u1\x1b[2J\n', 'fortran_order': False, 'shape': (4, 4), }"),
    "digits.npy": _npy("{'descr': '|u1', 'fortran_order': False, 'shape': (4, " + "9" * 5000),
    "object.npy": _npy("{'descr': '|O', 'fortran_order': False, 'shape': (2, 2), }"),
    "version9.npy": b"\x93NUMPY\x09\x00" + _npy("{}")[8:],
}


def test_npy_skip_reasons_are_deterministic_single_lines(tmp_path: Path) -> None:
    """0.2.0 quoted ``<ast.Call object at 0x7f…>`` (a different manifest each run), whole
    hostile headers and raw control characters, and accepted a negative shape."""
    reasons = {}
    for name, content in HOSTILE_NPY.items():
        with io.BytesIO(content) as fh:
            got = NPY.probe(fh, name, ReadOptions())
        assert not hasattr(got, "height"), name  # never an image
        reasons[name] = got.reason
    for name, why in reasons.items():
        assert "0x" not in why and len(why) < 120, (name, why)
        assert why.isprintable(), (name, why)
    assert reasons["call.npy"] == "unreadable .npy file: header is not a Python literal"
    assert reasons["negative.npy"] == "unreadable .npy file: header shape is not a tuple of sizes"
    assert "never unpickled" in reasons["object.npy"]


def test_npy_format_version_3_is_read(tmp_path: Path) -> None:
    """NumPy 2 has no public reader for 3.0 headers; 0.2.0 skipped every such file."""
    buf = io.BytesIO()
    arr = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    np.lib.format.write_array(buf, arr, version=(3, 0))
    (tmp_path / "v3.npy").write_bytes(buf.getvalue())
    stats = normstat.compute(tmp_path, workers=1)
    assert (stats.images, stats.skipped) == (1, [])


def test_compute_manifest_skips_equal_between_runs(tmp_path: Path) -> None:
    for name, content in HOSTILE_NPY.items():
        (tmp_path / name).write_bytes(content)
    png(tmp_path / "good.png")
    code = f"import normstat; print(normstat.compute({str(tmp_path)!r}, workers=1).skipped)"
    first, _ = _peak_rss_of(code)
    second, _ = _peak_rss_of(code)
    assert first == second
    assert "0x" not in first
