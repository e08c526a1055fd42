"""Containers inside a byte source: WebDataset tar shards (``tar.py``) and parquet shards
(``parquet.py``) read as the images they hold; every other item passes through untouched.

A tar member is ``Item(root, "shard.tar/member")`` and a parquet row ``Item(root,
"shard.parquet[row]")``, so reports name the member and apply mirrors it under OUT. Items keep
the inner order, each container expanded in place in its own order (a tar's members are not
sorted: the order is the shard's). compute plans a container as one shard, which its worker
lists while streaming it; check and apply open members one by one through a per-process index.

A folder may be named like a container (``photos.tar/``): a name is read as a member only when
its container opens as a file, which is looked up once per process.
"""

from __future__ import annotations

import errno
import re
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from normstat.fileops import NotRegularFile

from . import parquet, tar
from .base import Item, Shard, Source, plain_shards

__all__ = ["ContainerSource", "container_kind"]

_ROW = re.compile(r"(.*\.parquet)\[(\d+)\]", re.IGNORECASE | re.DOTALL)


def container_kind(rel: str) -> str | None:
    """``tar`` or ``parquet`` for an item named like a container (case-insensitive)."""
    low = rel[-8:].lower()
    if low.endswith(".tar"):
        return "tar"
    return "parquet" if low == ".parquet" else None


def _candidates(rel: str) -> list[tuple[str, str, str]]:
    """(kind, container rel, key) for each way ``rel`` can name a member, outermost first."""
    if ".tar/" not in rel.lower() and not rel.endswith("]"):
        return []  # a plain file: the fast path for every item of a folder
    out = []
    parts = rel.split("/")
    for i, part in enumerate(parts[:-1]):
        if part.lower().endswith(".tar"):
            out.append(("tar", "/".join(parts[: i + 1]), "/".join(parts[i + 1 :])))
    match = _ROW.fullmatch(rel)
    if match:
        out.append(("parquet", match[1], match[2]))
    return out


_IS_FILE: OrderedDict[tuple[str, str, str], bool] = OrderedDict()


def _is_file(inner: Source, container: Item, version: str | None) -> bool:
    """Whether ``container`` opens as a file (not a folder named like one): cached."""
    key = (container.root, container.rel, str(version))
    known = _IS_FILE.get(key)
    if known is None:
        try:
            inner.open(container).close()
            known = True
        except (NotRegularFile, IsADirectoryError):
            known = False
        except (FileNotFoundError, NotADirectoryError):
            return False  # missing, or an object store's prefix: the plain open says which
        except OSError:  # unreadable: opening the member reports why
            return True
        if version is not None:
            _IS_FILE[key] = known
            while len(_IS_FILE) > 1024:
                _IS_FILE.popitem(last=False)
    return known


@dataclass(frozen=True)
class ContainerSource:
    """``inner`` with its tar and parquet files read as the images they hold; ``column``
    names the image column of parquet files (default: found in each file)."""

    inner: Source
    column: str | None = None

    @property
    def name(self) -> str:
        return self.inner.name

    def manifest_root(self, root: str) -> str:
        return self.inner.manifest_root(root)

    def locations(self) -> list[str]:
        return self.inner.locations()

    def items(self) -> list[Item]:
        out: list[Item] = []
        for item in self.inner.items():
            kind = container_kind(item.rel)
            if kind == "tar":
                out.extend(tar.members(self.inner, item))
            elif kind == "parquet":
                out.extend(parquet.members(self.inner, item, self.column))
            else:
                out.append(item)
        return out

    def shards(self) -> list[Shard]:
        shards: list[Shard] = []
        run: list[Item] = []

        def version(item: Item) -> str:
            return str(self.inner.version(item))

        for item in self.inner.items():
            kind = container_kind(item.rel)
            if kind is None:
                run.append(item)
                continue
            shards += plain_shards(run, version)
            run = []
            stamp = version(item)
            if kind == "parquet" and self.column is not None:
                stamp = f"{stamp}:{self.column}"  # another column: other images
            shards.append(Shard(item.root, item.rel, None, stamp))
        return shards + plain_shards(run, version)

    def stream(self, shard: Shard) -> Iterator[tuple[Item, BinaryIO | OSError]]:
        if shard.items is not None:
            return self.inner.stream(shard)
        container = Item(shard.root, shard.rel)
        if container_kind(shard.rel) == "parquet":
            return parquet.stream(self.inner, container, self.column)
        return tar.stream(self.inner, container)

    def _locate(self, item: Item) -> tuple[str, Item, str, str | None] | None:
        """(kind, container, key, the container's version) of a member; None: a plain item."""
        for kind, rel, key in _candidates(item.rel):
            container = Item(item.root, rel)
            version = self.inner.version(container)  # looked up once: remotely, a request
            if _is_file(self.inner, container, version):
                return kind, container, key, version
        return None

    def open(self, item: Item) -> BinaryIO:
        found = self._locate(item)
        if found is None:
            kind = container_kind(item.rel)
            why = None
            if kind == "tar":
                why = tar.container_error(self.inner, item)
            elif kind == "parquet":
                why = parquet.container_error(self.inner, item, self.column)
            if why is not None:  # the container listed in place of its members: why
                raise OSError(errno.EIO, why)
            return self.inner.open(item)
        kind, container, key, version = found
        if kind == "parquet":
            return parquet.open_row(self.inner, container, int(key), self.column, version)
        return tar.open_member(self.inner, container, key, version)

    def version(self, item: Item) -> str | None:
        found = self._locate(item)
        if found is None:
            return self.inner.version(item)
        kind, _, key, stamp = found
        if stamp is None:
            return None
        if kind == "parquet" and self.column:
            stamp = f"{stamp}:{self.column}"
        return f"{stamp}:{key}"
