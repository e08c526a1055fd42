"""A source of generated images, for measuring compute at scales no test folder reaches (10
million images) without 10 million files: tiny 8-bit grey PGMs whose pixels are a hash of the
image's number, so every image differs and every run sees the same bytes.

Shards are whole ranges of images (``items=None``), listed only while a worker streams them:
planning 10 million images costs the driver a thousand small objects, not 10 million.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from .base import Item, Shard

__all__ = ["SyntheticSource"]

_REL = re.compile(r"(\d+)/(\d+)\.pgm")


@dataclass(frozen=True)
class SyntheticSource:
    """``images`` deterministic ``size`` × ``size`` grey PGMs in shards of ``per_shard``;
    ``seed`` changes every pixel. Items are ``<shard>/<image>.pgm`` under
    ``synthetic://<images>``, numbered with zero padding so that names sort as numbers."""

    images: int
    per_shard: int = 10_000
    size: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        if self.images < 0 or self.per_shard < 1 or not 1 <= self.size <= 4096:
            raise ValueError("images >= 0, per_shard >= 1 and 1 <= size <= 4096, please")

    @property
    def name(self) -> str:
        return f"synthetic://{self.images}"

    @property
    def _shards(self) -> int:
        return -(-self.images // self.per_shard)

    @property
    def _widths(self) -> tuple[int, int]:
        return max(6, len(str(self._shards - 1))), max(8, len(str(self.images - 1)))

    def _item(self, index: int) -> Item:
        ks, iw = self._widths
        return Item(self.name, f"{index // self.per_shard:0{ks}d}/{index:0{iw}d}.pgm")

    def image(self, index: int) -> bytes:
        """Image ``index`` as PGM bytes."""
        key = f"normstat-synthetic:{self.seed}:{self.size}:{index}".encode()
        pixels = hashlib.shake_128(key).digest(self.size * self.size)
        return b"P5\n%d %d\n255\n" % (self.size, self.size) + pixels

    def items(self) -> list[Item]:
        return [self._item(i) for i in range(self.images)]

    def open(self, item: Item) -> BinaryIO:
        match = _REL.fullmatch(item.rel)
        index = int(match[2]) if match else -1
        if item.root != self.name or not 0 <= index < self.images or item != self._item(index):
            raise FileNotFoundError(2, "no such synthetic image", item.path)
        return io.BytesIO(self.image(index))

    def manifest_root(self, root: str) -> str:
        return root

    def locations(self) -> list[str]:
        return []

    def version(self, item: Item) -> str | None:
        return f"{self.images}:{self.per_shard}:{self.size}:{self.seed}"

    def shards(self) -> list[Shard]:
        ks, _ = self._widths
        version = f"{self.images}:{self.per_shard}:{self.size}:{self.seed}"
        return [Shard(self.name, f"{k:0{ks}d}", None, version) for k in range(self._shards)]

    def stream(self, shard: Shard) -> Iterator[tuple[Item, BinaryIO | OSError]]:
        if shard.root != self.name or not shard.rel.isdigit():
            yield Item(shard.root, shard.rel), FileNotFoundError(2, "no such shard", shard.name)
            return
        k = int(shard.rel)
        for index in range(k * self.per_shard, min((k + 1) * self.per_shard, self.images)):
            yield self._item(index), io.BytesIO(self.image(index))
