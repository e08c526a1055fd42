"""The per-contributor table: one row of fingerprints per contributing image, in manifest order,
column-wise (what the sidecar stores and check searches)."""

from __future__ import annotations

import os
from array import array
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["FingerprintRows", "Fingerprints"]


@dataclass
class Fingerprints:
    """Column-wise fingerprint records of the contributing images, in manifest order."""

    roots: list[str]
    root: np.ndarray  # uint32 index into ``roots``
    paths: list[str]  # POSIX paths relative to their root
    pixel_hash: np.ndarray  # (N, 16) uint8
    dhash: np.ndarray  # (N,) uint64
    height: np.ndarray  # (N,) uint32
    width: np.ndarray  # (N,) uint32
    phash: np.ndarray | None = None  # (N,) uint64; absent in sidecars written before 0.2

    def __len__(self) -> int:
        return len(self.paths)

    def path(self, i: int) -> str:
        """Contributor ``i`` as reports name it: its root joined with its relative path."""
        return os.path.join(self.roots[int(self.root[i])], *self.paths[i].split("/"))


class FingerprintRows:
    """Rows appended image by image, kept compact (machine words, not Python objects) so memory
    grows by tens of bytes per image: flat from 10k to 100k images. ``manifest_root`` gives a
    root as the manifest records it (the source's own rule)."""

    def __init__(self, manifest_root: Callable[[str], str]) -> None:
        self._manifest_root = manifest_root
        self._root_ids: dict[str, int] = {}  # root as given → provisional id
        self._roots: list[str] = []
        self.root_id = array("I")
        self.rels: list[str] = []  # the items' own strings, not copies
        self.hashes = bytearray()  # 16 bytes per image
        self.dhashes = array("Q")
        self.phashes = array("Q")
        self.heights = array("I")
        self.widths = array("I")

    def add(
        self,
        root: str,
        rel: str,
        pixel_hash: bytes,
        dhash: int,
        phash: int,
        height: int,
        width: int,
    ) -> None:
        rid = self._root_ids.get(root)
        if rid is None:
            rid = self._root_ids[root] = len(self._roots)
            self._roots.append(self._manifest_root(root))
        self.root_id.append(rid)
        self.rels.append(rel)
        self.hashes += pixel_hash
        self.dhashes.append(dhash)
        self.phashes.append(phash)
        self.heights.append(height)
        self.widths.append(width)

    def table(self) -> Fingerprints:
        roots = sorted(set(self._roots))
        index = np.array([roots.index(r) for r in self._roots], dtype=np.uint32)
        n = len(self.rels)
        return Fingerprints(
            roots=roots,
            root=index[np.frombuffer(self.root_id, dtype=np.uint32)] if n else index[:0],
            paths=self.rels,
            pixel_hash=np.frombuffer(bytes(self.hashes), dtype=np.uint8).reshape(n, 16),
            dhash=np.frombuffer(self.dhashes, dtype=np.uint64).copy(),
            height=np.frombuffer(self.heights, dtype=np.uint32).copy(),
            width=np.frombuffer(self.widths, dtype=np.uint32).copy(),
            phash=np.frombuffer(self.phashes, dtype=np.uint64).copy(),
        )
