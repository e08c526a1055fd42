"""Sources: where bytes come from. Local folders, files and @lists (``local.py``), fsspec URLs
(``remote.py``: s3://, gs://, az://, https://, file://), and the containers inside either:
WebDataset tar shards and parquet shards (``containers.py``). One contract, in ``base.py``."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .base import SHARD_ITEMS, Item, Shard, Source, plain_shards, stream_items
from .local import LocalSource, has_scheme

__all__ = [
    "SCHEMES",
    "SHARD_ITEMS",
    "Item",
    "LocalSource",
    "Shard",
    "Source",
    "expand_braces",
    "for_roots",
    "plain_shards",
    "resolve",
    "stream_items",
]

SourceSpec = str | os.PathLike[str] | Source

# URL scheme → factory of a source of one's own that reopens contributors recorded under such
# roots (consulted before fsspec's protocols).
SCHEMES: dict[str, Callable[[list[str]], Source]] = {}


def expand_braces(path: str) -> list[str]:
    """``shard-{00000..00127}.tar`` → its 128 names (bash brace rules, as WebDataset takes
    them); a local path that exists as written is taken as written."""
    if "{" not in path or (not has_scheme(path) and os.path.lexists(path)):
        return [path]
    from braceexpand import braceexpand

    return list(braceexpand(path))


def _byte_source(paths: list[str], storage_options: Mapping[str, Any] | None) -> Source:
    urls = [p for p in paths if has_scheme(p)]
    if not urls:  # storage options may be for the contributors a manifest names (check)
        return LocalSource(tuple(paths))
    if len(urls) != len(paths):
        raise ValueError("give either local paths or URLs, not both")
    from .remote import FsspecSource

    return FsspecSource(tuple(urls), dict(storage_options or {}))


def _with_containers(inner: Source, column: str | None = None) -> Source:
    from .containers import ContainerSource

    return ContainerSource(inner, column)


def resolve(
    srcs: SourceSpec | Sequence[SourceSpec],
    storage_options: Mapping[str, Any] | None = None,
    column: str | None = None,
) -> Source:
    """A Source given as is; else paths or URLs (folders, files, ``@list.txt``, brace patterns),
    tar and parquet shards among them read as the images they hold (``column``: a parquet
    shard's image column)."""
    if isinstance(srcs, Source):
        return srcs
    specs = [srcs] if isinstance(srcs, str | os.PathLike) else list(srcs)
    if len(specs) == 1 and isinstance(specs[0], Source):
        return specs[0]
    if any(isinstance(s, Source) for s in specs):
        raise ValueError("give one Source object, or paths")
    paths = [p for s in specs for p in expand_braces(os.fspath(s))]  # type: ignore[arg-type]
    return _with_containers(_byte_source(paths, storage_options), column)


def for_roots(
    roots: list[str],
    storage_options: Mapping[str, Any] | None = None,
    column: str | None = None,
) -> Source:
    """The source that opens contributors recorded under ``roots`` (a manifest's ``sources``):
    remote roots through fsspec, containers' members through their container (``column``:
    the parquet image column compute was given)."""
    for root in roots:
        scheme = has_scheme(root)
        if scheme and scheme in SCHEMES:
            return SCHEMES[scheme](roots)
    urls = [r for r in roots if has_scheme(r)]
    if urls:
        from .remote import FsspecSource

        inner: Source = FsspecSource((), dict(storage_options or {}))
    else:
        inner = LocalSource(())
    return _with_containers(inner, column)
