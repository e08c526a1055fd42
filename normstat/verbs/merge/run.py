"""merge: manifests computed on disjoint parts of a dataset (one per machine of a batch job, one
per shard range) combined into exactly the manifest, and sidecar, of one pass over their union.

The statistics add exactly (integer sums, exact float sums: ``reduce.exact``), histograms add,
and the contributors' rows are interleaved in the order one pass lists them (``order.py``), so
the files digest and the sidecar are the union's too. Parts must agree on everything a pass
decides (schema, mode, options); the same image, or the same container, in two parts is an
overlap, refused with the first one named."""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from normstat.errors import InputError, ManifestError
from normstat.fingerprints import FingerprintRows, Fingerprints, Reference
from normstat.manifest import Stats, document
from normstat.readers import Skipped

from .order import row_key

__all__ = ["merge"]

# Options that name where the work ran, not what it computed.
_ENGINE_OPTIONS = ("device",)


def _comparable(stats: Stats) -> dict[str, Any]:
    """What parts must share. Not the schema: @1 and @2 parts with the same options differ
    only in whether a file's own nodata tag masked something, which the union's counts say;
    masks, percentiles and ranges asked for are options (``options.nodata`` absent in one part
    and given in the other is the conflict named)."""
    data = stats.data
    options = {k: v for k, v in data["options"].items() if k not in _ENGINE_OPTIONS}
    return {
        "mode": data["mode"],
        "channels": data["channels"],
        "dtype": data["dtype"],
        "max_value": data["max_value"],
        "color": data.get("color"),
        # options.bins after options.range: a part without a range is named by its range
        **{
            f"options.{k}": v for k, v in sorted(options.items(), key=lambda i: (i[0] == "bins", i))
        },
    }


def _compatible(parts: Sequence[Stats]) -> None:
    first = _comparable(parts[0])
    for part in parts[1:]:
        other = _comparable(part)
        for key in [*first, *(k for k in other if k not in first)]:
            if first.get(key) != other.get(key):
                raise ManifestError(
                    part.path,
                    f"cannot merge with {parts[0].path}: {key} is {other.get(key)!r} here, "
                    f"{first.get(key)!r} there",
                )


def _rows(k: int, fp: Fingerprints) -> Iterator[tuple[tuple[Any, ...], int, int]]:
    for i in range(len(fp)):
        yield row_key(fp.roots[int(fp.root[i])], fp.paths[i]), k, i


def _overlap(parts: Sequence[Stats], a: int, b: int, name: str) -> InputError:
    return InputError(
        parts[b].path, f"overlaps {parts[a].path}: both hold {name} (merge disjoint parts only)"
    )


def _merged_rows(parts: Sequence[Stats], fps: list[Fingerprints]) -> FingerprintRows:
    """Every part's rows in one pass's order; InputError on the first image or container two
    parts share."""
    rows = FingerprintRows(lambda root: root, references=True)
    last: tuple[tuple[Any, ...], int] | None = None
    streams = [_rows(k, fp) for k, fp in enumerate(fps)]
    refs = [_stored(fp) for fp in fps]
    for key, k, i in heapq.merge(*streams, key=lambda row: row[0]):
        if last is not None and last[0][:3] == key[:3] and last[1] != k:
            raise _overlap(parts, last[1], k, fps[k].path(i))
        last = (key, k)
        fp = fps[k]
        rows.add(
            fp.roots[int(fp.root[i])],
            fp.paths[i],
            fp.pixel_hash[i].tobytes(),
            int(fp.dhash[i]),
            int(fp.phash[i]) if fp.phash is not None else 0,
            int(fp.height[i]),
            int(fp.width[i]),
            _reference(refs[k], i),
        )
    return rows


Stored = tuple[np.ndarray, np.ndarray, np.ndarray]


def _stored(fp: Fingerprints) -> Stored:
    """A part's stored references: thumbnails (a plain view of the mapped file: a memmap costs
    microseconds per row indexed), ranges, colours."""
    assert fp.thumb is not None and fp.thumb_range is not None and fp.colour is not None
    return np.asarray(fp.thumb), fp.thumb_range, fp.colour


def _reference(stored: Stored, i: int) -> Reference:
    """Row ``i``'s reference as it was stored (float32 values: exact as floats)."""
    thumb, lohi, colour = stored
    lo, hi = lohi[i].tolist()
    r, g, b = colour[i].tolist()
    return Reference(thumb[i].tobytes(), lo, hi, (r, g, b))


def _skipped(parts: Sequence[Stats], fps: list[Fingerprints]) -> list[Skipped]:
    """The union's skipped files; one listed by two parts, or skipped by one and contributing
    to another, is an overlap."""
    seen: dict[str, int] = {}
    out: list[Skipped] = []
    for k, part in enumerate(parts):
        for s in part.skipped:
            if s["path"] in seen:
                raise _overlap(parts, seen[s["path"]], k, s["path"])
            seen[s["path"]] = k
            out.append(Skipped(s["path"], s["reason"]))
    if seen:
        for k, fp in enumerate(fps):
            for i in range(len(fp)):
                owner = seen.get(fp.path(i))
                if owner is not None and owner != k:
                    raise _overlap(parts, owner, k, fp.path(i))
    return sorted(out, key=lambda s: s.path)


def merge(parts: Sequence[Stats]) -> Stats:
    """The manifest one pass over the union of ``parts`` gives (see the module docstring)."""
    if len(parts) < 2:
        raise ValueError("merge needs at least two manifests")
    fps: list[Fingerprints] = []
    for part in parts:
        if part.fingerprints is None:
            raise ManifestError(part.path, "manifest has no fingerprints to merge")
        if part.fingerprints.phash is None:
            raise ManifestError(part.path, "sidecar predates perceptual hashes; recompute it")
        if part.fingerprints.thumb is None:
            raise ManifestError(
                part.path, "sidecar predates stored verification data; recompute it"
            )
        fps.append(part.fingerprints)
    _compatible(parts)
    moments = parts[0].partial()
    for part in parts[1:]:
        moments = moments.merge(part.partial())
    natives: Counter[str] = Counter()
    for part in parts:
        natives.update({str(k): int(v) for k, v in part.data.get("modes", {}).items()})
    skipped = _skipped(parts, fps)
    fp = _merged_rows(parts, fps).table()
    decoded = parts[0].read_mode().name if "color" in parts[0].data else None
    data = document(moments, fp, natives, skipped, dict(parts[0].data["options"]), decoded)
    return Stats(data, fp, moments.hist)
