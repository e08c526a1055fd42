"""The stats manifest: ``Stats`` ⇄ JSON + binary sidecar, validated on load, written atomically."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from normstat.errors import ManifestError
from normstat.fileops import (
    TempFile,
    atomic_write_bytes,
    open_regular,
    replaceable,
    sha256_file,
)
from normstat.fingerprints import Fingerprints
from normstat.modes import Mode, get_mode
from normstat.options import MaskOptions, ReadOptions
from normstat.reduce import DatasetMoments

from .reading import read_document
from .sidecar import SIDECAR_FORMAT, NpzError, read_histogram, read_sidecar, write_sidecar
from .statistics import check_histogram
from .validate import plain_name, validate
from .values import Reader

__all__ = ["Stats"]

SIDECAR_BASE_BYTES = 64 << 20  # zip and .npy headers, the histogram, arrays added later
# A row is ~60 bytes plus its path (PATH_MAX is 4096), and its reference: 1,024 bytes of
# thumbnail, 8 of range and 12 of colour.
SIDECAR_BYTES_PER_IMAGE = (64 << 10) + 1044


_NUMBER_LIST = re.compile(r"\[\s*(-?[0-9][0-9.eE+-]*(?:,\s*-?[0-9][0-9.eE+-]*)*)\s*\]")


def dumps(data: dict[str, Any]) -> str:
    """Indented JSON with per-channel number lists on one line, for people reading it."""
    text = json.dumps(data, indent=2, allow_nan=False)
    return _NUMBER_LIST.sub(lambda m: "[" + re.sub(r",\s+", ", ", m.group(1)) + "]", text) + "\n"


def sidecar_name(manifest_path: str, sha256: str) -> str:
    """Named by content, so a new sidecar never replaces the one an old manifest points to."""
    stem = os.path.basename(manifest_path)
    stem = stem[: -len(".json")] if stem.endswith(".json") else stem
    return f"{stem}.{sha256[:12]}.fingerprints.npz"


def _previous_sidecar(path: str) -> str | None:
    """The sidecar an existing manifest at ``path`` points to, if it is a normstat manifest
    (read as any manifest is: a FIFO there must not block the save)."""
    try:
        name = read_document(path)["sidecar"]["path"]
    except (ManifestError, KeyError, TypeError):
        return None
    return name if isinstance(name, str) and plain_name(name) else None


@dataclass
class Stats:
    """Dataset statistics: the manifest's JSON document plus the fingerprints and histogram it
    points to. ``mean``/``std`` are in [0, 1] units (the stable keys)."""

    data: dict[str, Any]
    fingerprints: Fingerprints | None = None
    histogram: np.ndarray | None = field(default=None, repr=False)  # (C, bins) for integer modes
    path: str | None = None

    @property
    def mean(self) -> list[float]:
        return list(self.data["mean"])

    @property
    def std(self) -> list[float]:
        return list(self.data["std"])

    @property
    def channels(self) -> list[str]:
        return list(self.data["channels"])

    @property
    def mode(self) -> str:
        return str(self.data["mode"])

    @property
    def images(self) -> int:
        return int(self.data["images"])

    @property
    def skipped(self) -> list[dict[str, str]]:
        return list(self.data["skipped"])

    def dataset_mode(self) -> Mode:
        """The manifest's mode; ManifestError when this normstat does not know it."""
        try:
            return get_mode(self.mode)
        except ValueError as exc:
            raise ManifestError(self.path, str(exc)) from None

    def read_mode(self) -> Mode:
        """The mode images are decoded and fingerprinted in: the manifest's mode, or for CIELAB
        statistics (``--color lab``) the RGB mode they were converted from."""
        color = self.data.get("color")
        if isinstance(color, dict) and isinstance(color.get("from"), str):
            try:
                return get_mode(color["from"])
            except ValueError as exc:
                raise ManifestError(self.path, str(exc)) from None
        return self.dataset_mode()

    @property
    def mask(self) -> MaskOptions:
        """The mask compute used: its ``options.nodata`` and ``alpha: mask`` (none recorded: no
        mask, though a file's own nodata tag still applies)."""
        options = self.data.get("options", {})
        nodata = options.get("nodata")
        values = (
            None if nodata is None else tuple(math.nan if v == "nan" else float(v) for v in nodata)
        )
        return MaskOptions(values, options.get("alpha") == "mask")

    def read_options(self, max_pixels: int | None) -> ReadOptions:
        """How apply and check read images so that they see the pixels compute saw: in the read
        mode (with its alpha), with the .npy layout compute used, NaN kept when it is nodata."""
        layout = str(self.data.get("options", {}).get("npy_layout", "auto"))
        return ReadOptions(max_pixels, self.read_mode().alpha, layout, self.mask.allows_nan)

    @property
    def sidecar_path(self) -> str:
        """The sidecar's path: beside the manifest, under the name the manifest records."""
        if self.path is None or "sidecar" not in self.data:
            raise ManifestError(self.path, "statistics have not been saved: they have no sidecar")
        return _beside(self.path, self.data["sidecar"]["path"])

    @property
    def lab(self) -> bool:
        """Whether the statistics are of CIELAB values (``--color lab``)."""
        return self.data.get("options", {}).get("color") == "lab"

    def partial(self) -> DatasetMoments:
        """The exact mergeable statistics back from ``state`` (and the sidecar's histogram)."""
        mode = self.dataset_mode()
        ranged = "range" in self.data["options"]  # float data histogrammed over --range
        if (mode.integer or ranged) and self.histogram is None:
            raise ManifestError(self.path, "fingerprint sidecar lacks the histogram to merge")
        raw = self.data.get("raw", {})
        return DatasetMoments.from_state(
            self.data["state"],
            mode=mode,
            images=self.images,
            hist=self.histogram,
            lo=raw.get("min"),
            hi=raw.get("max"),
        )

    def to_torchvision(self) -> dict[str, list[float]]:
        """Keyword arguments for ``torchvision.transforms.Normalize``."""
        return {"mean": self.mean, "std": self.std}

    def save(self, path: str) -> None:
        """Write the sidecar, then the manifest pointing to it, each atomically; then remove the
        sidecar the replaced manifest pointed to. A crash at any point leaves a loadable manifest.
        ``path`` may replace only a manifest (OutputError for an image, a folder, a FIFO).
        """
        if self.fingerprints is None:
            raise ManifestError(path, "statistics have no fingerprints to save")
        replaceable(path, "stats manifest", "normstat/stats@")
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        previous = _previous_sidecar(path)
        with TempFile(folder, "sidecar") as tmp:
            write_sidecar(self.fingerprints, tmp.file, self.histogram)
            tmp.close()
            digest = sha256_file(tmp.path)
            name = sidecar_name(path, digest)
            data = {
                **self.data,
                "sidecar": {"path": name, "sha256": digest, "format": SIDECAR_FORMAT},
            }
            text = dumps(data)
            tmp.commit(os.path.join(folder, name))
        try:
            atomic_write_bytes(path, text.encode("utf-8"))
        except BaseException:
            if name != previous:  # nothing points to the new sidecar: do not leave it behind
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(folder, name))
            raise
        self.data, self.path = data, path
        if previous and previous != name:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, previous))

    @classmethod
    def load(
        cls,
        path: str,
        *,
        with_fingerprints: bool = True,
        verify_sidecar: bool = True,
        with_histogram: bool = False,
    ) -> Stats:
        """Read and validate a manifest; any defect is a ManifestError naming the reason.

        The sidecar is hashed (streamed, never inflated) unless ``verify_sidecar`` is False, and
        parsed only ``with_fingerprints``: mean and std need no sidecar, so a hostile one cannot
        drive ``show`` or ``apply`` to gigabytes. ``with_histogram`` alone reads just the
        histogram (for a plot), not the fingerprint table."""
        data = read_document(path)
        validate(data, path)
        stats = cls(data, path=path)
        if with_fingerprints or verify_sidecar or with_histogram:
            parse = "all" if with_fingerprints else "histogram" if with_histogram else ""
            stats.fingerprints, stats.histogram = _sidecar(path, data, parse)
            if stats.histogram is not None:
                check_histogram(Reader(path), stats.histogram, data)
        return stats


