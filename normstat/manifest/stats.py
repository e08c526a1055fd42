"""The stats manifest: ``Stats`` ⇄ JSON + binary sidecar, validated on load, written atomically."""

from __future__ import annotations

import contextlib
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from normstat.errors import ManifestError
from normstat.fileops import TempFile, atomic_write_bytes, sha256_file
from normstat.fingerprints import Fingerprints
from normstat.modes import Mode, get_mode
from normstat.reduce import DatasetMoments

from .sidecar import SIDECAR_FORMAT, read_sidecar, write_sidecar
from .validate import validate

__all__ = ["Stats"]


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
    """The sidecar an existing manifest at ``path`` points to, if it is a normstat manifest."""
    try:
        with open(path, encoding="utf-8") as fh:
            name = json.load(fh)["sidecar"]["path"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return name if isinstance(name, str) and "/" not in name and os.sep not in name else None


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

    def partial(self) -> DatasetMoments:
        """The exact mergeable statistics back from ``state`` (and the sidecar's histogram)."""
        raw = self.data.get("raw", {})
        return DatasetMoments.from_state(
            self.data["state"],
            mode=self.dataset_mode(),
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
        """
        if self.fingerprints is None:
            raise ManifestError(path, "statistics have no fingerprints to save")
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
    def load(cls, path: str, *, with_fingerprints: bool = True) -> Stats:
        """Read and validate a manifest; any defect is a ManifestError naming the reason."""
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except FileNotFoundError:
            raise ManifestError(path, "no such file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ManifestError(path, f"cannot read manifest: {exc}") from None
        except json.JSONDecodeError as exc:
            raise ManifestError(path, f"not JSON ({exc.msg}, line {exc.lineno})") from None
        validate(data, path)
        stats = cls(data, path=path)
        sidecar = data["sidecar"]
        side_path = os.path.join(os.path.dirname(os.path.abspath(path)), sidecar["path"])
        if not os.path.isfile(side_path):
            raise ManifestError(path, f"fingerprint sidecar {sidecar['path']} is missing")
        if sha256_file(side_path) != sidecar.get("sha256"):
            raise ManifestError(
                path, f"fingerprint sidecar {sidecar['path']} does not match its sha256"
            )
        if with_fingerprints:
            try:
                stats.fingerprints, stats.histogram = read_sidecar(side_path, list(data["sources"]))
            except ValueError as exc:
                raise ManifestError(path, str(exc)) from None
        return stats
