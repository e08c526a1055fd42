"""fsspec URL sources against a real S3 server (moto, on 127.0.0.1, started by the tests):
listing, range reads, compute/apply/check from S3 equal to the same files read locally, error
text, and credentials that never reach an output."""

from __future__ import annotations

import io
import json
import math
import os
import pickle
import subprocess
import sys
import uuid
import zipfile
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from helpers import invoke, without_references
from PIL import Image

import normstat
from normstat.errors import InputError, OutputError
from normstat.sources import Item, Shard, for_roots, resolve
from normstat.sources.remote import FsspecSource, as_oserror, clean_url

if TYPE_CHECKING:
    from s3server import S3Server

pytest_plugins = ("s3server",)  # its fixtures: s3 (the server), s3_env (and the environment)

RNG = np.random.default_rng(11)


def _upload(server: S3Server, folder: Path, bucket: str, prefix: str, create: bool = True) -> None:
    objects = {
        f"{prefix}/{p.relative_to(folder).as_posix()}": p.read_bytes()
        for p in folder.rglob("*")
        if p.is_file()
    }
    server.put(bucket, objects, create=create)


def _photo(i: int, h: int = 48, w: int = 64) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * (2 + i), y * 3, (x + y + 9 * i) % 255], axis=2)
    return np.clip(base + RNG.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A train split on disk: PNGs and a BMP in nested folders, a grayscale PNG, a BMP larger
    than one fetch (read through open), a .npy stack, a broken PNG, a text file and hidden
    files; and the exact RGB arrays normstat should reduce."""
    root = tmp_path_factory.mktemp("train")
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / ".cache").mkdir()
    arrays = []
    for i in range(6):
        photo = _photo(i)
        arrays.append(photo)
        Image.fromarray(photo).save(root / ("sub" if i % 2 else ".") / f"p{i}.png")
    gray = RNG.integers(0, 256, (40, 30), dtype=np.uint8)
    Image.fromarray(gray).save(root / "sub" / "deeper" / "gray.png")
    arrays.append(np.asarray(Image.fromarray(gray).convert("RGB")))
    big = RNG.integers(0, 256, (1200, 1200, 3), dtype=np.uint8)  # 4.3 MB > one fetch
    Image.fromarray(big).save(root / "big.bmp")
    arrays.append(big)
    stack = RNG.integers(0, 256, (3, 48, 64, 3), dtype=np.uint8)
    np.save(root / "stack.npy", stack)
    arrays.extend(stack)
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    (root / "notes.txt").write_text("not an image")
    (root / ".hidden.png").write_bytes((root / "p0.png").read_bytes())
    (root / ".cache" / "x.png").write_bytes((root / "p0.png").read_bytes())
    return {"root": root, "arrays": arrays}


@pytest.fixture
def bucket(s3_env: S3Server, split: dict[str, Any]) -> S3Server:
    """The split uploaded as s3://bkt/train/ (the server emptied first)."""
    _upload(s3_env, split["root"], "bkt", "train")
    return s3_env


def _same_stats(remote: Any, local: Any, local_root: Path, url: str) -> None:
    for key in ("state", "raw", "mean", "std", "images", "modes", "files", "pixels"):
        assert remote.data[key] == local.data[key], key
    assert remote.data["sources"] == [url]
    assert remote.fingerprints is not None and local.fingerprints is not None
    assert remote.fingerprints.paths == local.fingerprints.paths
    assert [s["path"].removeprefix(url) for s in remote.skipped] == [
        s["path"].removeprefix(str(local_root)) for s in local.skipped
    ]
    assert [s["reason"] for s in remote.skipped] == [s["reason"] for s in local.skipped]


# ---------------------------------------------------------------- listing


def test_listing_is_one_flat_paginated_pass(s3_env: S3Server) -> None:
    """1,100 keys in 11 "folders": two ListObjectsV2 pages, no listing per folder; hidden
    names and folder markers left out, as local folders leave them out."""
    keys = {f"many/d{i % 11:02d}/f{i:04d}.bin": b"%d" % i for i in range(1100)}
    hidden = {"many/.DS_Store": b"x", "many/d01/.git/config": b"x", "many/d02/.h.bin": b"x"}
    s3_env.put("bkt", {"many/d03/": b"", "many2/x.bin": b"x"})
    s3_env.seed("bkt", {**keys, **hidden})
    source = FsspecSource(("s3://bkt/many/",), {})
    with s3_env.requests() as requests:
        items = source.items()
    assert [i.rel for i in items] == sorted(k.removeprefix("many/") for k in keys)
    assert {i.root for i in items} == {"s3://bkt/many"}
    lists = [r for r in requests if "list-type=2" in r]
    assert len(lists) == 2 and len(requests) == 2, requests
    with s3_env.requests() as requests:  # versions come from the listing: no request
        versions = {source.version(i) for i in items}
    assert requests == [] and len(versions) == len(set(keys.values())) and None not in versions


def test_roots_overlapping_and_single_objects_are_listed_once(s3_env: S3Server) -> None:
    s3_env.put("bkt", {"a/x.png": b"1", "a/b/y.png": b"22", "top.png": b"333"})
    source = FsspecSource(("s3://bkt/a", "s3://bkt", "s3://bkt/top.png", "s3://bkt/a/"), {})
    items = source.items()
    assert items == sorted(items)
    assert [i.path for i in items] == ["s3://bkt/a/b/y.png", "s3://bkt/a/x.png", "s3://bkt/top.png"]
    one = FsspecSource(("s3://bkt/top.png",), {}).items()
    assert one == [Item("s3://bkt", "top.png")]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("s3://no-such-bucket/train", "cannot list: no such bucket"),
        ("s3://bkt/nothing-here", "no such object, and no objects under this prefix"),
        ("s3://bkt/only-hidden", "no such object, and no objects under this prefix"),
        ("nosuchscheme://bkt/x", "unknown URL scheme 'nosuchscheme://'"),
    ],
)
def test_missing_bucket_or_prefix_is_a_one_line_input_error(
    s3_env: S3Server, url: str, reason: str
) -> None:
    s3_env.put("bkt", {"other/x.png": b"1", "only-hidden/.x.png": b"1"})
    with pytest.raises(InputError) as info:
        normstat.compute(url, workers=1)
    assert str(info.value) == f"{url}: {reason}"
    result = invoke("compute", url, "-o", "/nonexistent/never-written.json")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [f"Error: {url}: {reason}"]


