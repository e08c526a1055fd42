"""Options as values: frozen dataclasses that travel from the API down to the workers, and the
value sets that the API validates and the CLI offers as choices (one list each, here)."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from .modes import get_mode

__all__ = [
    "ALPHAS",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_THRESHOLD",
    "DEVICES",
    "DTYPES",
    "LAYOUTS",
    "NPY_LAYOUTS",
    "SCALES",
    "STDS",
    "ApplyOptions",
    "CheckOptions",
    "ComputeOptions",
    "ReadOptions",
    "choose",
]

ALPHAS = ("drop", "keep")
DEVICES = ("auto", "cpu", "gpu")
NPY_LAYOUTS = ("auto", "hwc", "nhw")
SCALES = ("standard", "unit", "symmetric", "per-image")
STDS = ("pooled", "per-image-mean")
DTYPES = ("float32", "float16")
LAYOUTS = ("chw", "hwc")

DEFAULT_MAX_PIXELS: int = Image.MAX_IMAGE_PIXELS or 178_956_970
DEFAULT_THRESHOLD = 0.95  # near-duplicate score; chosen from benchmarks/leaks.py: see README


def choose(name: str, value: str, allowed: tuple[str, ...]) -> str:
    """``value`` when it is one of ``allowed``; else ValueError naming the choices."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
    return value


@dataclass(frozen=True)
class ReadOptions:
    """How every reader turns bytes into pixels. ``max_pixels`` None: no bomb limit."""

    max_pixels: int | None = DEFAULT_MAX_PIXELS
    keep_alpha: bool = False
    npy_layout: str = "auto"  # 3-D .npy arrays: one H×W×C image (hwc), an N×H×W stack (nhw)

    def __post_init__(self) -> None:
        choose("npy_layout", self.npy_layout, NPY_LAYOUTS)


@dataclass(frozen=True)
class ComputeOptions:
    """compute's options; ``mode`` None: the majority mode."""

    mode: str | None = None
    alpha: str = "drop"
    strict: bool = False
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    device: str = "auto"
    npy_layout: str = "auto"

    def __post_init__(self) -> None:
        if self.mode is not None:
            get_mode(self.mode)  # ValueError naming the modes
        choose("alpha", self.alpha, ALPHAS)
        choose("device", self.device, DEVICES)
        choose("npy_layout", self.npy_layout, NPY_LAYOUTS)

    @property
    def read(self) -> ReadOptions:
        return ReadOptions(self.max_pixels, self.alpha == "keep", self.npy_layout)

    def manifest(self) -> dict[str, object]:
        """As the manifest records them."""
        return {
            "mode": self.mode or "auto",
            "alpha": self.alpha,
            "strict": self.strict,
            "max_pixels": self.max_pixels,
            "device": self.device,
            "npy_layout": self.npy_layout,
        }


@dataclass(frozen=True)
class ApplyOptions:
    """apply's options."""

    scale: str = "standard"
    std: str = "pooled"
    dtype: str = "float32"
    layout: str = "chw"
    overwrite: bool = False
    strict: bool = False
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    stack: bool = False  # one OUT/stack.npy (N rows) and OUT/stack.txt instead of a file each

    def __post_init__(self) -> None:
        choose("scale", self.scale, SCALES)
        choose("std", self.std, STDS)
        choose("dtype", self.dtype, DTYPES)
        choose("layout", self.layout, LAYOUTS)


@dataclass(frozen=True)
class CheckOptions:
    """check's options."""

    threshold: float = DEFAULT_THRESHOLD
    max_pixels: int | None = DEFAULT_MAX_PIXELS

    def __post_init__(self) -> None:
        if not 0 < self.threshold <= 1:
            raise ValueError("threshold must be in (0, 1]")
