"""Partial files (``--partials-dir``): each finished shard's per-image records, kept so that a
rerun after a crash reduces only the shards it does not find.

A partial is named by a digest of everything its result depends on: normstat's version, the
dataset mode, the read options, the shard's identity and its source's version stamp (sizes and
modification times, or ETags). A changed file, option or plan gives another digest, so a stale
partial is never used; one that cannot be read back exactly is redone. Partials are JSON (never
pickle: a partials folder may be shared, and loading one must not run code), written whole under
a temporary name and renamed, by the driver as results arrive in order.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from normstat._version import __version__
from normstat.errors import OutputError
from normstat.fileops import atomic_write_bytes, open_regular
from normstat.fingerprints import Reference
from normstat.fingerprints.reference import REF_BYTES
from normstat.options import RANGE_BINS, ComputeOptions, MaskOptions
from normstat.readers import Skipped
from normstat.reduce import FloatMoments, IntMoments
from normstat.sources import Item, Shard

from .arrays import ArrayTask
from .records import ChunkResult, ImageRecord

__all__ = ["FORMAT", "Partials"]

FORMAT = "normstat/partial@2"  # @2: records carry their reference (@1 partials are redone)
MAX_PARTIAL_BYTES = 256 << 20
_F32_MAX = float(np.finfo(np.float32).max)


@dataclass
class Partials:
    """The partial files under ``folder`` (a local folder or an fsspec URL); ``kept`` and
    ``made`` count what this run found and wrote."""

    folder: str
    storage_options: dict[str, Any] = field(default_factory=dict)
    kept: int = 0
    made: int = 0
    redone: int = 0

    def __post_init__(self) -> None:
        if not self._remote():
            try:
                os.makedirs(self.folder, exist_ok=True)
            except OSError as exc:
                raise OutputError(self.folder, f"cannot create: {exc.strerror or exc}") from None
            if not os.path.isdir(self.folder):
                raise OutputError(self.folder, "is not a folder")

    def _remote(self) -> bool:
        return "://" in self.folder

    def _path(self, key: str) -> str:
        return f"{self.folder.rstrip('/')}/{key}.json"

    def key(self, kind: str, mode: str, opts: ComputeOptions | None, chunk: Any) -> str:
        """The digest naming ``chunk``'s partial (a Shard, or a batch of a stack)."""
        ident: dict[str, Any] = {"format": FORMAT, "normstat": __version__, "kind": kind}
        ident["mode"] = mode
        if isinstance(chunk, Shard):
            read = opts.read if opts else None
            ident["read"] = None if read is None else [read.max_pixels, read.keep_alpha]
            ident["npy_layout"] = None if read is None else read.npy_layout
            items = None if chunk.items is None else [[i.root, i.rel] for i in chunk.items]
            ident["shard"] = [chunk.root, chunk.rel, chunk.version, items]
            if opts is not None:
                mask = opts.mask if opts.mask.requested else None
                lohi = opts.value_range
                spec = None if lohi is None else (*lohi, RANGE_BINS)
                _options_ident(ident, mask, opts.covariance, spec, opts.color)
        else:
            assert isinstance(chunk, ArrayTask)
            version = chunk.source.version(chunk.item)
            probe = repr(chunk.probe)
            ident["stack"] = [chunk.item.root, chunk.item.rel, version, probe]
            ident["range"] = [chunk.start, chunk.stop, chunk.reduce]
            r = chunk.value_range
            spec = None if r is None else (r.lo, r.hi, r.bins)
            _options_ident(ident, chunk.mask, chunk.covariance, spec, chunk.color)
        text = json.dumps(ident, sort_keys=True, ensure_ascii=True)
        return hashlib.sha256(text.encode()).hexdigest()[:40]

    def exists(self, key: str) -> bool:
        path = self._path(key)
        if self._remote():
            import fsspec

            fs, inner = fsspec.core.url_to_fs(path, **self.storage_options)
            return bool(fs.exists(inner))
        return os.path.isfile(path)

    def load(self, key: str) -> ChunkResult | None:
        """The kept result, or None: absent, or not exactly readable (then it is redone)."""
        try:
            data = self._read(self._path(key))
        except FileNotFoundError:
            return None
        except OSError:
            self.redone += 1
            return None
        try:
            doc = json.loads(data)
            if doc.get("format") != FORMAT or doc.get("key") != key:
                raise ValueError("not this partial")
            result = _decode(doc)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            self.redone += 1
            return None
        self.kept += 1
        return result

    def save(self, key: str, result: ChunkResult) -> None:
        data = json.dumps(_encode(key, result), separators=(",", ":")).encode()
        path = self._path(key)
        if self._remote():
            import fsspec

            with fsspec.open(path, "wb", **self.storage_options) as fh:
                fh.write(data)
        else:
            atomic_write_bytes(path, data)
        self.made += 1

    def _read(self, path: str) -> bytes:
        if self._remote():
            import fsspec

            with fsspec.open(path, "rb", **self.storage_options) as fh:
                data: bytes = fh.read(MAX_PARTIAL_BYTES + 1)
        else:
            with open_regular(path) as fh:
                data = fh.read(MAX_PARTIAL_BYTES + 1)
        if len(data) > MAX_PARTIAL_BYTES:
            raise OSError("partial too large")
        return data


def _options_ident(
    ident: dict[str, Any],
    mask: MaskOptions | None,
    covariance: bool,
    spec: tuple[float, float, int] | None,
    color: str | None,
) -> None:
    """The options a chunk's records depend on, each entered only when asked for, so that the
    partials made without it keep their names: the mask, the covariance, the --range (LO, HI,
    bins) and the color."""
    if mask is not None:
        ident["masks"] = [_mask_ident(mask), None]
    if spec is not None:
        lo, hi, bins = spec
        ident["value_range"] = [repr(lo), repr(hi), bins]
    if covariance:
        ident["covariance"] = True
    if color:
        ident["color"] = color