# ---------------------------------------------------------------- reading


def test_npy_stack_is_read_with_range_requests(s3_env: S3Server) -> None:
    stack = RNG.integers(0, 256, (40, 256, 256, 3), dtype=np.uint8)  # 7.9 MB
    buf = io.BytesIO()
    np.save(buf, stack)
    s3_env.put("bkt", {"arrays/stack.npy": buf.getvalue()})
    source = FsspecSource(("s3://bkt/arrays",), {})
    (item,) = source.items()
    with s3_env.requests() as requests, source.open(item) as f:
        assert f.seekable() and f.read(6) == b"\x93NUMPY"
        f.seek(0)
        assert np.lib.format.read_magic(f) == (1, 0)
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        offset = f.tell()
        per = math.prod(shape[1:]) * dtype.itemsize
        f.seek(offset + 30 * per)
        image = np.frombuffer(f.read(per), dtype=dtype).reshape(shape[1:])
        assert f.seek(0, io.SEEK_END) == len(buf.getvalue())
    assert shape == stack.shape and np.array_equal(image, stack[30])
    gets = [r for r in requests if r.startswith("GET /bkt/arrays/stack.npy")]
    assert gets and all(r.endswith(" 206") for r in gets) and len(gets) <= 3, requests


def test_stream_fetches_concurrently_and_names_failures(s3_env: S3Server) -> None:
    """Small objects come back as bytes in order, a large one as a range-read file, an empty
    one as empty, and objects gone since the listing as a clean OSError, in a worker process
    too (where the listing is not known)."""
    objects = {f"s/{i:03d}.bin": bytes([i]) * (i + 1) for i in range(100)}
    objects["s/050.bin"] = b""
    objects["s/077.bin"] = os.urandom(5 << 20)
    s3_env.put("bkt", objects)
    source = FsspecSource(("s3://bkt/s",), s3_env.options)
    items = source.items()
    s3_env.client().delete_object(Bucket="bkt", Key="s/013.bin")
    shard = Shard(items[0].root, items[0].rel, (*items, Item("s3://bkt/s", "gone.bin")), "")
    for src in (source, pickle.loads(pickle.dumps(source))):
        got = [(i.rel, f if isinstance(f, OSError) else f.read()) for i, f in src.stream(shard)]
        assert [rel for rel, _ in got] == [*(k.removeprefix("s/") for k in objects), "gone.bin"]
        for rel, data in got:
            if rel in ("013.bin", "gone.bin"):
                assert isinstance(data, FileNotFoundError) and data.strerror == "no such object"
            else:
                assert data == objects[f"s/{rel}"], rel


