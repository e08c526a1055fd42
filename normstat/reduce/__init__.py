"""Numbers only (no paths, no manifest): exact moments and their merge, histograms and
percentiles, the batch reducer written against an array namespace, and where it runs."""

from __future__ import annotations

from .dataset import DatasetMoments
from .histograms import PERCENTILES, histogram, histograms, percentiles_from_histogram
from .moments import (
    FloatMoments,
    IntMoments,
    Partial,
    float_partial,
    int_partial,
    int_partials,
)

__all__ = [
    "PERCENTILES",
    "DatasetMoments",
    "FloatMoments",
    "IntMoments",
    "Partial",
    "float_partial",
    "histogram",
    "histograms",
    "int_partial",
    "int_partials",
    "percentiles_from_histogram",
]
