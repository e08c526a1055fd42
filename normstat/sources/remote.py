"""fsspec URL sources: s3://, gs://, az://, https://, file://, any protocol fsspec knows.

Each root is listed in one flat, paginated pass (``find``: ListObjectsV2 pages of 1,000), never
a walk per "directory"; the listing's sizes and ETags give ``version``. Plain objects are
fetched concurrently (``stream``); ``open`` fetches a small object in one GET and reads a
larger one with range requests. Credentials come from
the protocol's own configuration (AWS_* variables and files; botocore ≥ 1.31 reads
``AWS_ENDPOINT_URL``) and ``storage_options``; they, URL userinfo and query strings (signed
URLs, SAS tokens) never reach a name, a manifest or a message (``storage.py``)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO
from urllib.parse import unquote

from normstat.errors import InputError

from .base import Item, Shard, plain_shards
from .local import has_scheme, open_input
from .storage import (
    AZ,
    Guarded,
    Root,
    as_oserror,
    clean_url,
    describe,
    option_secrets,
    parse,
    storage_call,
)

__all__ = ["FsspecSource", "as_oserror", "clean_url"]

# Images are read whole, front to back, in two or three reads (a header window, then the rest);
# a .npy stack as its header, then consecutive slices. fsspec's "readahead" cache serves that:
# one request per read plus a block ahead, reused by the next read. 2 MiB blocks (s3fs: 50 MiB)
# keep a header probe one small request, and a slice of N bytes one request of N + 2 MiB.
_BLOCK = 2 << 20
# stream(): objects up to _LARGE fetched whole, concurrently, in batches of at most _BATCH_ITEMS
# and _BATCH_BYTES (by listed size; unknown: _LARGE); the next batch downloads while this one is
# decoded, so a worker holds at most two batches.
_LARGE = 4 << 20
_FIRST = 256 << 10  # open() of an object of unknown size: fetched whole when it is smaller
_BATCH_ITEMS = 64
_BATCH_BYTES = 32 << 20

_EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", **dict.fromkeys(AZ, "azure")}
_PACKAGES = {"s3": "s3fs", "gcs": "gcsfs", "azure": "adlfs"}
# What these packages raise is a storage failure (an OSError for the item); the rest: bugs.
_FILESYSTEMS: dict[tuple[int, str, str], Any] = {}


def _filesystem(protocol: str, root: Root, shown: str) -> Any:
    """The protocol's filesystem for these options, made once per process (never pickled)."""
    key = (os.getpid(), protocol, json.dumps(root.options, sort_keys=True, default=repr))
    if key in _FILESYSTEMS:
        return _FILESYSTEMS[key]
    extra = _EXTRAS.get(protocol)
    try:
        import fsspec

        cls = fsspec.get_filesystem_class(protocol)
    except (ImportError, ValueError) as exc:  # abfss:// is known only once adlfs is there
        if extra is not None:
            need = f"{_PACKAGES[extra]}: pip install 'normstat[{extra}]'"
        elif isinstance(exc, ValueError):
            raise InputError(shown, f"unknown URL scheme '{protocol}://'") from None
        else:
            http = protocol in ("http", "https")
            need = "aiohttp: pip install aiohttp" if http else describe(exc)
        raise InputError(shown, f"{protocol}:// URLs need {need}") from None
    try:
        fs = _FILESYSTEMS[key] = cls(**root.options)
    except Exception as exc:  # unknown or ill-typed storage options
        raise InputError(shown, f"storage options refused: {describe(exc)}") from None
    return fs


def _stamp(info: dict[str, Any]) -> str | None:
    """An object's version (listing or info): size and ETag or generation, else mtime."""
    size, tags = info.get("size"), ("ETag", "etag", "generation", "md5Hash")
    tag = next((info[k] for k in tags if info.get(k)), None)
    if tag is None:
        times = ("LastModified", "last_modified", "mtime", "updated", "modified")
        tag = next((info[k] for k in times if info.get(k)), None)
        tag = tag.timestamp() if hasattr(tag, "timestamp") else tag  # type: ignore[union-attr]
    return f"{size}:{tag}" if tag is not None else None if size is None else str(size)