def test_source_pickles_without_its_listing_and_reopens_by_url(bucket: S3Server) -> None:
    source = FsspecSource(("s3://bkt/train",), bucket.options)
    bare = len(pickle.dumps(source))
    items = source.items()
    again = pickle.loads(pickle.dumps(source))
    assert len(pickle.dumps(source)) == bare and again == source
    assert "secret" not in repr(source) and bucket.options["secret"] not in repr(source)
    reopen = for_roots([items[0].root], bucket.options)  # check's way, from manifest roots
    for item in items[:3]:
        with reopen.open(item) as a, FsspecSource((), bucket.options).open(item) as b:
            assert a.read() == b.read() == source.open(item).read()
    with pytest.raises(FileNotFoundError, match="no such object"):
        FsspecSource((), bucket.options).open(Item("s3://bkt/train", "nope.png"))


def test_open_without_a_listing_is_one_get_for_a_small_object(s3_env: S3Server) -> None:
    """apply and check open items one by one in workers that hold no listing: a small object
    is one GET (no HEAD first); a larger one, or an empty one, is still read whole and right."""
    objects = {"o/small.png": os.urandom(50_000), "o/large.bin": os.urandom(600_000), "o/e": b""}
    s3_env.put("bkt", objects)
    bare = FsspecSource((), s3_env.options)
    for key, data in objects.items():
        with s3_env.requests() as requests, bare.open(Item("s3://bkt", key)) as f:
            assert f.read() == data
        if key == "o/small.png":
            assert requests == [f"GET /bkt/{key} 206"], requests
    listed = FsspecSource(("s3://bkt/o",), s3_env.options)
    items = listed.items()
    with s3_env.requests() as requests:
        assert [listed.open(i).read() for i in items] == [objects[f"o/{i.rel}"] for i in items]
    assert all(r.startswith("GET ") for r in requests), requests  # sizes known: no HEAD


# ---------------------------------------------------------------- compute, apply, check


def test_compute_from_s3_equals_compute_from_local_files(
    bucket: S3Server, split: dict[str, Any]
) -> None:
    local = normstat.compute(split["root"], workers=2)
    url = "s3://bkt/train"
    remote_env = normstat.compute(url, workers=1)  # the URL resolved; credentials from env
    remote_pool = normstat.compute(url, storage_options=bucket.options, workers=2)
    for remote in (remote_env, remote_pool):
        _same_stats(remote, local, split["root"], url)
    # and against the exact reference: Python integers over the true pixels
    arrays = split["arrays"]
    for c in range(3):
        total = sum(int(a[..., c].astype(np.int64).sum()) for a in arrays)
        count = sum(a.shape[0] * a.shape[1] for a in arrays)
        assert remote_pool.data["state"]["sum"][c] == total
        assert remote_pool.mean[c] == float(Fraction(total, count) / 255)
    assert remote_pool.images == len(arrays) == 11
    assert [s["path"] for s in remote_pool.skipped] == [f"{url}/broken.png"]


