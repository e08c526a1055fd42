"""Validation of a loaded manifest document, complete and in one place: every key a verb reads
is type-checked here, and the statistics are checked against the exact ``state`` they came from
(statistics.py), so a tampered manifest is one ManifestError and never a wrong result later."""

from __future__ import annotations

import re
from typing import Any

from normstat.modes import MAX_BANDS, Mode, get_mode
from normstat.options import ALPHAS, COLORS, DEVICES, NPY_LAYOUTS, percentile_list
from normstat.reduce.color import LAB_FROM, lab_mode

from .ranges import check_range_options, check_range_report, percentiles_of
from .sidecar import SIDECAR_FORMAT
from .statistics import check_statistics
from .values import Reader

__all__ = [
    "REQUIRED_KEYS",
    "SCHEMA",
    "SCHEMAS",
    "SCHEMA_V2",
    "lab_key",
    "plain_name",
    "validate",
]

SCHEMA = "normstat/stats@1"  # written when no mask, percentile list or float range is involved
SCHEMA_V2 = "normstat/stats@2"  # adds per-channel valid counts, chosen percentiles, float ranges
SCHEMAS = (SCHEMA, SCHEMA_V2)
REQUIRED_KEYS = (
    "schema",
    "options",
    "sources",
    "mode",
    "channels",
    "dtype",
    "max_value",
    "images",
    "pixels",
    "mean",
    "std",
    "std_per_image_mean",
    "raw",
    "skipped",
    "files",
    "state",
    "sidecar",
)
_HEX64 = re.compile(r"[0-9a-f]{64}")


def plain_name(name: str) -> bool:
    """A file name beside the manifest: no folder part, nothing that could lead elsewhere."""
    return bool(name) and name not in (".", "..") and not any(c in name for c in "/\\\0")


def validate(data: Any, path: str) -> None:
    """Check the whole document: schema, keys, their types and ranges, and the statistics."""
    r = Reader(path)
    if not isinstance(data, dict):
        r.fail("manifest is not a JSON object")
    schema = data.get("schema")
    if not isinstance(schema, str) or not schema.startswith("normstat/stats@"):
        shown = schema if isinstance(schema, str | None) else type(schema).__name__
        r.fail(f"not a normstat manifest (schema {shown!r})")
    if schema not in SCHEMAS:
        r.fail(f"unsupported schema {schema[:40]!r}; this normstat reads {' and '.join(SCHEMAS)}")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        r.fail(f"manifest lacks key(s): {', '.join(missing)}")
    mode = _mode(r, data)
    _sources(r, data["sources"])
    _options(r, data["options"])
    _color(r, data, mode)
    n = len(mode.channels)
    images = r.integer(data["images"], "images", 1)
    pixels = r.integer(data["pixels"], "pixels", images)
    if schema == SCHEMA_V2:
        for key, top in (("pixels_valid", pixels), ("images_valid", images)):
            r.integers(r.key(data, key, "manifest"), key, n, 1, top)
    elif "pixels_valid" in data or "images_valid" in data or "percentiles" in data["options"]:
        r.fail(f"valid counts and chosen percentiles need schema {SCHEMA_V2!r}")
    elif "range" in data["options"] or "range" in data:
        r.fail(f"a float range needs schema {SCHEMA_V2!r}")
    for key in ("mean", "std", "std_per_image_mean"):
        values = r.numbers(data[key], key, n)
        if key != "mean" and any(v < 0 for v in values):
            r.fail(f"'{key}' holds a negative value")
    for key in ("min", "max"):
        if key in data:
            r.numbers(data[key], key, n)
    ranged = "range" in data["options"] and not mode.integer  # its percentiles: ranges.py
    _raw(r, data["raw"], mode, percentiles_of(data["options"]), ranged)
    check_range_report(r, data, mode, percentiles_of(data["options"]))
    _skipped(r, data["skipped"])
    files = r.obj(data["files"], "files")
    if r.integer(r.key(files, "count", "files"), "files.count") != images:
        r.fail(f"'files.count' is not the image count {images}")
    if not isinstance(files.get("sha256"), str) or not _HEX64.fullmatch(files["sha256"]):
        r.fail("'files.sha256' must be 64 hex digits")
    for key in ("modes", "converted"):
        if key in data:
            counts = r.obj(data[key], key)
            for name, count in counts.items():
                r.integer(count, f"{key}.{name[:40]}")
    for key in ("tool", "created"):
        if key in data:
            r.text(data[key], key)
    _sidecar(r, data["sidecar"])
    check_statistics(r, data, mode)


def _mode(r: Reader, data: dict[str, Any]) -> Mode:
    """The mode, and the channels, dtype and scale that must be exactly the mode's: a manifest
    saying L with 3 channels would make check compare the wrong pixels and miss every leak."""
    name = data["mode"]
    if not isinstance(name, str):
        r.fail("'mode' must be a string")
    try:
        mode = get_mode(name)
    except ValueError as exc:
        r.fail(str(exc))
    channels = data["channels"]
    if not isinstance(channels, list) or not channels:
        r.fail("'channels' must be a non-empty list")
    if channels != list(mode.channels):
        shown = channels if len(channels) <= 8 else f"{len(channels)} channels"
        r.fail(f"'channels' {shown} do not match mode {mode.name} {list(mode.channels)}")
    if data["dtype"] != mode.dtype:
        r.fail(f"'dtype' must be {mode.dtype} for mode {mode.name}")
    max_value = data["max_value"]
    if isinstance(max_value, bool) or max_value != mode.max_value:
        r.fail(f"'max_value' must be {mode.max_value:g} for mode {mode.name}")
    return mode


