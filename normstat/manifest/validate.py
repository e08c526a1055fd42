"""Validation of a loaded manifest document: the stable contract, checked in one place."""

from __future__ import annotations

import math
import os
from typing import Any

from normstat.errors import ManifestError

__all__ = ["REQUIRED_KEYS", "SCHEMA", "validate"]

SCHEMA = "normstat/stats@1"
REQUIRED_KEYS = ("schema", "mean", "std", "channels", "images", "skipped", "mode", "sidecar")


def _finite_list(data: dict[str, Any], key: str, n: int, path: str) -> None:
    values = data[key]
    if not isinstance(values, list) or len(values) != n:
        raise ManifestError(path, f"'{key}' must be a list of {n} numbers, one per channel")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise ManifestError(path, f"'{key}' holds a non-finite or non-numeric value: {v!r}")


def validate(data: Any, path: str) -> None:
    """Check the stable contract: schema, keys, one finite mean and positive std per channel."""
    if not isinstance(data, dict):
        raise ManifestError(path, "manifest is not a JSON object")
    schema = data.get("schema")
    if not isinstance(schema, str) or not schema.startswith("normstat/stats@"):
        raise ManifestError(path, f"not a normstat manifest (schema {schema!r})")
    if schema != SCHEMA:
        raise ManifestError(path, f"unsupported schema {schema!r}; this normstat reads {SCHEMA!r}")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise ManifestError(path, f"manifest lacks key(s): {', '.join(missing)}")
    channels = data["channels"]
    if not isinstance(channels, list) or not channels:
        raise ManifestError(path, "'channels' must be a non-empty list")
    n = len(channels)
    _finite_list(data, "mean", n, path)
    _finite_list(data, "std", n, path)
    if any(s < 0 for s in data["std"]):
        raise ManifestError(path, "'std' holds a negative value")
    if not isinstance(data["images"], int) or data["images"] < 0:
        raise ManifestError(path, "'images' must be a non-negative integer")
    if not isinstance(data["skipped"], list):
        raise ManifestError(path, "'skipped' must be a list")
    sidecar = data["sidecar"]
    if not isinstance(sidecar, dict) or not isinstance(sidecar.get("path"), str):
        raise ManifestError(path, "'sidecar' must name the fingerprint file")
    if os.path.isabs(sidecar["path"]) or ".." in sidecar["path"].split("/"):
        raise ManifestError(path, "'sidecar' path must stay beside the manifest")
