"""The modes a dataset can be reduced in: channel names, pixel type, and the scale to [0, 1]."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LUMA", "MODES", "Mode", "get_mode"]

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
    def color(self) -> bool:
        return self.channels[0] == "R"

    @property
    def alpha(self) -> bool:
        return self.channels[-1] == "A"


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


def get_mode(name: str) -> Mode:
    try:
        return MODES[name]
    except KeyError:
        raise ValueError(f"unknown mode {name!r}; choose from {', '.join(MODES)}") from None
