"""The modes a dataset can be reduced in: channel names, pixel type, and the scale to [0, 1].

Besides the fixed modes, multi-band data (a 13-band satellite TIFF) have band modes, parsed from
their name: ``B<n>`` (8-bit), ``B<n>;16`` (16-bit) or ``B<n>;F`` (float), for 2 or 4 to
``MAX_BANDS`` bands, with channels ``B1..Bn``; ``B<n>;16:red|green|...`` names the bands (as a
file's own band descriptions do), so a manifest says which statistic is which band. One and
three bands keep the fixed modes (L, RGB, ...)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["DERIVED_MODES", "LUMA", "MAX_BANDS", "MODES", "Mode", "band_mode", "get_mode"]

LUMA = (0.299, 0.587, 0.114)  # ITU-R 601-2 luma weights, as Pillow converts RGB to L


@dataclass(frozen=True)
class Mode:
    """A dataset mode: every contributing image is converted to it before it is reduced."""

    name: str
    channels: tuple[str, ...]
    dtype: str  # "uint8", "uint16" or "float32" (float64 .npy data keep their precision)
    max_value: float  # divides raw values into [0, 1]; 1.0 for float images

    @property
    def integer(self) -> bool:
        return self.dtype != "float32"

    @property
    def bins(self) -> int:
        return {"uint8": 256, "uint16": 65536}.get(self.dtype, 0)

    @property
    def bands(self) -> bool:
        """A band mode (``B<n>...``): no colour or alpha meaning, converted only to itself."""
        return self.name.startswith("B")

    @property
    def color(self) -> bool:
        return not self.bands and self.channels[0] == "R"

    @property
    def alpha(self) -> bool:
        return not self.bands and self.channels[-1] == "A"


MODES: dict[str, Mode] = {
    m.name: m
    for m in (
        Mode("L", ("L",), "uint8", 255),
        Mode("LA", ("L", "A"), "uint8", 255),
        Mode("RGB", ("R", "G", "B"), "uint8", 255),
        Mode("RGBA", ("R", "G", "B", "A"), "uint8", 255),
        Mode("I;16", ("L",), "uint16", 65535),
        Mode("RGB;16", ("R", "G", "B"), "uint16", 65535),
        Mode("F", ("L",), "float32", 1.0),
        Mode("RGB;F", ("R", "G", "B"), "float32", 1.0),  # float colour arrays (.npy sources)
    )
}

# Modes statistics are reported in but images are never decoded in: CIELAB (``--color lab``)
# is computed from RGB pixels, so no reader, ``--mode`` or conversion targets it.
DERIVED_MODES: dict[str, Mode] = {"LAB;F": Mode("LAB;F", ("L", "a", "b"), "float32", 1.0)}


MAX_BANDS = 256  # a 16-bit histogram per band: 256 bands are 134 MB per worker
MAX_BAND_NAME = 64  # characters
_KINDS = {"": ("uint8", 255.0), ";16": ("uint16", 65535.0), ";F": ("float32", 1.0)}
_BAND_MODE = re.compile(r"B([1-9][0-9]{0,2})(|;16|;F)(?::(.*))?", re.DOTALL)


def _band_names(names: tuple[str, ...], n: int) -> tuple[str, ...] | None:
    """``names`` when they can name ``n`` bands in a mode name (distinct, non-empty, short, no
    separator or control character), else None."""
    if len(names) != n or len(set(names)) != n:
        return None
    for name in names:
        if not name or len(name) > MAX_BAND_NAME or not name.isprintable() or "|" in name:
            return None
    return names


def _default_names(n: int) -> tuple[str, ...]:
    return tuple(f"B{i}" for i in range(1, n + 1))


def band_mode(n: int, dtype: str, names: tuple[str, ...] | None = None) -> Mode:
    """The band mode of ``n`` bands of ``dtype`` ("uint8", "uint16" or "float32"), its bands
    named ``names`` when they are usable (else B1..Bn). Names equal to B1..Bn are no names:
    the mode has one spelling, which leaves them out."""
    suffix = next(k for k, (d, _) in _KINDS.items() if d == dtype)
    usable = _band_names(names, n) if names else None
    if usable == _default_names(n):
        usable = None
    return get_mode(f"B{n}{suffix}" + (":" + "|".join(usable) if usable else ""))


@lru_cache(maxsize=256)
def _parse_band_mode(name: str) -> Mode | None:
    match = _BAND_MODE.fullmatch(name)
    if match is None:
        return None
    n = int(match[1])
    if n in (1, 3) or n > MAX_BANDS:
        return None
    names = _default_names(n)
    if match[3] is not None:
        given = _band_names(tuple(match[3].split("|")), n)
        if given is None or given == names:
            return None  # one spelling per mode: default names are left out
        names = given
    dtype, top = _KINDS[match[2]]
    return Mode(name, names, dtype, top)


def get_mode(name: str) -> Mode:
    mode = MODES.get(name) or DERIVED_MODES.get(name) or _parse_band_mode(name)
    if mode is None:
        choices = ", ".join(MODES)
        raise ValueError(
            f"unknown mode {name!r}; choose from {choices}, B<n>, B<n>;16, B<n>;F (n bands)"
        )
    return mode
