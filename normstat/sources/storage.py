"""What a storage call may say, made safe to show: credentials (options, URL userinfo, query
strings of signed URLs) scrubbed from every name and message, storage libraries' exceptions as
OSErrors with short reasons, and remote files whose failures mid-read are OSErrors too."""

from __future__ import annotations

import errno
import io
import re
from collections.abc import Iterator
from typing import Any, NamedTuple
from urllib.parse import unquote

__all__ = [
    "AZ",
    "Guarded",
    "Root",
    "as_oserror",
    "clean_url",
    "describe",
    "option_secrets",
    "parse",
    "scrub",
    "storage_call",
]

AZ = ("az", "abfs", "abfss", "adl")  # abfs://container@account: userinfo a name, no secret
_STORAGES = {"botocore", "aiobotocore", "aiohttp", "s3fs", "gcsfs", "adlfs", "azure", "google"}
_SECRET_KEY = re.compile(r"key|secret|token|pass|cred|sas|sig|connection", re.IGNORECASE)
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)([^?#]*)(\?[^#]*)?(#.*)?$", re.DOTALL)
_USERINFO = re.compile(r"(://)[^/@\s\"']*:[^/@\s\"']*@")
_QUERY = re.compile(r"(://[^\s\"'?]*)\?[^\s\"']*")
_DENIED = {"AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"}


class Root(NamedTuple):
    clean: str  # as names, manifests and messages show it
    request: str  # as requested (an https query kept; s3 userinfo moved into options)
    options: dict[str, Any]


def clean_url(url: str) -> str:
    """``url`` without credentials, query, fragment, trailing slash: as a manifest records it."""
    return parse(url, {})[0].clean


def parse(url: str, options: dict[str, Any]) -> tuple[Root, list[str]]:
    """The root, and the secrets it carries (userinfo, query values) for scrubbing."""
    match = _URL.match(url)
    if match is None:
        return Root(url, url, options), []
    scheme, netloc, path, query, _ = match.groups()
    protocol = scheme.lower()
    secrets = [v for part in (query or "")[1:].split("&") for v in part.split("=")[1:] if v]
    userinfo, at, host = netloc.rpartition("@")
    opts = dict(options)
    if at and (protocol not in AZ or ":" in userinfo):
        secrets += [unquote(s) for s in userinfo.split(":") if s] + [userinfo]
        if protocol in ("s3", "s3a"):  # s3://KEY:SECRET@bucket
            key, _, secret = userinfo.partition(":")
            opts.update(key=unquote(key), secret=unquote(secret))
            netloc = host
    else:
        host = netloc
    path = path.rstrip("/")
    clean = f"{scheme}://{host}{path}"
    return Root(clean, f"{scheme}://{netloc}{path}{query or ''}", opts), secrets


def option_secrets(options: Any, secret: bool = False) -> Iterator[str]:
    """String values under credential-like keys (key, secret, token, sas_token, ...)."""
    if secret and isinstance(options, str) and options:
        yield options
    pairs: Any = options.items() if isinstance(options, dict) else ()
    pairs = enumerate(options) if isinstance(options, list | tuple) else pairs
    for k, v in pairs:
        yield from option_secrets(v, secret or bool(_SECRET_KEY.search(str(k))))


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` as one line without the secrets, URL userinfo or query strings."""
    for secret in secrets:
        text = text.replace(secret, "***")
    text = _QUERY.sub(r"\1", _USERINFO.sub(r"\1", text))
    text = " ".join(text.split())
    return text if len(text) <= 200 else text[:197] + "..."


def _is_storage_error(exc: BaseException) -> bool:
    mro = type(exc).__mro__
    return isinstance(exc, OSError) or any(k.__module__.split(".")[0] in _STORAGES for k in mro)


def as_oserror(exc: BaseException, secrets: tuple[str, ...] = ()) -> OSError:
    """A storage failure as an OSError whose ``strerror`` is a short, clean reason (the
    ``skipped`` reason), of the subclass that fits (not found, access denied, timeout)."""
    kind, code = type(exc).__name__, ""
    for e in (exc.__cause__, exc):  # botocore's ClientError, or s3fs's error made of one
        response = getattr(e, "response", None)
        if isinstance(response, dict):
            code = str(response.get("Error", {}).get("Code", ""))
    text = scrub(exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc), secrets)
    if isinstance(exc, FileNotFoundError) or code in ("NoSuchKey", "NoSuchBucket", "404"):
        return FileNotFoundError(errno.ENOENT, "no such object")
    if isinstance(exc, PermissionError) or code in _DENIED:
        return PermissionError(errno.EACCES, f"access denied ({code or text or kind})")
    if kind in ("NoCredentialsError", "PartialCredentialsError", "DefaultCredentialsError"):
        return PermissionError(errno.EACCES, "no credentials found")
    if kind == "FileExpired":
        return OSError(errno.ESTALE, "the object changed while it was read")
    if isinstance(exc, TimeoutError) or "Timeout" in kind:
        return TimeoutError(errno.ETIMEDOUT, f"timed out ({kind})")
    if isinstance(exc, ConnectionError) or "Connect" in kind:
        return ConnectionError(errno.ECONNREFUSED, f"cannot connect: {text or kind}")
    number = exc.errno if isinstance(exc, OSError) and isinstance(exc.errno, int) else errno.EIO
    return OSError(number, text or kind)


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:200]


def storage_call(secrets: tuple[str, ...], fn: Any, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``, a storage failure raised as ``as_oserror`` makes it."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        if not _is_storage_error(exc) or isinstance(exc, io.UnsupportedOperation):
            raise
        raise as_oserror(exc, secrets) from None


class Guarded(io.RawIOBase):
    """A remote file whose failures mid-read (a lost connection, an object replaced) are
    OSErrors with a clean reason too. No ``fileno``: readers never memory-map it."""

    def __init__(self, f: Any, secrets: tuple[str, ...]) -> None:
        self._f, self._secrets = f, secrets

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        return storage_call(self._secrets, self._f.read, -1 if size is None else size)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return storage_call(self._secrets, self._f.seek, offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def close(self) -> None:
        self._f.close()
        super().close()
