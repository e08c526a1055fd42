"""The source contract: where a split's bytes come from.

A source lists its items (sorted, de-duplicated; a container's members take its place in that
order, in the order the container stores them) and opens each as a binary file object; it is a
small picklable value, so a worker process (or another machine) reopens items itself. Sources are
the only code that opens input data: readers get file objects, never paths.

compute plans its work as ``shards``: runs of items, or whole containers (a tar or parquet
shard) whose items only the worker lists, so the plan never depends on the number of workers and
a driver never holds one object per image of a container. A shard's ``version`` changes when any
of its bytes may have, which is what makes a stored partial of it reusable.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol, runtime_checkable

__all__ = ["SHARD_ITEMS", "Item", "Shard", "Source", "plain_shards", "stream_items"]

SHARD_ITEMS = 256  # items per shard of plain files: the unit of progress, partials and retries


@dataclass(frozen=True, slots=True)  # slots: 100k items take 10 MB less
class Item:
    """One file of a source: ``root`` as the source names it, ``rel`` the POSIX path under it
    (what apply mirrors and the sidecar stores). Items sort by relative path first, so splits
    spread over several roots interleave."""

    root: str
    rel: str

    def __lt__(self, other: Item) -> bool:
        return (self.rel, self.root) < (other.rel, other.root)

    @property
    def path(self) -> str:
        """The name people see in reports and in ``skipped`` (root and rel joined as
        ``os.path.join`` joins them; on POSIX without splitting, as this runs per file)."""
        if os.sep != "/":
            return os.path.join(self.root, *self.rel.split("/"))
        if not self.root:
            return self.rel
        return self.root + self.rel if self.root.endswith("/") else f"{self.root}/{self.rel}"


@dataclass(frozen=True)
class Shard:
    """One unit of compute's work. ``items`` given: a run of plain files; None: the container
    ``rel`` under ``root`` (a tar or parquet file), whose items the source lists when streaming
    it. ``version`` identifies the bytes (sizes and modification times, or an ETag)."""

    root: str
    rel: str
    items: tuple[Item, ...] | None
    version: str

    @property
    def name(self) -> str:
        """For messages: the container, or the first file of the run."""
        if self.items:
            return self.items[0].path
        return Item(self.root, self.rel).path


def plain_shards(items: list[Item], version: Callable[[Item], str]) -> list[Shard]:
    """Consecutive runs of ``SHARD_ITEMS`` items, versioned by their items' versions."""
    shards = []
    for i in range(0, len(items), SHARD_ITEMS):
        run = tuple(items[i : i + SHARD_ITEMS])
        digest = hashlib.sha256()
        for item in run:
            line = f"{item.root}\0{item.rel}\0{version(item)}\n"
            digest.update(line.encode("utf-8", "surrogateescape"))
        shards.append(Shard(run[0].root, run[0].rel, run, digest.hexdigest()[:32]))
    return shards


def stream_items(source: Source, shard: Shard) -> Iterator[tuple[Item, BinaryIO | OSError]]:
    """A run of plain items, each opened in turn (an OSError in place of one that cannot be)."""
    for item in shard.items or ():
        try:
            yield item, source.open(item)
        except OSError as exc:
            yield item, exc


@runtime_checkable
class Source(Protocol):
    """Where bytes come from (see the module docstring); conformance: tests/test_contracts.py."""

    @property
    def name(self) -> str:
        """The source as the user gave it, for messages."""
        ...

    def items(self) -> list[Item]:
        """Every item, sorted (a container's members in their stored order, where the container
        sorts), each underlying file once; InputError if a root is missing."""
        ...

    def open(self, item: Item) -> BinaryIO:
        """A readable, seekable binary file object; OSError if the item cannot be read."""
        ...

    def manifest_root(self, root: str) -> str:
        """``root`` as the manifest records it (local folders: absolute), and as ``for_roots``
        takes it back to reopen contributors."""
        ...

    def locations(self) -> list[str]:
        """The local paths this source reads, for safety checks (apply never writes inside
        them) and warnings; empty for sources that read no local folder."""
        ...

    def version(self, item: Item) -> str | None:
        """A stamp that changes when the item's bytes may have (size and mtime, an ETag); None
        when it cannot be read. apply keeps an output only while its source's stamp holds."""
        ...

    def shards(self) -> list[Shard]:
        """compute's plan: every item once, in ``items()`` order, in shards (``plain_shards``
        for plain files); the same whatever the number of workers."""
        ...

    def stream(self, shard: Shard) -> Iterator[tuple[Item, BinaryIO | OSError]]:
        """The shard's items in order, each with its bytes opened (``stream_items`` for plain
        runs; a container streamed front to back), or the OSError that stopped it; the caller
        closes each file object before taking the next."""
        ...
