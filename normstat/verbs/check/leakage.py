"""Test-set leakage: the report, and exact leaks (decoded pixels equal a contributor's).

Pixels are compared in the manifest's mode, so a PNG copy of a JPEG-decoded train image, or the
same image under another name, is an exact leak. Near-duplicates (re-encoded, resized, cropped,
brightness-shifted or mirrored copies) are found by candidates.py and verify.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from normstat.fileops import is_inside
from normstat.fingerprints import Fingerprints

__all__ = ["Leak", "LeakReport", "exact_leaks", "root_overlaps"]


@dataclass(frozen=True)
class Leak:
    """A test image and the contributor it matches. ``kind``: "exact" (same decoded pixels,
    score 1), "near" (a verified copy: a leak) or "look-alike" (stands out less than a copy
    does: listed for review). ``score``: the correlation of the two luma thumbnails blurred by
    one pixel; ``distinct``: how many times closer the match is than the test image's nearest
    other contributor (decide.py); ``distance``: pHash bits apart; ``transform``: what turns the
    test image into the contributor (``changes``: "re-encoded", "resized", "cropped",
    "mirrored", "brighter", "darker"; ``crop``: the box in fractions of the test image;
    ``scale``: contributor width ÷ that box's; ``gain``: brightness factor); ``row``: the
    contributor's row in the manifest's sidecar."""

    test: str
    train: str
    kind: str
    score: float
    distance: int | None = None
    mirrored: bool = False
    distinct: float | None = None
    transform: dict[str, Any] | None = None
    row: int | None = None

    @classmethod
    def of(cls, test: str, train: str, verdict: Any) -> Leak:
        """The leak a verifier's Verdict reports."""
        kind = "near" if verdict.tier == "leak" else "look-alike"
        return cls(
            test,
            train,
            kind,
            round(float(verdict.score), 6),
            verdict.distance,
            bool(verdict.transform.get("mirrored")),
            round(float(verdict.distinct), 3),
            verdict.transform,
            verdict.row,
        )


@dataclass
class LeakReport:
    """The outcome of ``check``. ``leaked``: exact copies and near-duplicates; ``look_alikes``:
    matches that stand out less than a copy, for people to look at. ``clean`` is False when
    anything leaked, or, with ``fail_on`` "look-alike", when a look-alike was found."""

    leaked: list[Leak]
    checked: int
    skipped: list[dict[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    manifest: str = ""
    rule: Any = None  # decide.Rule; None: only exact copies were checked
    fail_on: str = "leak"
    look_alikes: list[Leak] = field(default_factory=list)
    verification: str = "stored"  # or "files": references read from the train files

    @property
    def threshold(self) -> float | None:
        return None if self.rule is None else self.rule.threshold

    @property
    def clean(self) -> bool:
        return not self.leaked and not (self.fail_on == "look-alike" and self.look_alikes)

    def to_json(self) -> dict[str, Any]:
        rule = self.rule
        return {
            "schema": "normstat/leak-report@1",
            "manifest": self.manifest,
            "checked": self.checked,
            "clean": self.clean,
            "fail_on": self.fail_on,
            "threshold": self.threshold,
            "margin": None if rule is None else rule.margin,
            "look_alike_margin": None if rule is None else rule.look,
            "verification": self.verification,
            "leaked": [_leak_json(leak) for leak in self.leaked],
            "look_alikes": [_leak_json(leak) for leak in self.look_alikes],
            "skipped": self.skipped,
            "warnings": self.warnings,
        }


def _leak_json(leak: Leak) -> dict[str, Any]:
    return dict(vars(leak))


def exact_leaks(fp: Fingerprints, tests: list[tuple[str, bytes]]) -> list[Leak]:
    """Test images (display path, pixel hash) whose hash equals a contributor's (the first
    such contributor, in manifest order), joined by sorting, not by a dict of every row."""
    if not tests or not len(fp):
        return []
    kind = [("a", "<u8"), ("b", "<u8")]
    train = np.ascontiguousarray(fp.pixel_hash).view(kind).ravel()
    order = np.argsort(train, kind="stable")
    ordered = train[order]
    probe = np.frombuffer(b"".join(h for _, h in tests), dtype=kind)
    at = np.searchsorted(ordered, probe)
    leaks = []
    for (test, _), pos, key in zip(tests, at.tolist(), probe, strict=True):
        if pos < len(ordered) and ordered[pos] == key:
            row = int(order[pos])
            leaks.append(Leak(test, fp.path(row), "exact", 1.0, 0, row=row))
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
