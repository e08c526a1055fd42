"""A real S3 server for tests: moto's ``ThreadedMotoServer`` on 127.0.0.1 (a free port), started
by a fixture and stopped after; nothing leaves the loopback interface.

Use it from a test module::

    from s3server import S3Server

    pytest_plugins = ("s3server",)  # the fixtures below

``s3`` (module scope) is the running server, emptied before each test that takes ``s3_env``;
``s3_env`` also sets fake AWS credentials and ``AWS_ENDPOINT_URL`` for the test (botocore
reads it), so ``s3://`` URLs reach this server, from worker processes too: normstat's pool
starts workers from a fork server while threads run (this server's), and a fork server keeps
the environment it was started with, so ``s3_env`` stops any running one before and after
the test. ``S3Server.options`` gives the endpoint and keys as ``storage_options`` instead.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing.forkserver
import re
import threading
import urllib.request
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest

REGION = "us-east-1"
KEY_ID = "testing-key-id"
SECRET = "testing-secret"


class _Requests(logging.Handler):
    """The server's request log (werkzeug's, one record per request) as ``METHOD /path STATUS``
    lines, kept while a test records them, never printed."""

    _LINE = re.compile(r'"([A-Z]+) (\S+) HTTP/[\d.]+" (\d+)')
    _ANSI = re.compile(r"\x1b\[[0-9;]*m")

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] | None = None
        self.guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        match = self._LINE.search(self._ANSI.sub("", record.getMessage()))
        with self.guard:
            if match and self.lines is not None:
                self.lines.append(" ".join(match.groups()))


@dataclass(frozen=True)
class S3Server:
    """A running server: ``endpoint`` is ``http://127.0.0.1:PORT``."""

    endpoint: str
    log: _Requests = field(repr=False)

    @contextlib.contextmanager
    def requests(self) -> Iterator[list[str]]:
        """The requests the server answers during the block, as ``GET /bucket/key 206``."""
        lines: list[str] = []
        self.log.lines = lines
        try:
            yield lines
        finally:
            self.log.lines = None

    @property
    def options(self) -> dict[str, Any]:
        """storage_options (s3fs's) that reach this server whatever the environment."""
        return {"endpoint_url": self.endpoint, "key": KEY_ID, "secret": SECRET}

    @property
    def env(self) -> dict[str, str]:
        """The environment that reaches this server (AWS's standard variables)."""
        return {
            "AWS_ACCESS_KEY_ID": KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": self.endpoint,
        }

    def client(self) -> Any:
        """A boto3 S3 client of this server (explicit endpoint and keys, no environment)."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=KEY_ID,
            aws_secret_access_key=SECRET,
            region_name=REGION,
        )

    def put(self, bucket: str, objects: Mapping[str, bytes], create: bool = True) -> None:
        """``objects`` (key → bytes) into ``bucket``, sixteen uploads at a time."""
        client = self.client()
        if create:
            client.create_bucket(Bucket=bucket)

        def put(key: str) -> None:
            client.put_object(Bucket=bucket, Key=key, Body=objects[key])

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(put, objects))

    def seed(self, bucket: str, objects: Mapping[str, bytes]) -> None:
        """``objects`` written straight into this process's server (moto's store, no request):
        thousands of keys in milliseconds, for listing tests; ``bucket`` must exist."""
        from moto.core import DEFAULT_ACCOUNT_ID  # the account of any unknown access key
        from moto.s3.models import s3_backends

        backend = s3_backends[DEFAULT_ACCOUNT_ID]["global"]
        for key, data in objects.items():
            backend.put_object(bucket, key, data)

    def reset(self) -> None:
        """Every bucket and object gone (moto's own reset call)."""
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()


@contextlib.contextmanager
def running_server() -> Iterator[S3Server]:
    """A moto S3 server on 127.0.0.1 for the duration of the block."""
    from moto.server import ThreadedMotoServer

    logger = logging.getLogger("werkzeug")  # its request lines: recorded, never printed
    log = _Requests()
    before = (logger.level, logger.propagate)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(log)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield S3Server(f"http://{host}:{port}", log)
    finally:
        server.stop()
        logger.removeHandler(log)
        logger.setLevel(before[0])
        logger.propagate = before[1]


def stop_fsspec_io() -> None:
    """fsspec runs async filesystems on a daemon thread ("fsspecIO", and its loop's executor
    thread) for the rest of the process: stopped here, with the filesystems bound to it, so
    later tests find no extra thread (normstat's pool forks only while none runs)."""
    import asyncio
    import gc

    import fsspec
    import fsspec.asyn

    from normstat.sources import remote

    remote._FILESYSTEMS.clear()
    for cls in set(fsspec.registry.values()):  # the instances fsspec keeps, bound to the loop
        if issubclass(cls, fsspec.asyn.AsyncFileSystem):
            cls.clear_instance_cache()
    loop, thread = fsspec.asyn.loop[0], fsspec.asyn.iothread[0]
    gc.collect()  # s3fs's finalizers close their sessions while the loop still runs
    if loop is None or thread is None:
        return
    asyncio.run_coroutine_threadsafe(loop.shutdown_default_executor(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()
    fsspec.asyn.loop[0] = fsspec.asyn.iothread[0] = None


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    """The server for the module; afterwards no thread of its own or of fsspec's is left."""
    with running_server() as server:
        yield server
    stop_fsspec_io()


def _stop_fork_server() -> None:
    """The next pool starts a fork server with the environment of that moment."""
    stop = getattr(multiprocessing.forkserver._forkserver, "_stop", None)
    if stop is not None:
        stop()


@pytest.fixture
def s3_env(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    """The server, emptied, with the AWS variables pointing at it (no profile, config file or
    instance metadata of the machine's in the way), in this process and its workers."""
    s3.reset()
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/normstat-test-aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/normstat-test-aws-creds")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    _stop_fork_server()
    yield s3
    _stop_fork_server()
