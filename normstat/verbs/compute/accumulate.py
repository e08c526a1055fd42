"""Folds per-image records into the dataset's statistics, in item order (hence identical results
for any worker count), then makes the manifest from them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np

from normstat.fingerprints import FingerprintRows
from normstat.manifest import Stats, document
from normstat.modes import Mode
from normstat.readers import Skipped
from normstat.reduce import DatasetMoments
from normstat.reduce.color import lab_mode
from normstat.reduce.covariance import CrossMoments
from normstat.verbs.common import Skips

from .records import ImageRecord

__all__ = ["Accumulator"]


class Accumulator:
    """The statistics (``moments``), the per-native-mode counts, the skips and the contributor
    rows of one pass in ``mode``; with ``color`` "lab" the statistics are of the images'
    CIELAB values (mode LAB;F) while ``mode`` stays the one images are read in."""

    def __init__(
        self,
        mode: Mode,
        strict: bool,
        manifest_root: Callable[[str], str],
        covariance: bool = False,
        float_bins: int | None = None,
        color: str | None = None,
    ) -> None:
        self.mode = mode
        self.color = color
        reduced = lab_mode() if color else mode  # the mode of the values reduced
        hist = None  # integer modes: their exact histogram; float ones: over --range, if given
        if float_bins is not None and not reduced.integer:
            hist = np.zeros((len(reduced.channels), float_bins), dtype=np.int64)
        cross = CrossMoments(len(reduced.channels), reduced.integer) if covariance else None
        self.moments = DatasetMoments(reduced, hist=hist, cross=cross)
        self.natives: Counter[str] = Counter()
        self.skips = Skips(strict)
        self.rows = FingerprintRows(manifest_root, references=True)

    @property
    def images(self) -> int:
        return self.moments.images

    def add(self, root: str, rel: str, rec: ImageRecord) -> None:
        self.moments.add(rec.moments, rec.height * rec.width, rec.products)
        self.natives[rec.native] += 1
        self.rows.add(
            root, rel, rec.pixel_hash, rec.dhash, rec.phash, rec.height, rec.width, rec.ref
        )

    def add_outcome(self, root: str, rel: str, outcome: ImageRecord | Skipped | None) -> None:
        """An image's record, or its skip (InputError when strict); None adds nothing."""
        if isinstance(outcome, Skipped):
            self.skips.add(outcome)
        elif outcome is not None:
            self.add(root, rel, outcome)

    def add_histogram(self, hist: np.ndarray | None) -> None:
        self.moments.add_histogram(hist)

    def finish(self, options: dict[str, Any]) -> Stats:
        fp = self.rows.table()
        decoded = self.mode.name if self.color else None
        data = document(self.moments, fp, self.natives, self.skips.sorted(), options, decoded)
        return Stats(data, fp, self.moments.hist)
