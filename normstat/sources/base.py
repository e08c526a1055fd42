"""The source contract: where a split's bytes come from.

A source lists its items (sorted, de-duplicated) and opens each as a binary file object; it is a
small picklable value, so a worker process (or, later, another machine) reopens items itself.
Sources are the only code that opens input data: readers get file objects, never paths.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import BinaryIO, Protocol, runtime_checkable

__all__ = ["Item", "Source"]


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


@runtime_checkable
class Source(Protocol):
    """Where bytes come from (see the module docstring); conformance: tests/test_contracts.py."""

    @property
    def name(self) -> str:
        """The source as the user gave it, for messages."""
        ...

    def items(self) -> list[Item]:
        """Every item, sorted, each underlying file once; InputError if a root is missing."""
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