def _mask_ident(mask: MaskOptions) -> list[Any]:
    """What a mask changes in a partial (only present when a mask is asked for, so
    the partials of unmasked runs keep their names)."""
    nodata = None if mask.nodata is None else [repr(v) for v in mask.nodata]
    return [nodata, mask.alpha]


def _encode_outcome(o: ImageRecord | Skipped | None) -> Any:
    if o is None:
        return None
    if isinstance(o, Skipped):
        return {"skip": [o.path, o.reason]}
    moments = [
        [m.count, m.total, m.total_sq]
        if isinstance(m, IntMoments)
        else [m.count, m.shift, m.mean_offset, m.m2, m.lo, m.hi]
        for m in o.moments
    ]
    row = [o.native, moments, o.pixel_hash.hex(), o.dhash, o.height, o.width, o.phash]
    row.append(_encode_ref(o.ref))
    if o.products is not None:  # ints exactly; floats as JSON keeps them (shortest repr)
        row.append(list(o.products))
    return row


def _decode_moment(m: list[Any]) -> IntMoments | FloatMoments:
    if len(m) == 3:
        return IntMoments(int(m[0]), int(m[1]), int(m[2]))
    if len(m) != 6:
        raise ValueError("bad moments")
    return FloatMoments(int(m[0]), float(m[1]), float(m[2]), float(m[3]), float(m[4]), float(m[5]))


def _decode_outcome(o: Any) -> ImageRecord | Skipped | None:
    if o is None:
        return None
    if isinstance(o, dict):
        path, reason = o["skip"]
        return Skipped(str(path), str(reason))
    native, moments, pixel_hash, dhash, height, width, phash, ref, *rest = o
    if len(rest) > 1:
        raise ValueError("bad record")
    products = None if not rest else tuple(_number(v) for v in rest[0])
    digest = bytes.fromhex(pixel_hash)
    if len(digest) != 16:
        raise ValueError("bad pixel hash")
    return ImageRecord(
        str(native),
        tuple(_decode_moment(m) for m in moments),
        digest,
        int(dhash),
        int(height),
        int(width),
        int(phash),
        products,
        _decode_ref(ref),
    )


def _encode_ref(ref: Reference | None) -> Any:
    """The thumbnail in base64; lo, hi and the colour as JSON numbers, which give float32
    values back exactly (Python writes the shortest repr of their float64)."""
    if ref is None:
        return None
    return [base64.b64encode(ref.thumb).decode("ascii"), ref.lo, ref.hi, list(ref.colour)]


def _decode_ref(ref: Any) -> Reference:
    """ValueError unless ``ref`` is a reference as ``_encode_ref`` writes one: 1,024 bytes of
    thumbnail, lo <= hi, and finite float32 values."""
    if not isinstance(ref, list) or len(ref) != 4 or not isinstance(ref[0], str):
        raise ValueError("bad reference")
    try:
        thumb = base64.b64decode(ref[0], validate=True)
    except binascii.Error:
        raise ValueError("bad reference thumbnail") from None
    if len(thumb) != REF_BYTES:
        raise ValueError("bad reference thumbnail")
    colour = ref[3]
    if not isinstance(colour, list) or len(colour) != 3:
        raise ValueError("bad reference colour")
    lo, hi, r, g, b = (_float32(v) for v in (ref[1], ref[2], *colour))
    if not lo <= hi:
        raise ValueError("bad reference range")
    return Reference(thumb, lo, hi, (r, g, b))


def _float32(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ValueError("bad reference number")
    f = float(v)
    if not math.isfinite(f) or abs(f) > _F32_MAX or float(np.float32(f)) != f:
        raise ValueError("bad reference number")
    return f


def _number(v: Any) -> int | float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ValueError("bad cross product")
    return v


def _encode(key: str, r: ChunkResult) -> dict[str, Any]:
    hist = None
    if r.hist is not None:
        nz = [np.flatnonzero(h) for h in r.hist]
        hist = [
            list(r.hist.shape),
            [[n.tolist(), h[n].tolist()] for n, h in zip(nz, r.hist, strict=True)],
        ]
    return {
        "format": FORMAT,
        "key": key,
        "items": [[i.root, i.rel] for i in r.items],
        "outcomes": [_encode_outcome(o) for o in r.outcomes],
        "canonical": r.canonical,
        "deferred": r.deferred,
        "hist": hist,
    }


def _decode(doc: dict[str, Any]) -> ChunkResult:
    hist = None
    if doc["hist"] is not None:
        shape, channels = doc["hist"]
        hist = np.zeros(tuple(int(v) for v in shape), dtype=np.int64)
        if hist.ndim != 2 or len(channels) != hist.shape[0]:
            raise ValueError("bad histogram")
        for c, (bins, counts) in enumerate(channels):
            hist[c, np.asarray(bins, dtype=np.int64)] = np.asarray(counts, dtype=np.int64)
    items = [Item(str(root), str(rel)) for root, rel in doc["items"]]
    outcomes = [_decode_outcome(o) for o in doc["outcomes"]]
    canonical = [None if m is None else str(m) for m in doc["canonical"]]
    deferred = [int(i) for i in doc["deferred"]]
    if (items and len(outcomes) != len(items)) or len(canonical) != len(outcomes):
        raise ValueError("lengths differ")
    if any(not 0 <= i < len(items) for i in deferred):
        raise ValueError("bad deferred index")
    return ChunkResult(outcomes, canonical, hist, deferred, items)
