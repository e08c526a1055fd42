"""normstat: per-channel normalization statistics for image datasets, with proof of what went in."""

from __future__ import annotations

from ._version import __version__
from .api import ApplyResult, apply, check, compute, merge
from .errors import DeviceError, InputError, ManifestError, NormstatError, OutputError
from .manifest import Stats
from .verbs.check import Leak, LeakReport

__all__ = [
    "ApplyResult",
    "DeviceError",
    "InputError",
    "Leak",
    "LeakReport",
    "ManifestError",
    "NormstatError",
    "OutputError",
    "Stats",
    "__version__",
    "apply",
    "check",
    "compute",
    "merge",
]
