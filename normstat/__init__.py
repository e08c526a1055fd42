"""normstat: per-channel normalization statistics for image datasets, with proof of what went in."""

from __future__ import annotations

__version__ = "0.2.0"

from .api import (
    ApplyResult,
    apply,
    check,
    compute,
)
from .errors import DeviceError, InputError, ManifestError, NormstatError, OutputError
from .leakage import Leak, LeakReport
from .manifest import Stats

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
]
