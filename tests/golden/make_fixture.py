"""Writes the golden fixture (committed): small images of every route compute takes, and the
manifests normstat 0.2.0 wrote for them (``expected/``), with ``tool`` and ``created`` blanked and
the absolute source folder replaced by ``<FIXTURE>``. ``tests/test_golden.py`` recomputes them.

Usage: python tests/golden/make_fixture.py   (rewrites the images only with --images)
"""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
EXPECTED = HERE / "expected"

# (case name, source folder under data/, compute options)
CASES = [
    ("mixed", "mixed", {}),
    ("mixed-l", "mixed", {"mode": "L"}),
    ("mixed-rgba", "mixed", {"mode": "RGBA", "alpha": "keep"}),
    ("wide", "wide", {}),
    ("float", "float", {}),
]


def _images() -> None:
    rng = np.random.default_rng(2026)
    y, x = np.mgrid[0:18, 0:23]
    mixed = DATA / "mixed"
    (mixed / "sub").mkdir(parents=True, exist_ok=True)
    for i in range(3):
        base = np.stack([x * (5 + i), y * 9, (x + y) * 4], axis=2) + rng.normal(0, 15, (18, 23, 3))
        Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).save(mixed / f"rgb{i}.png")
        Image.fromarray(np.clip(base[::-1], 0, 255).astype(np.uint8)).save(
            mixed / "sub" / f"photo{i}.jpg", quality=90
        )
    Image.fromarray(rng.integers(0, 256, (12, 17), dtype=np.uint8)).save(mixed / "gray.png")
    pal = Image.fromarray(rng.integers(0, 256, (14, 9, 3), dtype=np.uint8)).quantize(16)
    pal.info["transparency"] = 3
    pal.save(mixed / "sub" / "palette.gif", transparency=3)
    rgba = rng.integers(0, 256, (10, 11, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(mixed / "rgba.png")
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(buf, "JPEG")
    (mixed / "broken.jpg").write_bytes(buf.getvalue()[:300])
    (mixed / "labels.csv").write_text("name,label\nrgb0.png,1\n")
    np.save(mixed / "stack.npy", rng.integers(0, 256, (3, 8, 9, 3), dtype=np.uint8))
    np.save(mixed / "single.npy", rng.integers(0, 256, (7, 6), dtype=np.uint8))
    wide = DATA / "wide"
    wide.mkdir(parents=True, exist_ok=True)
    for i in range(3):
        Image.fromarray(rng.integers(0, 65536, (9, 13), dtype=np.uint16)).save(wide / f"g{i}.png")
    Image.fromarray(rng.integers(0, 256, (9, 13), dtype=np.uint8)).save(wide / "eight.png")
    np.save(wide / "stack16.npy", rng.integers(0, 65536, (2, 5, 4), dtype=np.uint16))
    flt = DATA / "float"
    flt.mkdir(parents=True, exist_ok=True)
    for i in range(2):
        arr = (rng.standard_normal((6, 7)) * 1e-3 + 1e4).astype(np.float32)
        Image.fromarray(arr, "F").save(flt / f"f{i}.tif")
    np.save(flt / "floats.npy", rng.standard_normal((4, 5, 3)))  # one float64 H×W×C image


def normalized(manifest: Path, fixture: Path) -> str:
    """The manifest's exact text with what legitimately varies blanked: the tool version, the
    creation time and the fixture's absolute location; and without ``state.exact`` (the exact
    sums merging needs, added in 0.3: everything else is as 0.2.0 wrote it)."""
    text = manifest.read_text(encoding="utf-8")
    text = re.sub(r',\n    "exact": \{[^{}]*\}', "", text)
    text = re.sub(r'"(tool|created)": "[^"]*"', r'"\1": ""', text)
    return text.replace(json.dumps(str(fixture))[1:-1], "<FIXTURE>")


def main() -> None:
    import normstat

    if "--images" in sys.argv:
        _images()
    EXPECTED.mkdir(exist_ok=True)
    for name, folder, options in CASES:
        out = EXPECTED / f"{name}.json"
        stats = normstat.compute(str(DATA / folder), workers=1, **options)
        stats.save(str(out))
        out.write_text(normalized(out, DATA), encoding="utf-8")


if __name__ == "__main__":
    main()