def test_apply_reads_s3_and_writes_a_local_out(
    bucket: S3Server, split: dict[str, Any], tmp_path: Path
) -> None:
    stats = normstat.compute(split["root"], workers=2)
    out, ref = tmp_path / "out", tmp_path / "ref"
    done = normstat.apply("s3://bkt/train", stats, out, storage_options=bucket.options, workers=2)
    normstat.apply(split["root"], stats, ref, workers=2)
    names = sorted(p.relative_to(ref).as_posix() for p in ref.rglob("*.npy"))
    assert done.written == len(names) == 11
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.npy")) == names
    for name in names:
        assert (out / name).read_bytes() == (ref / name).read_bytes(), name


def test_apply_resumes_from_s3_while_the_versions_hold(
    bucket: S3Server, split: dict[str, Any], tmp_path: Path
) -> None:
    stats = normstat.compute(split["root"], workers=1)
    source = FsspecSource(("s3://bkt/train",), bucket.options)
    assert normstat.apply(source, stats, tmp_path / "out", workers=1).written == 11
    again = normstat.apply(source, stats, tmp_path / "out", workers=1)  # the same ETags: kept
    assert again.written == 0 and again.kept == 11
    key = "train/p0.png"
    bucket.put("bkt", {key: (split["root"] / "sub" / "p1.png").read_bytes()}, create=False)
    changed = normstat.apply(source, stats, tmp_path / "out", workers=1)
    assert changed.written == 1 and changed.kept == 10


