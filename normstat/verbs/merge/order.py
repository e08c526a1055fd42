"""The order one compute pass lists its contributors in, as a key of each row's root and name,
so that merge can interleave parts into it.

compute reduces the source's items in order (sorted by relative path, then root), a container's
images in place of the container (``shard.tar/member``, ``file.parquet[row]``, in the
container's own order), and the images of ``.npy`` stacks (``stack.npy[i]``) after every other
file. The key orders rows across parts; rows with equal keys (one container's images) keep the
order of their part, which is the container's (a container belongs to one part: the same
container in two parts is an overlap)."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["row_key"]

_INDEXED = re.compile(r"^(.*)\[(\d+)\]$")
_TAR = re.compile(r"^(.*?\.tar)/", re.IGNORECASE)


def row_key(root: str, rel: str) -> tuple[Any, ...]:
    """(group, the name compute sorted, root, index within a stack): group 0 for files and
    containers' images, 1 for the images of stacks."""
    indexed = _INDEXED.match(rel)
    if indexed and not indexed[1].lower().endswith(".parquet"):
        return (1, indexed[1], root, int(indexed[2]))
    if indexed:  # a parquet shard's row: ordered with the shard
        return (0, indexed[1], root, 0)
    tar = _TAR.match(rel)
    if tar:
        return (0, tar[1], root, 0)
    return (0, rel, root, 0)