_LISTINGS: weakref.WeakKeyDictionary[FsspecSource, dict[Item, Any]] = weakref.WeakKeyDictionary()


@dataclass(frozen=True, repr=False)
class FsspecSource:
    """Objects under URL ``roots`` (prefixes or single objects), ``storage_options`` as fsspec
    takes them. With no roots it still opens items by URL (``for_roots``: contributors)."""

    roots: tuple[str, ...]
    storage_options: dict[str, Any] = field(default_factory=dict, repr=False, hash=False)
    # Derived in __post_init__, never compared: the roots parsed, the secrets to scrub.
    _given: dict[str, Root] = field(init=False, repr=False, compare=False, hash=False)
    _base: Root = field(init=False, repr=False, compare=False, hash=False)
    _secrets: tuple[str, ...] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        opts, given = self.storage_options, dict[str, Root]()
        secrets = list(option_secrets(opts))
        for url in self.roots:
            root, found = parse(url, opts)
            given.setdefault(root.clean, root)
            secrets += found
        object.__setattr__(self, "_given", given)
        object.__setattr__(self, "_base", Root("", "", opts))
        object.__setattr__(self, "_secrets", tuple(sorted(set(secrets), key=len, reverse=True)))

    @property
    def _listed(self) -> dict[Item, tuple[int | None, str | None]]:
        """This process's listing, Item → (size, version): never pickled with the source."""
        return _LISTINGS.setdefault(self, {})

    def __repr__(self) -> str:  # the roots without their credentials, no options
        return f"FsspecSource({tuple(clean_url(r) for r in self.roots)!r})"

    @property
    def name(self) -> str:
        return ", ".join(dict.fromkeys(clean_url(r) for r in self.roots))

    def items(self) -> list[Item]:
        first: dict[str, Item] = {}  # an object reached from two roots: its first name
        listed = self._listed
        listed.clear()
        for root in self._given.values():
            for item, info in self._list(root):
                known = first.get(item.path)
                if known is None or item < known:
                    first[item.path] = item
                listed[item] = (info.get("size"), _stamp(info))
        return sorted(first.values())

    def _list(self, root: Root) -> list[tuple[Item, dict[str, Any]]]:
        protocol = has_scheme(root.clean) or ""
        fs = _filesystem(protocol, root, root.clean)
        path = type(fs)._strip_protocol(root.request.partition("?")[0]).rstrip("/")
        try:
            found = fs.find(path, detail=True)
        except Exception as exc:
            failure = as_oserror(exc, self._secrets)
            why = failure.strerror or str(failure)
            if isinstance(failure, FileNotFoundError):
                why = "no such bucket" if "bucket" in str(exc).lower() else "not found"
            raise InputError(root.clean, f"cannot list: {why}") from None
        finally:
            fs.invalidate_cache()  # the listing is held here, as (size, version) only
        parent, _, base = root.clean.rpartition("/")
        out = []
        for name, info in found.items():
            rel = name[len(path) + 1 :] if name.startswith(path + "/") else ""
            if info.get("type") == "directory" or name.endswith("/"):  # folder markers
                continue
            if name == path:  # the root is one object
                out.append((Item(parent, base), info))
            elif rel and not any(part.startswith(".") for part in rel.split("/")):
                out.append((Item(root.clean, rel), info))
        if not out:
            raise InputError(root.clean, "no such object, and no objects under this prefix")
        return out

    def _locate(self, item: Item) -> tuple[str, str, Root]:
        """(protocol, URL to request, the root whose options apply)."""
        root = self._given.get(item.path)
        if root is not None:  # an object given by its URL (a signed URL's query kept)
            url = root.request
        elif (root := self._given.get(item.root)) is not None:
            url = f"{root.request.partition('?')[0]}/{item.rel}"
        else:
            root, url = self._base, item.path
        return has_scheme(url) or "", url, root

    def open(self, item: Item) -> BinaryIO:
        protocol, url, root = self._locate(item)
        if protocol == "file":  # as local files are: a FIFO never blocks
            return open_input(_local_path(url))
        fs = _filesystem(protocol, root, item.root)
        path = type(fs)._strip_protocol(url)
        if fs.async_impl:
            # One GET for a small object (apply and check open items one at a time, in workers
            # that hold no listing), instead of a HEAD for its size and then a GET.
            known = self._listed.get(item, (None,))[0]
            window = _FIRST if known is None else known
            if window == 0:
                return io.BytesIO(b"")
            if window <= _LARGE:
                try:
                    data = storage_call(self._secrets, fs.cat_file, path, start=0, end=window)
                except (FileNotFoundError, PermissionError):
                    raise
                except OSError:  # a range of an empty object is "not satisfiable": open it
                    data = None
                if data is not None and (len(data) < window or known is not None):
                    return io.BytesIO(data)
            tuning = {"block_size": _BLOCK, "cache_type": "readahead"}
        else:
            tuning = {}
        f = storage_call(self._secrets, fs.open, path, "rb", **tuning)
        return Guarded(f, self._secrets)  # type: ignore[return-value]

    def manifest_root(self, root: str) -> str:
        return clean_url(root)

    def locations(self) -> list[str]:
        return [_local_path(r) for r in self._given if has_scheme(r) == "file"]

    def version(self, item: Item) -> str | None:
        known = self._listed.get(item)
        if known is not None:
            return known[1]
        protocol, url, root = self._locate(item)
        try:
            fs = _filesystem(protocol, root, item.root)
            return _stamp(fs.info(type(fs)._strip_protocol(url)))
        except Exception:
            return None

    def shards(self) -> list[Shard]:
        return plain_shards(self.items(), lambda item: str(self.version(item)))

    def stream(self, shard: Shard) -> Iterator[tuple[Item, BinaryIO | OSError]]:
        ahead = None
        batches = self._batches(list(shard.items or ()))
        try:
            ahead = self._fetch(next(batches, None))
            while ahead is not None:
                batch, future = ahead
                ahead = self._fetch(next(batches, None))  # downloads while this one is read
                try:
                    got = future.result() if future is not None else [None] * len(batch)
                except Exception as exc:
                    got = [exc] * len(batch)
                for (item, _, _), data in zip(batch, got, strict=True):
                    yield item, self._opened(item, data)
        finally:
            if ahead is not None and ahead[1] is not None:
                ahead[1].cancel()

    def _batches(self, items: list[Item]) -> Iterator[list[tuple[Item, Any, str]]]:
        """Runs of (item, its async filesystem or None: opened lazily, path) to fetch."""
        batch: list[tuple[Item, Any, str]] = []
        size = 0
        for item in items:
            protocol, url, root = self._locate(item)
            fs = None if protocol == "file" else _filesystem(protocol, root, item.root)
            known = self._listed.get(item, (None,))[0]
            if not getattr(fs, "async_impl", False) or known == 0 or (known or 0) > _LARGE:
                fs = None  # a sync filesystem, an empty object, or a large one: read by open
            cost = _LARGE if known is None else known
            full = len(batch) >= _BATCH_ITEMS or size + cost > _BATCH_BYTES
            if batch and (fs is not batch[0][1] or full):
                yield batch
                batch, size = [], 0
            batch.append((item, fs, "" if fs is None else type(fs)._strip_protocol(url)))
            size += cost if fs is not None else 0
        if batch:
            yield batch

    def _fetch(self, batch: list[tuple[Item, Any, str]] | None) -> tuple[list[Any], Any] | None:
        if batch is None or batch[0][1] is None:
            return None if batch is None else (batch, None)
        fs, paths = batch[0][1], [path for _, _, path in batch]
        coro = fs._cat_ranges(paths, 0, _LARGE, on_error="return", batch_size=len(paths))
        return batch, asyncio.run_coroutine_threadsafe(coro, fs.loop)

    def _opened(self, item: Item, data: Any) -> BinaryIO | OSError:
        known = self._listed.get(item, (None,))[0]
        if known == 0:
            return io.BytesIO(b"")
        if isinstance(data, bytes) and (len(data) < _LARGE or known == len(data)):
            return io.BytesIO(data)
        try:  # larger, unfetched, or failed (open says why, or reads an empty object)
            return self.open(item)
        except OSError as exc:
            return exc


def _local_path(url: str) -> str:
    return unquote(url.split("://", 1)[1])