@pytest.mark.parametrize("workers", [1, 2])
def test_check_reopens_train_contributors_from_s3(
    bucket: S3Server, split: dict[str, Any], tmp_path: Path, workers: int
) -> None:
    """The near-duplicate is verified against the stored references, no train object read;
    for a manifest without them, against the train pixels read back from S3. One worker: a
    local test split, credentials from the environment; two: the test split in S3 too, and
    the credentials as storage_options."""
    options = bucket.options if workers > 1 else None
    stats = normstat.compute("s3://bkt/train", workers=workers, storage_options=options)
    manifest = tmp_path / "stats.json"
    stats.save(str(manifest))
    test = tmp_path / "test"
    test.mkdir()
    p1 = np.asarray(Image.open(split["root"] / "sub" / "p1.png"))
    p4 = np.asarray(Image.open(split["root"] / "p4.png"))
    Image.fromarray(p1).save(test / "copy.bmp")
    Image.fromarray(p4).resize((32, 24), Image.Resampling.BILINEAR).save(test / "half.png")
    Image.fromarray(RNG.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(test / "other.png")
    where = str(test)
    if workers > 1:
        _upload(bucket, test, "bkt", "test", create=False)
        where = "s3://bkt/test"
    want = {
        ("/copy.bmp", "s3://bkt/train/sub/p1.png", "exact"),
        ("/half.png", "s3://bkt/train/p4.png", "near"),
    }
    with bucket.requests() as requests:
        report = normstat.check(where, manifest, workers=workers, storage_options=options)
    found = {(leak.test.removeprefix(where), leak.train, leak.kind) for leak in report.leaked}
    assert found == want
    assert report.checked == 3 and not report.warnings
    assert not any("/bkt/train/" in r for r in requests), requests
    without_references(manifest)
    with bucket.requests() as requests:
        report = normstat.check(where, manifest, workers=workers, storage_options=options)
    found = {(leak.test.removeprefix(where), leak.train, leak.kind) for leak in report.leaked}
    assert found == want
    assert report.checked == 3 and report.verification == "files"
    assert any(r.startswith("GET /bkt/train/p4.png") for r in requests), requests


# ---------------------------------------------------------------- credentials


def _all_bytes(folder: Path) -> bytes:
    """Every file under ``folder``, and every member of each zip (the sidecar) unpacked."""
    out = b""
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        out += data
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                out += b"".join(zf.read(name) for name in zf.namelist())
    return out


def test_credentials_never_reach_an_output(
    bucket: S3Server, split: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Secrets given as storage_options and as URL userinfo, through the API and the CLI:
    absent from every byte written or said (manifest, sidecar unpacked, arrays, provenance,
    reports, messages, the skipped list)."""
    secret, in_url = f"sEcReT{uuid.uuid4().hex}", f"uRlSeCrEt{uuid.uuid4().hex}"
    options = {**bucket.options, "secret": secret}
    bucket.put("bkt", {"sub/extra.png": (split["root"] / "p0.png").read_bytes()}, create=False)
    urls = ["s3://bkt/train", f"s3://{bucket.options['key']}:{in_url}@bkt/sub"]
    said: list[str] = [repr(FsspecSource(tuple(urls), options)), str(resolve(urls, options))]
    stats = normstat.compute(urls, workers=2, storage_options=options)
    assert stats.data["sources"] == ["s3://bkt/sub", "s3://bkt/train"]
    (tmp_path / "api").mkdir()
    stats.save(str(tmp_path / "api" / "stats.json"))
    applied = normstat.apply(urls, stats, tmp_path / "out", workers=2, storage_options=options)
    report = normstat.check(urls, stats, workers=2, storage_options=options)
    said += [json.dumps(report.to_json()), str(applied.skipped), json.dumps(stats.data)]
    for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)  # the CLI gets all it needs from --storage-options
    given = ("--storage-options", json.dumps(options))
    cli = tmp_path / "cli"
    runs = [
        invoke("compute", *urls, *given, "-o", cli / "stats.json"),
        invoke("apply", *urls, *given, "--stats", cli / "stats.json", "-o", cli / "out"),
        invoke("check", *urls, *given, "--stats", cli / "stats.json", "--json", "-"),
    ]
    assert [r.exit_code for r in runs] == [0, 0, 1], [r.stderr for r in runs]  # 1: leaks
    missing = invoke("compute", f"s3://k:{in_url}@no-such-bucket/x", *given, "-o", cli / "x")
    assert missing.exit_code == 2 and "no such bucket" in missing.stderr
    said += [text for r in [*runs, missing] for text in (r.stdout, r.stderr)]
    with pytest.raises(OSError) as info:
        FsspecSource(tuple(urls), options).open(Item("s3://bkt/sub", "gone.png"))
    said.append(f"{info.value!r} {info.value}")
    everything = "\n".join(said).encode() + _all_bytes(tmp_path)
    assert b"s3://bkt/train" in everything and b"p0.png" in everything  # the grep sees outputs
    for word in (secret, in_url):
        assert word.encode() not in everything


@pytest.mark.parametrize(
    ("url", "clean"),
    [
        ("s3://AKIA:se%2Fcret@bkt/p/", "s3://bkt/p"),
        (
            "https://host/a/img.png?X-Amz-Signature=abc&X-Amz-Credential=k#frag",
            "https://host/a/img.png",
        ),
        ("https://user:pw@host/a", "https://host/a"),
        (
            "abfs://container@account.dfs.core.windows.net/p?sv=2020&sig=zz",
            "abfs://container@account.dfs.core.windows.net/p",
        ),
        ("az://key:secret@container/p", "az://container/p"),
        ("gs://bkt", "gs://bkt"),
    ],
)
def test_names_and_manifest_roots_drop_credentials_and_queries(url: str, clean: str) -> None:
    source = FsspecSource((url,), {"token": "tOkEn-value"})
    assert clean_url(url) == clean == source.name == source.manifest_root(url)
    assert source.locations() == []


def test_storage_errors_become_clean_oserrors() -> None:
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    def client_error(code: str) -> ClientError:
        return ClientError({"Error": {"Code": code, "Message": "m"}}, "GetObject")

    cases = [
        (client_error("AccessDenied"), PermissionError, "access denied (AccessDenied)"),
        (client_error("NoSuchKey"), FileNotFoundError, "no such object"),
        (NoCredentialsError(), PermissionError, "no credentials found"),
        (
            EndpointConnectionError(endpoint_url="http://u:pw@127.0.0.1:9/b?sig=SIG"),
            ConnectionError,
            'cannot connect: Could not connect to the endpoint URL: "http://127.0.0.1:9/b"',
        ),
        (PermissionError("Forbidden"), PermissionError, "access denied (Forbidden)"),
        (OSError(5, "The key TOKEN123 failed"), OSError, "The key *** failed"),
    ]
    for exc, kind, text in cases:
        mapped = as_oserror(exc, ("TOKEN123",))
        assert type(mapped) is kind and mapped.strerror == text, (exc, mapped)


def test_signed_https_urls_are_requested_with_their_query_and_recorded_without(
    split: dict[str, Any], tmp_path: Path
) -> None:
    """A loopback HTTP server: the signature reaches the request, never the manifest."""
    import functools
    import http.server
    import threading

    seen: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            seen.append(self.path)

    serve = functools.partial(Handler, directory=str(split["root"]))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), serve)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        signed = f"{base}/p0.png?X-Amz-Signature=sIgNaTuRe"
        stats = normstat.compute([signed, f"{base}/p2.png"], workers=1)
        local = normstat.compute([split["root"] / "p0.png", split["root"] / "p2.png"], workers=1)
    finally:
        server.shutdown()
        thread.join()
    assert stats.data["state"] == local.data["state"] and stats.data["sources"] == [base]
    assert "/p0.png?X-Amz-Signature=sIgNaTuRe" in seen
    stats.save(str(tmp_path / "stats.json"))
    assert b"sIgNaTuRe" not in _all_bytes(tmp_path) + json.dumps(stats.data).encode()


# ---------------------------------------------------------------- file:// and missing extras


def test_file_urls_read_local_files_and_protect_them(split: dict[str, Any], tmp_path: Path) -> None:
    url = split["root"].as_uri()
    source = resolve(url)
    assert source.locations() == [str(split["root"])]
    local = normstat.compute(split["root"], workers=1)
    _same_stats(normstat.compute(url, workers=1), local, split["root"], url)
    with pytest.raises(OutputError):
        normstat.apply(url, local, split["root"] / "out", workers=1)


@pytest.mark.parametrize(
    ("url", "blocked", "line"),
    [
        ("s3://bkt/x", "s3fs", "s3:// URLs need s3fs: pip install 'normstat[s3]'"),
        ("gs://bkt/x", "gcsfs", "gs:// URLs need gcsfs: pip install 'normstat[gcs]'"),
        ("gcs://bkt/x", "gcsfs", "gcs:// URLs need gcsfs: pip install 'normstat[gcs]'"),
        ("az://c/x", "adlfs", "az:// URLs need adlfs: pip install 'normstat[azure]'"),
        ("abfss://c@a.b/x", "adlfs", "abfss:// URLs need adlfs: pip install 'normstat[azure]'"),
    ],
)
def test_a_missing_extra_is_one_line_naming_the_pip_install(
    url: str, blocked: str, line: str, tmp_path: Path
) -> None:
    code = (
        f"import sys; sys.modules[{blocked!r}] = None\n"
        "from normstat.cli import main\n"
        f"sys.argv = ['normstat', 'compute', {url!r}, '-o', {str(tmp_path / 's.json')!r}]\n"
        "main()\n"
    )
    env = {**os.environ, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}  # never reached
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [f"Error: {clean_url(url)}: {line}"]
