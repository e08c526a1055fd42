"""16-bit colour PNGs: pypng ÷ libpng (imagecodecs) decode time, timed in one run on the same
files, for the decoder alone and for the whole reader (Pillow's header, then the samples).

The files are 500×375 RGB 16-bit PNGs made from scikit-image's photographs (crops, values
v·257 plus a little noise in the low byte, as a 16-bit camera gives), not from noise.

Usage: python benchmarks/png16.py [--files 12] [--repeat 3] [--noise 64]
Needs the ``formats`` extra (imagecodecs) and scikit-image.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import png  # pypng
from skimage import data as photos
from skimage.transform import resize

from normstat.modes import MODES
from normstat.options import ReadOptions
from normstat.readers import png16
from normstat.readers.pillow import READER

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import best  # the same best-of-N timer as the other benchmarks

NAMES = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry")


def corpus(n: int, noise: int = 64) -> list[bytes]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        photo = getattr(photos, NAMES[i % len(NAMES)])()[..., :3]
        h, w = photo.shape[:2]
        y, x = rng.integers(0, max(1, h - 375)), rng.integers(0, max(1, w - 500))
        crop = photo[y : y + 375, x : x + 500]
        if crop.shape[:2] != (375, 500):
            crop = (resize(photo, (375, 500), preserve_range=True)).astype(np.uint8)
        arr = crop.astype(np.uint16) * 257 + rng.integers(0, noise, crop.shape, dtype=np.uint16)
        buf = io.BytesIO()
        png.Writer(500, 375, greyscale=False, bitdepth=16).write(buf, arr.reshape(375, -1).tolist())
        out.append(buf.getvalue())
    return out


def per_file(fn: Callable[[bytes], object], files: list[bytes], repeat: int) -> float:
    """Seconds per file, the best of ``repeat`` passes over all of them."""

    def one_pass() -> None:
        for data in files:
            fn(data)

    return best(one_pass, repeat) / len(files)


def reader(data: bytes) -> None:
    READER.load(io.BytesIO(data), "x.png", MODES["RGB;16"], ReadOptions())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=12)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--noise", type=int, default=64, help="low-byte noise: 0..N-1 (1: none)")
    args = parser.parse_args()
    files = corpus(args.files, args.noise)
    assert png16.fast_available(), "imagecodecs is not installed: pip install 'normstat[formats]'"
    for data in files:  # the two decoders agree before they are timed
        assert np.array_equal(png16.decode(data), png16.pypng_decode(data))
    fast = per_file(png16.decode, files, args.repeat)
    slow = per_file(png16.pypng_decode, files, args.repeat)
    print(f"{len(files)} RGB 16-bit PNGs of 500×375, noise {args.noise}, best of {args.repeat}")
    print(f"decoder: pypng {slow * 1e3:.1f} ms, imagecodecs {fast * 1e3:.1f} ms,"
          f" pypng ÷ imagecodecs = {slow / fast:.1f}")  # fmt: skip
    fast_reader = per_file(reader, files, args.repeat)
    png16.fast_available.cache_clear()
    real = png16._imagecodecs
    png16._imagecodecs = lambda: None  # as without the extra
    try:
        slow_reader = per_file(reader, files, args.repeat)
    finally:
        png16._imagecodecs = real
        png16.fast_available.cache_clear()
    print(f"reader:  pypng {slow_reader * 1e3:.1f} ms, imagecodecs {fast_reader * 1e3:.1f} ms,"
          f" pypng ÷ imagecodecs = {slow_reader / fast_reader:.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