def lab_key(decoded: str) -> dict[str, str]:
    """The manifest's ``color``: what CIELAB statistics were converted from and how; ``from``
    is the mode images were decoded (and fingerprinted) in, so check reads them the same way."""
    return {"space": "CIELAB", "illuminant": "D65", "observer": "2", "from": decoded}


def _color(r: Reader, data: dict[str, Any], mode: Mode) -> None:
    """A CIELAB manifest says so three times, consistently: ``options.color``, mode LAB;F and
    ``color`` (with the RGB mode check must read images in); any one alone is a defect."""
    asked = data["options"].get("color") == "lab"
    lab = mode == lab_mode()
    if not asked and not lab and "color" not in data:
        return
    if not (asked and lab):
        r.fail(f"'options.color' lab and mode {lab_mode().name} go together (mode {mode.name})")
    color = r.obj(r.key(data, "color", "manifest"), "color")
    if color.get("from") not in LAB_FROM:
        r.fail(f"'color.from' must be one of {', '.join(LAB_FROM)}")
    if color != lab_key(color["from"]):
        r.fail("'color' must describe CIELAB, D65, 2° observer")


def _sources(r: Reader, sources: Any) -> None:
    if not isinstance(sources, list) or not sources:
        r.fail("'sources' must be a non-empty list of source roots")
    for root in sources:
        r.text(root, "sources", empty=False)


def _options(r: Reader, options: Any) -> None:
    """The options compute recorded; those a verb reads back (npy_layout) must be valid."""
    options = r.obj(options, "options")
    if "npy_layout" in options:
        r.choice(options["npy_layout"], "options.npy_layout", NPY_LAYOUTS)
    if "alpha" in options:
        r.choice(options["alpha"], "options.alpha", ALPHAS)
    if "device" in options:
        r.choice(options["device"], "options.device", DEVICES)
    if "mode" in options:
        r.text(options["mode"], "options.mode")
    if "column" in options:
        r.text(options["column"], "options.column")
    if "color" in options:
        r.choice(options["color"], "options.color", COLORS)
    for key in ("strict", "covariance"):
        if key in options and not isinstance(options[key], bool):
            r.fail(f"'options.{key}' must be true or false")
    if options.get("max_pixels") is not None:
        r.integer(options["max_pixels"], "options.max_pixels", 1)
    if "nodata" in options:
        values = options["nodata"]
        if not isinstance(values, list) or not 1 <= len(values) <= MAX_BANDS:
            r.fail(f"'options.nodata' must be a list of 1 to {MAX_BANDS} numbers or 'nan'")
        for v in values:
            if v != "nan":
                r.number(v, "options.nodata")
    if "percentiles" in options:
        chosen = options["percentiles"]
        try:
            if not isinstance(chosen, list) or list(percentile_list(chosen)) != chosen:
                raise ValueError
        except ValueError:
            r.fail("'options.percentiles' must be sorted, distinct numbers in [0, 100]")
    if "range" in options:
        check_range_options(r, options)


def _raw(
    r: Reader, raw: Any, mode: Mode, percentiles: tuple[float, ...], ranged: bool = False
) -> None:
    raw = r.obj(raw, "raw")
    n = len(mode.channels)
    for key in ("mean", "var", "std", "std_per_image_mean", "min", "max"):
        r.numbers(r.key(raw, key, "raw"), f"raw.{key}", n)
    if "percentiles" not in raw or ranged:
        return
    pct = r.obj(raw["percentiles"], "raw.percentiles")
    keys = [f"{q:g}" for q in percentiles]
    if not mode.integer or sorted(pct) != sorted(keys):
        r.fail(f"'raw.percentiles' must hold {', '.join(keys)} for mode {mode.name}")
    for key, values in pct.items():
        r.integers(values, f"raw.percentiles.{key}", n, 0, int(mode.max_value))


def _skipped(r: Reader, skipped: Any) -> None:
    if not isinstance(skipped, list):
        r.fail("'skipped' must be a list")
    for item in skipped:
        if not isinstance(item, dict):
            r.fail("'skipped' must hold {path, reason} objects")
        r.text(r.key(item, "path", "skipped"), "skipped.path")
        r.text(r.key(item, "reason", "skipped"), "skipped.reason")


def _sidecar(r: Reader, sidecar: Any) -> None:
    if not isinstance(sidecar, dict) or not isinstance(sidecar.get("path"), str):
        r.fail("'sidecar' must name the fingerprint file")
    if not plain_name(sidecar["path"]):
        r.fail("'sidecar' path must stay beside the manifest (a plain file name)")
    if not isinstance(sidecar.get("sha256"), str) or not _HEX64.fullmatch(sidecar["sha256"]):
        r.fail("'sidecar.sha256' must be 64 hex digits")
    if sidecar.get("format", SIDECAR_FORMAT) != SIDECAR_FORMAT:
        r.fail(f"'sidecar.format' must be {SIDECAR_FORMAT!r}")