def _beside(manifest: str, name: str) -> str:
    return os.path.join(os.path.dirname(os.path.abspath(manifest)), name)


def _sidecar(
    path: str, data: dict[str, Any], parse: str
) -> tuple[Fingerprints | None, np.ndarray | None]:
    """Open the sidecar once (no FIFO, no device), bound its size by the image count, match its
    sha256, then read its arrays (``parse``: "all", "histogram" or "" for none) from the same
    descriptor: nothing can swap it."""
    name = data["sidecar"]["path"]
    side_path = _beside(path, name)
    try:
        fh = open_regular(side_path)
    except FileNotFoundError:
        raise ManifestError(path, f"fingerprint sidecar {name} is missing") from None
    except OSError as exc:
        raise ManifestError(path, f"fingerprint sidecar {name} cannot be read: {exc}") from None
    with fh:
        size = os.fstat(fh.fileno()).st_size
        limit = SIDECAR_BASE_BYTES + SIDECAR_BYTES_PER_IMAGE * data["images"]
        if size > limit:
            raise ManifestError(
                path, f"fingerprint sidecar {name} is {size} bytes, more than {limit} allowed"
            )
        try:
            digest = hashlib.sha256()
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
            if digest.hexdigest() != data["sidecar"]["sha256"]:
                raise ManifestError(path, f"fingerprint sidecar {name} does not match its sha256")
            if not parse:
                return None, None
            fh.seek(0)
            mode = get_mode(data["mode"])
            bins = data["range"]["bins"] + 2 if "range" in data else None
            if parse == "histogram":
                return None, read_histogram(fh, size, mode, bins)
            roots = list(data["sources"])
            return read_sidecar(fh, size, roots, data["images"], mode, bins, side_path)
        except OSError as exc:
            raise ManifestError(path, f"fingerprint sidecar {name} cannot be read: {exc}") from None
        except NpzError as exc:
            raise ManifestError(path, f"fingerprint sidecar {name} {exc}") from None
