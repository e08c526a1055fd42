"""The manifest document: every key of STATS.json, built from the folded statistics, the
contributor table, the skips and the options (key order is part of the format people read)."""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import datetime, timezone
from typing import Any

from normstat._version import __version__
from normstat.fingerprints import Fingerprints
from normstat.readers import Skipped
from normstat.reduce import DatasetMoments

from .validate import SCHEMA

__all__ = ["document", "files_digest"]


def files_digest(fp: Fingerprints) -> str:
    """sha256 of the sorted contributors: relative path and pixel hash, one line each."""
    digest = hashlib.sha256()
    for rel, h in zip(fp.paths, fp.pixel_hash, strict=True):
        digest.update(f"{rel}\t{h.tobytes().hex()}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def document(
    moments: DatasetMoments,
    fp: Fingerprints,
    natives: Counter[str],
    skipped: list[Skipped],
    options: dict[str, Any],
) -> dict[str, Any]:
    """The manifest's JSON document; ``sidecar`` is filled in when it is saved."""
    mode, n = moments.mode, moments.images
    summary = moments.summary()
    return {
        "schema": SCHEMA,
        "tool": f"normstat {__version__}",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "options": options,
        "sources": fp.roots,
        "mode": mode.name,
        "channels": list(mode.channels),
        "dtype": mode.dtype,
        "max_value": mode.max_value,
        "images": n,
        "pixels": moments.moments[0].count,
        **summary,
        "modes": dict(sorted(natives.items())),
        "converted": {k: v for k, v in sorted(natives.items()) if k != mode.name},
        "skipped": [{"path": s.path, "reason": s.reason} for s in skipped],
        "files": {"count": n, "sha256": files_digest(fp)},
        "state": moments.to_state(),
        "sidecar": None,
    }
