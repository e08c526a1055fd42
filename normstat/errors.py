"""Typed errors of the core; the CLI turns each into one line, ``Error: <path>: <reason>``."""

from __future__ import annotations

__all__ = [
    "DeviceError",
    "InputError",
    "ManifestError",
    "NormstatError",
    "OutputError",
    "describe",
]


class NormstatError(Exception):
    """Base of every error normstat raises on purpose; carries the offending path."""

    def __init__(self, path: object, reason: str) -> None:
        self.path = str(path) if path is not None else ""
        self.reason = reason
        super().__init__(f"{self.path}: {reason}" if self.path else reason)

    def __reduce__(self) -> tuple[type, tuple[str, str]]:  # raised in workers, pickled back
        return type(self), (self.path, self.reason)


class InputError(NormstatError):
    """A source path is missing, empty of images, or holds an image that --strict refuses."""


class ManifestError(NormstatError):
    """A stats manifest or its sidecar is unreadable, of the wrong schema, or inconsistent."""


class OutputError(NormstatError):
    """An output location is unsafe (inside the source, already holding other output)."""


class DeviceError(NormstatError):
    """A compute device was asked for but none is usable."""


def describe(exc: BaseException) -> str:
    """An exception as one line of reason text: its message, or its type when it has none."""
    return str(exc).replace("\n", " ").strip() or type(exc).__name__
