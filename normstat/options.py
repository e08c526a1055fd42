"""Options as values: frozen dataclasses that travel from the API down to the workers, and the
value sets that the API validates and the CLI offers as choices (one list each, here)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

from .errors import DeviceError
from .modes import DERIVED_MODES, get_mode

__all__ = [
    "ALPHAS",
    "COLORS",
    "DEFAULT_LOOK_ALIKE",
    "DEFAULT_MARGIN",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_PERCENTILES",
    "DEFAULT_THRESHOLD",
    "DEVICES",
    "DTYPES",
    "FAIL_ON",
    "INVALIDS",
    "LAYOUTS",
    "NPY_LAYOUTS",
    "RANGE_BINS",
    "SCALES",
    "STDS",
    "ApplyOptions",
    "CheckOptions",
    "ComputeOptions",
    "MaskOptions",
    "ReadOptions",
    "choose",
    "float_list",
    "percentile_list",
    "range_pair",
]

ALPHAS = ("drop", "keep", "mask")
COLORS = ("lab",)  # colour spaces statistics can be computed in besides the dataset's own
DEVICES = ("auto", "cpu", "gpu")
NPY_LAYOUTS = ("auto", "hwc", "nhw")
SCALES = ("standard", "unit", "symmetric", "per-image")
STDS = ("pooled", "per-image-mean")
DTYPES = ("float32", "float16")
LAYOUTS = ("chw", "hwc")
INVALIDS = ("zero", "nan")  # what apply writes for a pixel a mask leaves out

DEFAULT_MAX_PIXELS: int = Image.MAX_IMAGE_PIXELS or 178_956_970
DEFAULT_THRESHOLD = 0.9  # least agreement of a near-duplicate (blurred-thumbnail correlation)
DEFAULT_MARGIN = 12.0  # how far a copy stands out from the nearest other image: see README
DEFAULT_LOOK_ALIKE = 4.0  # how far a look-alike listed for review does
FAIL_ON = ("leak", "look-alike")
DEFAULT_PERCENTILES = (0.5, 1.0, 5.0, 50.0, 95.0, 99.0, 99.5)
RANGE_BINS = 65536  # --range: bins over [LO, HI], as many as 16-bit data have values


_EXACT = "has exact histograms (drop --range)"


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
    allow_nan: bool = False  # float NaN pixels are nodata (--nodata nan), not a reason to skip

    def __post_init__(self) -> None:
        choose("npy_layout", self.npy_layout, NPY_LAYOUTS)


def float_list(name: str, value: object) -> tuple[float, ...]:
    """A number, a sequence of numbers or a comma-separated string of them (``nan`` allowed) as
    floats; ValueError naming ``name`` otherwise."""
    items: Sequence[object]
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",")]
    elif isinstance(value, int | float):
        items = [value]
    elif isinstance(value, Sequence):
        items = value
    else:
        raise ValueError(f"{name} must be numbers separated by commas, not {value!r}")
    out = []
    for v in items:
        try:
            if isinstance(v, bool):
                raise ValueError
            f = float(v)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be numbers separated by commas, not {value!r}") from None
        if math.isinf(f):
            raise ValueError(f"{name} must be finite or nan, not {v!r}")
        out.append(f)
    if not out:
        raise ValueError(f"{name} must hold at least one number")
    return tuple(out)


def percentile_list(value: object) -> tuple[float, ...]:
    """Percentiles in [0, 100], sorted and de-duplicated; ValueError on anything else."""
    qs = float_list("percentiles", value)
    if any(math.isnan(q) or not 0 <= q <= 100 for q in qs):
        raise ValueError(f"percentiles must lie in [0, 100], not {value!r}")
    return tuple(sorted(set(qs)))


def range_pair(value: object) -> tuple[float, float]:
    """``LO,HI`` (a string or two numbers) with finite LO < HI, -0.0 read as 0.0, and a width
    float64 bins can be computed over; ValueError otherwise."""
    pair = float_list("range", value)
    if len(pair) != 2:
        raise ValueError(f"range must be two numbers LO,HI, not {value!r}")
    lo, hi = (v + 0.0 for v in pair)  # -0.0 + 0.0 is 0.0: one spelling of zero in manifests
    if math.isnan(lo) or math.isnan(hi) or not lo < hi:
        raise ValueError(f"range must be LO,HI with finite LO < HI, not {value!r}")
    if not math.isfinite(hi - lo) or not math.isfinite(RANGE_BINS / (hi - lo)):
        raise ValueError(f"range {lo!r},{hi!r} is too wide or too narrow for float64 bins")
    return lo, hi


@dataclass(frozen=True)
class MaskOptions:
    """Which pixels are valid: none equal to ``nodata`` in their channel (one value for all
    channels or one per channel; NaN matches NaN), and, with ``alpha``, none with alpha 0.
    ``nodata`` None: an image's own nodata tag (``Decoded.nodata``) is used when it has one."""

    nodata: tuple[float, ...] | None = None
    alpha: bool = False

    @property
    def requested(self) -> bool:
        return self.nodata is not None or self.alpha

    @property
    def allows_nan(self) -> bool:
        """Whether NaN is a nodata value: readers then keep float NaN pixels (for the mask to
        leave out) instead of skipping their image as non-finite."""
        return self.nodata is not None and any(math.isnan(v) for v in self.nodata)

    def for_channels(self, channels: int, tag: float | None = None) -> tuple[float, ...] | None:
        """The nodata value of each channel (the options', else the file's tag), or None."""
        values = self.nodata if self.nodata is not None else (None if tag is None else (tag,))
        if values is None:
            return None
        return values * channels if len(values) == 1 else values


