"""Reading a manifest's JSON without trusting it: never blocking (a FIFO, a device), never more
than a fixed number of bytes, and every way ``json`` can fail (bad UTF-8, nesting deep enough to
exhaust the stack, integers past Python's digit limit) turned into one ManifestError."""

from __future__ import annotations

import json
import os
from typing import Any

from normstat.errors import ManifestError
from normstat.fileops import NotRegularFile, open_regular

__all__ = ["MAX_DEPTH", "MAX_MANIFEST_BYTES", "read_document"]

MAX_MANIFEST_BYTES = 256 << 20  # a manifest listing millions of skips is far smaller
MAX_DEPTH = 32  # the deepest legal manifest is 4 levels; printing a deep one would recurse


def _depth_ok(data: Any) -> bool:
    """True when no container nests deeper than MAX_DEPTH (walked without recursion, so a
    document ``json`` parsed can still be printed by ``show --format json``)."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            value = value.values()
        elif not isinstance(value, list):
            continue
        if depth > MAX_DEPTH:
            return False
        stack.extend((v, depth + 1) for v in value if isinstance(v, dict | list))
    return True


def read_document(path: str) -> Any:
    """The parsed JSON of the manifest at ``path``; ManifestError with a one-line reason."""
    try:
        fh = open_regular(path)
    except FileNotFoundError:
        raise ManifestError(path, "no such file") from None
    except NotRegularFile as exc:
        raise ManifestError(path, f"cannot read manifest: is {exc}") from None
    except OSError as exc:
        raise ManifestError(path, f"cannot read manifest: {exc.strerror or exc}") from None
    with fh:
        size = os.fstat(fh.fileno()).st_size
        if size > MAX_MANIFEST_BYTES:
            raise ManifestError(
                path, f"manifest is {size} bytes, more than the {MAX_MANIFEST_BYTES} allowed"
            )
        try:
            blob = fh.read(MAX_MANIFEST_BYTES + 1)  # the file may grow after fstat
        except OSError as exc:
            raise ManifestError(path, f"cannot read manifest: {exc.strerror or exc}") from None
    if len(blob) > MAX_MANIFEST_BYTES:
        raise ManifestError(path, f"manifest is more than the {MAX_MANIFEST_BYTES} bytes allowed")
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(path, f"manifest is not UTF-8 (byte {exc.start})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(path, f"not JSON ({exc.msg}, line {exc.lineno})") from None
    except RecursionError:
        raise ManifestError(path, "manifest nests too deeply") from None
    except ValueError as exc:  # an integer past sys.get_int_max_str_digits()
        raise ManifestError(path, f"not JSON ({str(exc).splitlines()[0]})") from None
    if not _depth_ok(data):
        raise ManifestError(path, f"manifest nests deeper than {MAX_DEPTH} levels")
    return data
