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

from .ranges import percentiles_of, range_block, range_of
from .validate import SCHEMA, SCHEMA_V2, lab_key

__all__ = ["document", "files_digest", "schema_of"]

# Options whose statistics an @1 reader would misread: masks, chosen percentiles, a float range.
V2_OPTIONS = ("nodata", "percentiles", "range")
NO_FLOAT_PERCENTILES = "float data have no histogram, hence no percentiles"


def schema_of(moments: DatasetMoments, options: dict[str, Any]) -> str:
    """@2 when the statistics need its per-channel counts or chosen percentiles (masks asked
    for, or a file's own nodata tag that masked something); else the @1 document as before, so
    unmasked manifests stay readable by every normstat."""
    if options.get("alpha") == "mask" or any(k in options for k in V2_OPTIONS):
        return SCHEMA_V2
    return SCHEMA_V2 if moments.masked else SCHEMA


def files_digest(fp: Fingerprints) -> str:
    """sha256 of the sorted contributors: relative path and pixel hash, one line each."""
    digest = hashlib.sha256()
    paths = iter(fp.paths)
    width = 2 * fp.pixel_hash.shape[1]  # hex digits per hash
    # In blocks read from the spill file, not rows of its map: at 10M contributors a map
    # touched row by row stays resident (~160 MB) until the run ends.
    for block in fp.blocks("pixel_hash"):
        hexes = block.tobytes().hex()
        for i in range(0, len(hexes), width):
            line = f"{next(paths)}\t{hexes[i : i + width]}\n"
            digest.update(line.encode("utf-8", "surrogateescape"))
    if next(paths, None) is not None:
        raise ValueError("more contributor paths than pixel hashes")
    return digest.hexdigest()


def document(
    moments: DatasetMoments,
    fp: Fingerprints,
    natives: Counter[str],
    skipped: list[Skipped],
    options: dict[str, Any],
    decoded: str | None = None,
) -> dict[str, Any]:
    """The manifest's JSON document; ``sidecar`` is filled in when it is saved. ``decoded``:
    the RGB mode images were read in when the statistics are of their CIELAB values."""
    mode, n = moments.mode, moments.images
    color = {} if decoded is None else {"color": lab_key(decoded)}
    schema = schema_of(moments, options)
    qs = percentiles_of(options)
    summary = moments.summary(qs)
    spec = None if mode.integer else range_of(options)
    ranged: dict[str, Any] = {}
    if spec is not None and moments.hist is not None:
        ranged["range"], summary["raw"]["percentiles"] = range_block(moments.hist, spec, qs)
    valid: dict[str, Any] = {}
    if schema == SCHEMA_V2:
        valid = {
            "pixels_valid": [m.count for m in moments.moments],
            "images_valid": list(moments.images_valid),
        }
        if not mode.integer and spec is None:  # said, not left to be guessed from a missing key
            valid["note"] = NO_FLOAT_PERCENTILES
    return {
        "schema": schema,
        "tool": f"normstat {__version__}",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "options": options,
        "sources": fp.roots,
        "mode": mode.name,
        "channels": list(mode.channels),
        "dtype": mode.dtype,
        "max_value": mode.max_value,
        **color,
        "images": n,
        "pixels": moments.pixels,
        **valid,
        **summary,
        **ranged,
        "modes": dict(sorted(natives.items())),
        "converted": {k: v for k, v in sorted(natives.items()) if k != (decoded or mode.name)},
        "skipped": [{"path": s.path, "reason": s.reason} for s in skipped],
        "files": {"count": n, "sha256": files_digest(fp)},
        "state": moments.to_state(counts=schema == SCHEMA_V2),
        "sidecar": None,
    }