@dataclass(frozen=True)
class ComputeOptions:
    """compute's options; ``mode`` None: the majority mode."""

    mode: str | None = None
    alpha: str = "drop"
    strict: bool = False
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    device: str = "auto"
    npy_layout: str = "auto"
    column: str | None = None  # parquet shards' image column; None: found automatically
    nodata: tuple[float, ...] | None = None  # one value, or one per channel
    percentiles: tuple[float, ...] | None = None  # None: DEFAULT_PERCENTILES
    covariance: bool = False  # the exact channel covariance, correlation and PCA too
    value_range: tuple[float, float] | None = None  # --range LO,HI: float data histogrammed
    color: str | None = None  # "lab": statistics of CIELAB L*, a*, b* (from RGB pixels)

    def __post_init__(self) -> None:
        if self.mode is not None:
            get_mode(self.mode)  # ValueError naming the modes
            if self.mode in DERIVED_MODES:
                raise ValueError(f"mode {self.mode} is not read from files: use --color lab")
        if self.color is not None:
            choose("color", self.color, COLORS)
            if self.mask.requested:
                raise ValueError(
                    "--color lab cannot be combined with masks (--nodata, --alpha mask)"
                )
            if self.device == "gpu":
                reason = "CIELAB statistics (--color lab) are reduced on the CPU: use --device auto"
                raise DeviceError("--device gpu", reason)
        choose("alpha", self.alpha, ALPHAS)
        choose("device", self.device, DEVICES)
        choose("npy_layout", self.npy_layout, NPY_LAYOUTS)
        if self.percentiles is not None and self.percentiles != percentile_list(self.percentiles):
            raise ValueError("percentiles must be sorted, de-duplicated numbers in [0, 100]")
        if self.mask.requested and self.covariance:
            raise ValueError("--covariance cannot be combined with masks (--nodata, --alpha mask)")
        if self.mask.requested and self.device == "gpu":
            reason = "masks (--nodata, --alpha mask) are reduced on the CPU: use --device auto"
            raise DeviceError("--device gpu", reason)
        if self.value_range is not None:
            if self.value_range != range_pair(self.value_range):
                raise ValueError("value_range must be (LO, HI) with finite LO < HI")
            if self.mode is not None and get_mode(self.mode).integer:
                raise ValueError(f"--range is for float data: mode {self.mode} {_EXACT}")
            if self.device == "gpu":
                reason = "float ranges (--range) are histogrammed on the CPU: use --device auto"
                raise DeviceError("--device gpu", reason)
        if self.covariance and self.device == "gpu":
            reason = "the covariance is reduced on the CPU only (--covariance)"
            raise DeviceError("--device gpu", reason)

    @property
    def mask(self) -> MaskOptions:
        return MaskOptions(self.nodata, self.alpha == "mask")

    @property
    def read(self) -> ReadOptions:
        keep = self.alpha == "keep"
        return ReadOptions(self.max_pixels, keep, self.npy_layout, self.mask.allows_nan)

    def manifest(self) -> dict[str, object]:
        """As the manifest records them (``column`` only when given: check reopens parquet
        contributors by it; masks, percentiles and covariance only when asked for: manifests
        without them are the schema @1 documents earlier versions wrote)."""
        out: dict[str, object] = {
            "mode": self.mode or "auto",
            "alpha": self.alpha,
            "strict": self.strict,
            "max_pixels": self.max_pixels,
            "device": self.device,
            "npy_layout": self.npy_layout,
        }
        if self.column is not None:
            out["column"] = self.column
        if self.nodata is not None:
            out["nodata"] = ["nan" if math.isnan(v) else v for v in self.nodata]
        if self.percentiles is not None:
            out["percentiles"] = list(self.percentiles)
        if self.covariance:
            out["covariance"] = True
        if self.value_range is not None:
            out["range"], out["bins"] = list(self.value_range), RANGE_BINS
        if self.color is not None:
            out["color"] = self.color
        return out


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
    invalid: str = "zero"
    stack: bool = False  # one OUT/stack.npy (N rows) and OUT/stack.txt instead of a file each
    color: str | None = None  # "lab": insist on a CIELAB manifest (taken from it anyway)

    def __post_init__(self) -> None:
        if self.color is not None:
            choose("color", self.color, COLORS)
        choose("invalid", self.invalid, INVALIDS)
        choose("scale", self.scale, SCALES)
        choose("std", self.std, STDS)
        choose("dtype", self.dtype, DTYPES)
        choose("layout", self.layout, LAYOUTS)


@dataclass(frozen=True)
class CheckOptions:
    """check's options: a near-duplicate must agree with its contributor to ``threshold``
    (blurred-thumbnail correlation) and stand out from the test image's neighbourhood by
    ``margin`` (a look-alike by ``look``); ``fail_on`` says what fails the gate."""

    threshold: float = DEFAULT_THRESHOLD
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    margin: float = DEFAULT_MARGIN
    look: float = DEFAULT_LOOK_ALIKE
    fail_on: str = "leak"

    def __post_init__(self) -> None:
        if not 0 < self.threshold <= 1:
            raise ValueError("threshold must be in (0, 1]")
        if not self.margin >= 1:
            raise ValueError("margin must be at least 1")
        if not self.look >= 1:
            raise ValueError("the look-alike margin must be at least 1")
        if self.look > self.margin:  # a lower --margin alone lowers the look-alikes' too
            object.__setattr__(self, "look", self.margin)
        if self.fail_on not in FAIL_ON:
            raise ValueError(f"fail-on must be one of {', '.join(FAIL_ON)}")
