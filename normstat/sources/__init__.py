"""Sources: where bytes come from (folders, files, @lists today; object storage and shards are
further implementations of the same contract, in ``base.py``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from .base import Item, Source
from .local import LocalSource, has_scheme

__all__ = ["SCHEMES", "Item", "LocalSource", "Source", "for_roots", "resolve"]

SourceSpec = str | os.PathLike[str] | Source

# URL scheme → factory of the source that reopens contributors recorded under such roots.
SCHEMES: dict[str, Callable[[list[str]], Source]] = {}


def resolve(srcs: SourceSpec | Sequence[SourceSpec]) -> Source:
    """A Source given as is, or the local source over paths (folders, files, ``@list.txt``)."""
    if isinstance(srcs, Source):
        return srcs
    if isinstance(srcs, str | os.PathLike):
        return LocalSource((os.fspath(srcs),))
    specs = list(srcs)
    if len(specs) == 1 and isinstance(specs[0], Source):
        return specs[0]
    if any(isinstance(s, Source) for s in specs):
        raise ValueError("give one Source object, or paths")
    return LocalSource(tuple(os.fspath(s) for s in specs))  # type: ignore[arg-type]


def for_roots(roots: list[str]) -> Source:
    """The source that opens contributors recorded under ``roots`` (a manifest's ``sources``)."""
    for root in roots:
        scheme = has_scheme(root)
        if scheme and scheme in SCHEMES:
            return SCHEMES[scheme](roots)
    return LocalSource(())
