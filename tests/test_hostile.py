"""Careless and hostile use of the verbs' outputs, runs and terminal: each test builds its hostile
input and fails on 0.2.0 (data lost or mixed, a gate passing on nothing, writes in a source
folder, unreadable permissions, escape sequences reaching the terminal)."""

from __future__ import annotations

import fcntl
import json
import os
import resource
import signal
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import describe, invoke, without_references
from PIL import Image
from typer.testing import CliRunner

import normstat
from normstat.cli.app import app, run
from normstat.errors import OutputError
from normstat.verbs.apply.journal import LOCK

RNG = np.random.default_rng(10)


def _images(folder: Path, n: int, size: int = 16, prefix: str = "img") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"{prefix}{i:02d}.png"
        Image.fromarray(RNG.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def _manifest(src: Path, path: Path) -> Path:
    """The statistics of ``src`` saved at ``path``."""
    normstat.compute(src, workers=1).save(str(path))
    return path


@pytest.fixture
def train(tmp_path: Path) -> tuple[Path, Path]:
    src = tmp_path / "train"
    _images(src, 4)
    stats = _manifest(src, tmp_path / "stats.json")
    return src, stats


def _npy(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.npy"))


# 1. Outputs never overwrite inputs or each other.


def test_compute_output_onto_an_image_of_the_split_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "train"
    image = _images(src, 3)[0]
    before = image.read_bytes()
    result = invoke("compute", src, "-o", image, "-w", "1", "-q")
    assert result.exit_code == 2, describe(result)
    assert result.stderr == f"Error: {image}: exists and is not a stats manifest; refusing to " \
        "replace it (remove it first)\n"  # fmt: skip
    assert image.read_bytes() == before


def test_check_json_onto_its_own_manifest_is_refused(train: tuple[Path, Path]) -> None:
    src, stats = train
    before = stats.read_bytes()
    result = invoke("check", src, "--stats", stats, "--json", stats, "-w", "1", "-q")
    assert result.exit_code == 2, describe(result)
    assert "is an input of this run" in result.stderr
    assert stats.read_bytes() == before
    report = stats.with_name("report.json")
    assert invoke("check", src, "--stats", stats, "--json", report, "-w", "1", "-q").exit_code == 1
    again = invoke("check", src, "--stats", stats, "--json", report, "-w", "1", "-q")
    assert again.exit_code == 1, describe(again)  # a previous report may be replaced
    result = invoke("compute", src, "-o", report, "-w", "1", "-q")  # but not by a manifest
    assert result.exit_code == 2 and "is not a stats manifest" in result.stderr


@pytest.mark.parametrize("name", ["newdir/", "existing"])
def test_compute_output_naming_a_folder_is_refused(tmp_path: Path, name: str) -> None:
    src = tmp_path / "train"
    _images(src, 2)
    (tmp_path / "existing").mkdir()
    result = invoke("compute", src, "-o", f"{tmp_path}/{name}", "-w", "1", "-q")
    assert result.exit_code == 2, describe(result)
    assert "is a folder; name the stats manifest file to write" in result.stderr
    assert not (tmp_path / "newdir").exists()


def test_fifo_as_output_is_refused_without_blocking(tmp_path: Path) -> None:
    src = tmp_path / "train"
    _images(src, 2)
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    cmd = [sys.executable, "-m", "normstat", "compute", str(src), "-o", str(fifo), "-q"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr == f"Error: {fifo}: is a FIFO; refusing to write the stats manifest there\n"


# 2. Concurrent runs.


def test_second_apply_into_a_folder_in_use_fails_at_once(
    train: tuple[Path, Path], tmp_path: Path
) -> None:
    src, stats = train
    out = tmp_path / "out"
    normstat.apply(src, stats, out, workers=1)
    in_flight = out / ".normstat-npy-abc123.tmp"  # another run's temp, being written
    in_flight.write_bytes(b"partial")
    fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # that run holds the folder (as a second process would)
        for scale in ("standard", "unit"):
            with pytest.raises(OutputError, match="another normstat apply is writing"):
                normstat.apply(src, stats, out, workers=1, scale=scale, overwrite=True)
        assert in_flight.read_bytes() == b"partial"
    finally:
        os.close(fd)
    normstat.apply(src, stats, out, workers=1)  # once it ends, a resume cleans up after it
    assert not in_flight.exists()


def test_concurrent_apply_processes_never_interleave(
    train: tuple[Path, Path], tmp_path: Path
) -> None:
    """Two real runs with different options started together: one fails at once, the output is
    entirely the other's."""
    src = tmp_path / "big"
    _images(src, 60, size=64)
    stats = _manifest(src, tmp_path / "big.json")
    out = tmp_path / "out"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "normstat",
                "apply",
                str(src),
                "--stats",
                str(stats),
                "-o",
                str(out),
                "--scale",
                scale,
                "-w",
                "1",
                "-q",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for scale in ("standard", "unit")
    ]
    codes = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in procs]
    for p in procs:
        for stream in (p.stdout, p.stderr):
            if stream:
                stream.close()
    winners = [i for i, (code, _) in enumerate(codes) if code == 0]
    assert len(winners) >= 1, codes
    for code, err in codes:
        assert code == 0 or (
            "another normstat apply" in err or "other statistics or options" in err
        )
    prov = json.loads((out / "normstat-apply.json").read_text())
    scale = prov["options"]["scale"]
    ref = tmp_path / "ref"
    normstat.apply(src, stats, ref, workers=1, scale=scale)
    assert _npy(out) == _npy(ref)
    for rel in _npy(ref):
        assert np.array_equal(np.load(out / rel), np.load(ref / rel)), rel


# 3. Resume notices changed sources.


def test_resume_remakes_arrays_of_changed_sources(tmp_path: Path) -> None:
    src = tmp_path / "train"
    paths = _images(src, 4)
    stats = _manifest(src, tmp_path / "stats.json")
    out = tmp_path / "out"
    assert normstat.apply(src, stats, out, workers=1).written == 4
    changed = paths[1]
    Image.fromarray(RNG.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(changed)
    st = changed.stat()
    os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # coarse-clock file systems
    result = normstat.apply(src, stats, out, workers=1)
    assert (result.written, result.kept) == (1, 3)
    fresh = tmp_path / "fresh"
    normstat.apply(src, stats, fresh, workers=1)
    for rel in _npy(fresh):
        assert np.array_equal(np.load(out / rel), np.load(fresh / rel)), rel


# 4. Writes stay where they belong.


def test_symlinked_subfolder_in_out_cannot_lead_into_the_source(tmp_path: Path) -> None:
    src = tmp_path / "train"
    _images(src / "a", 2)
    stats = _manifest(src, tmp_path / "stats.json")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a").symlink_to(src / "a")
    before = sorted(p.name for p in (src / "a").iterdir())
    with pytest.raises(OutputError, match=r"inside the source .*through"):
        normstat.apply(src, stats, out, workers=1, overwrite=True)
    assert sorted(p.name for p in (src / "a").iterdir()) == before


def test_file_and_list_sources_protect_their_folders(tmp_path: Path) -> None:
    src = tmp_path / "val"
    paths = _images(src, 2)
    stats = _manifest(src, tmp_path / "stats.json")
    listing = tmp_path / "list.txt"
    listing.write_text("val/img00.png\n")
    for given in ([str(paths[0])], [f"@{listing}"]):
        with pytest.raises(OutputError, match="inside the source"):
            normstat.apply(given, stats, src / "out", workers=1)
        with pytest.raises(OutputError, match="inside the source"):
            normstat.apply(given, stats, src, workers=1, overwrite=True)
    assert sorted(p.name for p in src.iterdir()) == ["img00.png", "img01.png"]


# 5. Files are created with the user's umask.


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_outputs_get_the_users_umask(tmp_path: Path, umask: int) -> None:
    src = tmp_path / "train"
    _images(src, 2)
    old = os.umask(umask)
    try:
        stats = normstat.compute(src, workers=1)
        stats.save(str(tmp_path / "stats.json"))
        normstat.apply(src, tmp_path / "stats.json", tmp_path / "out", workers=1)
        report = tmp_path / "report.json"
        invoke("check", src, "--stats", tmp_path / "stats.json", "--json", report, "-q")
    finally:
        os.umask(old)
    written = [p for p in tmp_path.rglob("*") if p.is_file() and src not in p.parents]
    assert len(written) >= 6  # manifest, sidecar, report, provenance, journal, arrays
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path


# 6. Long legal file names.


def test_long_names_are_written_and_too_long_outputs_named(tmp_path: Path) -> None:
    src = tmp_path / "train"
    src.mkdir()
    fits = "l" * 247 + ".png"  # 251 bytes: its .npy is 255
    arr = RNG.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(arr).save(src / fits)
    Image.fromarray(arr[::-1]).save(src / "short.png")
    stats = _manifest(src, tmp_path / "stats.json")
    out = tmp_path / "out"
    assert normstat.apply(src, stats, out, workers=1).written == 2
    assert (out / f"{fits}.npy").is_file()
    too_long = "m" * 250 + ".png"  # 254 bytes: its .npy would be 258
    Image.fromarray(arr).save(src / too_long)
    with pytest.raises(OutputError) as info:
        normstat.apply(src, stats, tmp_path / "out2", workers=1)
    assert info.value.path == too_long and "over the limit of 255" in info.value.reason
    assert not (tmp_path / "out2").exists()


# 7. check exits 2 when it checked nothing.


def test_check_that_checked_nothing_exits_2(train: tuple[Path, Path], tmp_path: Path) -> None:
    src, stats = train
    result = invoke("check", src, "--stats", stats, "--max-pixels", "1", "-w", "1")
    assert result.exit_code == 2, describe(result)
    assert "no image could be read (4 skipped; first:" in result.stderr
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    result = invoke("check", corrupt, "--stats", stats, "-w", "1")
    assert result.exit_code == 2, describe(result)
    assert "Checked 0" not in result.stdout


# 9. apply skips what compute skipped.

ODD_IMAGES = Path(__file__).resolve().parents[1].parent / "shared/corpora/odd-images"


@pytest.mark.skipif(not ODD_IMAGES.is_dir(), reason="shared/corpora/odd-images is not present")
def test_apply_on_the_odd_images_skips_exactly_what_compute_skipped(tmp_path: Path) -> None:
    """Pillow's test images: 0.2.0's compute succeeded and its apply wrote zero arrays."""
    stats = normstat.compute(ODD_IMAGES, workers=2)
    stats.save(str(tmp_path / "stats.json"))
    result = normstat.apply(ODD_IMAGES, tmp_path / "stats.json", tmp_path / "out", workers=2)
    assert [(s.path, s.reason) for s in result.skipped] == [
        (s["path"], s["reason"]) for s in stats.skipped
    ]
    assert result.written == stats.images == len(_npy(tmp_path / "out"))


# 12. Contributors named by the manifest.


def test_unreadable_contributors_reported_alike_whatever_the_reason(tmp_path: Path) -> None:
    """Whether a contributor is missing, unreadable or not an image, check says the same: its
    warnings must not tell what exists behind a name a manifest gives (a manifest without
    stored references, whose candidates check reads from their files)."""
    src = tmp_path / "train"
    base = RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    src.mkdir()
    Image.fromarray(base).save(src / "a.png")
    stats = _manifest(src, tmp_path / "stats.json")
    without_references(stats)
    test = tmp_path / "test"
    test.mkdir()
    near = np.clip(base.astype(np.int16) + 6, 0, 255).astype(np.uint8)
    Image.fromarray(near).save(test / "near.png")
    assert len(normstat.check(test, stats, workers=1).leaked) == 1
    warnings = []
    (src / "a.png").unlink()
    warnings.append(normstat.check(test, stats, workers=1).warnings)
    (src / "a.png").write_bytes(b"not an image")
    warnings.append(normstat.check(test, stats, workers=1).warnings)
    (src / "a.png").unlink()
    (src / "a.png").mkdir()
    warnings.append(normstat.check(test, stats, workers=1).warnings)
    assert warnings[0] == warnings[1] == warnings[2] and warnings[0], warnings


# 13. Terminal safety.


def test_escape_sequences_and_markup_in_names_never_reach_the_terminal(tmp_path: Path) -> None:
    src = tmp_path / "train"
    images = _images(src, 2)
    (src / "\x1b]0;pwned\x07\x1b[2J.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    (src / "[blink]fake.png").write_bytes(b"\xff\xd8\xff" + b"\0" * 40)
    stats = tmp_path / "stats.json"
    result = invoke("compute", src, "-o", stats, "-w", "1")
    assert result.exit_code == 0, describe(result)
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr
    assert "\\x1b]0;pwned\\x07\\x1b[2J.png" in result.stderr
    assert "[blink]fake.png" in result.stderr
    test = tmp_path / "test"
    test.mkdir()
    (test / "[red]leak\x1b[31m.png").write_bytes(images[0].read_bytes())
    wide = {"COLUMNS": "400"}  # the leak table unfolded
    result = CliRunner().invoke(app, ["check", str(test), "--stats", str(stats)], env=wide)
    assert result.exit_code == 1, describe(result)
    assert "\x1b" not in result.stdout
    assert "[red]leak\\x1b[31m.png" in result.stdout
    shown = invoke("show", stats)
    assert shown.exit_code == 0 and "\x1b" not in shown.stdout and "\\x1b" in shown.stdout


# 16. Options and errors as the README promises.


@pytest.mark.parametrize(
    "args",
    [
        ["compute"],
        ["compute", "x"],
        ["apply", "x", "--stats", "s.json", "-o", "o", "--scale", "bad"],
        ["nosuchverb"],
    ],
)
def test_usage_errors_are_one_error_line_exit_2(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(args) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), captured.err


def test_max_pixels_0_is_a_usage_error(
    train: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """0.2.0 took it and skipped every image as a "decompression bomb"."""
    src, _ = train
    assert run(["compute", str(src), "-o", str(tmp_path / "s.json"), "--max-pixels", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Error: Invalid value for '--max-pixels'") and err.count("\n") == 1
    assert not (tmp_path / "s.json").exists()


def test_disk_full_during_apply_names_the_array(train: tuple[Path, Path], tmp_path: Path) -> None:
    src = tmp_path / "big"
    _images(src, 2, size=128)  # 196 KiB per float32 array
    stats = _manifest(src, tmp_path / "big.json")
    out = tmp_path / "out"

    def small_disk() -> None:  # writes past 64 KiB fail with EFBIG, as on a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))

    cmd = [sys.executable, "-m", "normstat", "apply", str(src), "--stats", str(stats),
           "-o", str(out), "-w", "1", "-q"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, preexec_fn=small_disk)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"Error: {out / 'img00.png.npy'}: cannot write: "), done.stderr
    assert done.stderr.count("\n") == 1 and "disk full" in done.stderr
    assert _npy(out) == [] and not [p for p in out.iterdir() if p.name.endswith(".tmp")]
