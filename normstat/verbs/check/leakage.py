"""Test-set leakage: the report, and exact leaks (decoded pixels equal a contributor's).

Pixels are compared in the manifest's mode, so a PNG copy of a JPEG-decoded train image, or the
same image under another name, is an exact leak. Near-duplicates (re-encoded, resized, cropped,
brightness-shifted or mirrored copies) are found by candidates.py and verify.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from normstat.fileops import is_inside
from normstat.fingerprints import Fingerprints

__all__ = ["Leak", "LeakReport", "exact_leaks", "root_overlaps"]


@dataclass(frozen=True)
class Leak:
    """One leaked test image and the train image it matches. ``kind`` is "exact" (same pixels,
    score 1) or "near" (score: the pixel correlation that verified it; ``distance``: pHash bits
    apart; ``mirrored``: the train image is a mirror image of the test image)."""

    test: str
    train: str
    kind: str
    score: float
    distance: int | None = None
    mirrored: bool = False


@dataclass
class LeakReport:
    """The outcome of ``check``; ``clean`` is False when any test image leaked."""

    leaked: list[Leak]
    checked: int
    skipped: list[dict[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    manifest: str = ""
    threshold: float | None = None  # near-duplicate score threshold; None: only exact checked

    @property
    def clean(self) -> bool:
        return not self.leaked

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": "normstat/leak-report@1",
            "manifest": self.manifest,
            "checked": self.checked,
            "clean": self.clean,
            "threshold": self.threshold,
            "leaked": [vars(leak) for leak in self.leaked],
            "skipped": self.skipped,
            "warnings": self.warnings,
        }


def exact_leaks(fp: Fingerprints, tests: list[tuple[str, bytes]]) -> list[Leak]:
    """Test images (display path, pixel hash) whose hash equals a contributor's."""
    index: dict[bytes, int] = {}
    for i, row in enumerate(fp.pixel_hash):
        index.setdefault(bytes(row), i)
    leaks = []
    for test, h in tests:
        match = index.get(h)
        if match is not None:
            leaks.append(Leak(test, fp.path(match), "exact", 1.0, 0))
    return leaks


def root_overlaps(train_roots: list[str], test_srcs: list[str]) -> list[str]:
    """Warnings for test sources inside a train source root (or train roots inside a test one)."""
    out = []
    for test in test_srcs:
        for root in train_roots:
            if is_inside(test, root):
                out.append(f"test source {test} lies inside the statistics' source {root}")
            elif is_inside(root, test):
                out.append(f"the statistics' source {root} lies inside test source {test}")
    return out
