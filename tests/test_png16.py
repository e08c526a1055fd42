"""16-bit PNGs: libpng (imagecodecs) and pypng give the same samples and the same skip reasons.
References are the arrays the files were written from (and a Python loop for tRNS alpha), never
one decoder's output alone; hostile files compare the reader's outcome with imagecodecs made
unimportable (pypng only, as a core install reads them)."""

from __future__ import annotations

import io
import struct
import sys
import zlib
from pathlib import Path

import imagecodecs
import numpy as np
import png  # pypng
import pytest
from helpers import decode
from PIL import Image

from normstat.modes import MODES
from normstat.readers import Decoded, Skipped, png16

MODE = {1: "L;16", 2: "LA;16", 3: "RGB;16", 4: "RGBA;16"}


@pytest.fixture(autouse=True)
def _fresh_check():
    png16.fast_available.cache_clear()
    saved = Image.MAX_IMAGE_PIXELS
    yield
    png16.fast_available.cache_clear()
    Image.MAX_IMAGE_PIXELS = saved


@pytest.fixture
def no_imagecodecs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "imagecodecs", None)  # import imagecodecs fails
    png16.fast_available.cache_clear()


@pytest.fixture
def no_pypng_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """pypng may walk chunks but not decode pixels: only libpng can have given them."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("pypng decoded pixels")

    monkeypatch.setattr(png.Reader, "read", refuse)
    monkeypatch.setattr(png.Reader, "asDirect", refuse)


def pypng_file(arr: np.ndarray, **options: object) -> bytes:
    h, w, c = arr.shape
    writer = png.Writer(w, h, greyscale=c < 3, alpha=c in (2, 4), bitdepth=16, **options)
    buf = io.BytesIO()
    writer.write(buf, arr.reshape(h, -1).tolist())
    return buf.getvalue()


def with_trns_reference(arr: np.ndarray, colour: tuple[int, ...]) -> np.ndarray:
    """PNG's tRNS rule, one pixel at a time: alpha 0 where the pixel is the colour, else max."""
    h, w, _ = arr.shape
    alpha = np.array(
        [[0 if tuple(int(v) for v in arr[y, x]) == colour else 65535 for x in range(w)]
         for y in range(h)],
        dtype=np.uint16,
    )  # fmt: skip
    return np.concatenate([arr, alpha[..., None]], axis=2)


def chunks_of(data: bytes) -> list[tuple[bytes, bytes]]:
    return list(png.Reader(bytes=data).chunks())


def write_chunks(chunks: list[tuple[bytes, bytes]]) -> bytes:
    buf = io.BytesIO()
    png.write_chunks(buf, chunks)
    return buf.getvalue()


def adversarial(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Random samples plus the extremes and values differing only in the low byte."""
    arr = np.random.default_rng(seed).integers(0, 65536, shape, dtype=np.uint16)
    flat = arr.reshape(-1)
    flat[: min(4, flat.size)] = [0, 65535, 1, 256][: min(4, flat.size)]
    return arr


SHAPES = [(1, 1), (1, 9), (9, 1), (7, 5), (13, 31)]


@pytest.mark.parametrize("planes", [1, 2, 3, 4])
@pytest.mark.parametrize("hw", SHAPES)
def test_both_decoders_give_the_written_samples(
    planes: int, hw: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    arr = adversarial((*hw, planes), seed=planes * 100 + hw[0])
    files = [pypng_file(arr), pypng_file(arr, interlace=True), imagecodecs.png_encode(arr)]
    if planes == 1:
        buf = io.BytesIO()
        Image.fromarray(arr[..., 0]).save(buf, "PNG")  # Pillow writes 16-bit grey only
        files.append(buf.getvalue())
    for data in files:
        assert png16.fast_available()
        np.testing.assert_array_equal(png16.decode(data), arr)
        np.testing.assert_array_equal(png16.pypng_decode(data), arr)


@pytest.mark.parametrize("planes", [1, 3])
def test_trns_colour_becomes_alpha(planes: int) -> None:
    arr = adversarial((6, 5, planes), seed=7)
    arr[2, 1] = arr[0, 0]
    arr[4, 4] = arr[0, 0]
    colour = tuple(int(v) for v in arr[0, 0])
    want = with_trns_reference(arr, colour)
    assert (want[..., -1] == 0).sum() >= 3
    for data in (
        pypng_file(arr, transparent=colour),
        pypng_file(arr, transparent=colour, interlace=True),
    ):
        np.testing.assert_array_equal(png16.decode(data), want)
        np.testing.assert_array_equal(png16.pypng_decode(data), want)


def test_imagecodecs_is_used_when_installed(no_pypng_rows: None) -> None:
    arr = adversarial((9, 11, 3), seed=1)
    colour = tuple(int(v) for v in arr[3, 3])
    np.testing.assert_array_equal(png16.decode(pypng_file(arr)), arr)
    got = png16.decode(pypng_file(arr, transparent=colour))
    np.testing.assert_array_equal(got, with_trns_reference(arr, colour))


def test_pypng_without_imagecodecs(no_imagecodecs: None, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("libpng decoded pixels")

    monkeypatch.setattr(imagecodecs, "png_decode", refuse)
    assert not png16.fast_available()
    arr = adversarial((5, 4, 4), seed=3)
    np.testing.assert_array_equal(png16.decode(pypng_file(arr)), arr)


def test_gamma_and_sbit_are_ignored() -> None:
    """Raw samples: pypng's asDirect would shift them right by 16 - sBIT (a range 16 times
    too small for a 12-bit sBIT, scaled as 16-bit): the reader does not."""
    arr = adversarial((4, 6, 3), seed=5)
    chunks = chunks_of(pypng_file(arr))
    chunks[1:1] = [(b"gAMA", struct.pack("!I", 45455)), (b"sBIT", bytes([12, 12, 12]))]
    data = write_chunks(chunks)
    np.testing.assert_array_equal(png16.decode(data), arr)
    np.testing.assert_array_equal(png16.pypng_decode(data), arr)


# ---------------------------------------------------------------- the reader end to end


def _outcome(path: Path, mode: str = "RGB;16", max_pixels: int | None = None) -> object:
    out = decode(str(path), MODES[mode], max_pixels)
    if isinstance(out, Skipped):
        return ("skipped", out.reason)
    assert isinstance(out, Decoded)
    return ("read", out.pixels.tobytes(), out.pixels.shape, str(out.pixels.dtype))


def _hostile(base: bytes) -> dict[str, bytes]:
    chunks = chunks_of(base)
    ihdr, idat = chunks[0][1], chunks[1][1]
    raw = zlib.decompress(idat)
    rows = len(raw) // struct.unpack("!I", ihdr[4:8])[0]
    out = {f"cut{n}": base[:n] for n in (40, len(base) // 2, len(base) - 12, len(base) - 1)}
    for i, kind in enumerate(k for k, _ in chunks):
        bad = bytearray(write_chunks(chunks))
        start = 8 + sum(12 + len(d) for _, d in chunks[:i])
        bad[start + 8 + len(chunks[i][1])] ^= 0xFF  # the chunk's CRC
        out[f"crc_{kind.decode()}"] = bytes(bad)
    text = [(b"tEXt", b"Comment\x00hello")]
    bad_text = bytearray(write_chunks([*chunks[:2], *text, chunks[2]]))
    bad_text[-13] ^= 0xFF  # the CRC of the tEXt after IDAT
    out["crc_text_after_idat"] = bytes(bad_text)
    out["no_iend"] = write_chunks(chunks[:2])
    out["filter_byte"] = write_chunks([chunks[0], (b"IDAT", zlib.compress(b"\x07" + raw[1:])),
                                       chunks[2]])  # fmt: skip
    out["extra_row"] = write_chunks([chunks[0], (b"IDAT", zlib.compress(raw + raw[:rows])),
                                     chunks[2]])  # fmt: skip
    out["short"] = write_chunks([chunks[0], (b"IDAT", zlib.compress(raw[:-1])), chunks[2]])
    out["after_stream"] = write_chunks([chunks[0], (b"IDAT", idat + b"junk"), chunks[2]])
    sync = zlib.compressobj()
    unended = sync.compress(raw) + sync.flush(zlib.Z_SYNC_FLUSH)  # no final block, no adler32
    out["unended_stream"] = write_chunks([chunks[0], (b"IDAT", unended), chunks[2]])
    out["split_idat"] = write_chunks([chunks[0], (b"IDAT", idat[:5]), *text, (b"IDAT", idat[5:]),
                                      chunks[2]])  # fmt: skip
    out["trns_length"] = write_chunks([chunks[0], (b"tRNS", b"\x00\x01"), *chunks[1:]])
    out["sbit_zero"] = write_chunks([chunks[0], (b"sBIT", b"\x00\x00\x00"), *chunks[1:]])
    out["adler"] = write_chunks([chunks[0], (b"IDAT", idat[:-1] + bytes([idat[-1] ^ 1])),
                                 chunks[2]])  # fmt: skip
    return out


def test_hostile_files_have_the_same_outcome_with_and_without_imagecodecs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    arr = adversarial((6, 7, 3), seed=11)
    files = _hostile(pypng_file(arr))
    with_codecs = {}
    for name, data in files.items():
        (tmp_path / f"{name}.png").write_bytes(data)
        with_codecs[name] = _outcome(tmp_path / f"{name}.png")
    monkeypatch.setitem(sys.modules, "imagecodecs", None)
    png16.fast_available.cache_clear()
    for name in files:
        assert _outcome(tmp_path / f"{name}.png") == with_codecs[name], name
    skipped = {n for n, o in with_codecs.items() if o[0] == "skipped"}
    # the files pypng refuses (its checks, as before) and those it reads:
    assert {"cut40", "crc_IHDR", "crc_IDAT", "crc_IEND", "crc_text_after_idat"} <= skipped
    assert {"no_iend", "filter_byte", "extra_row", "short", "adler"} <= skipped
    for name in ("after_stream", "split_idat", "unended_stream", "sbit_zero"):
        assert with_codecs[name] == ("read", arr.tobytes(), arr.shape, "uint16"), name


def test_bomb_is_refused_from_the_header_before_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chunks = chunks_of(pypng_file(adversarial((2, 2, 3), seed=2)))
    chunks[0] = (b"IHDR", struct.pack("!2I5B", 100_000, 100_000, 16, 2, 0, 0, 0))
    (tmp_path / "bomb.png").write_bytes(write_chunks(chunks))

    def refuse(data: bytes) -> None:
        raise AssertionError("decoded before the pixel limit was checked")

    monkeypatch.setattr(png16, "decode", refuse)
    kind, reason = _outcome(tmp_path / "bomb.png", max_pixels=1_000_000)  # type: ignore[misc]
    assert kind == "skipped" and "decompression bomb" in reason and "10000000000" in reason


@pytest.mark.parametrize(("planes", "mode"), [(3, "RGB;16"), (4, "RGB;16"), (2, "I;16")])
def test_reader_gives_the_samples_through_libpng(
    tmp_path: Path, planes: int, mode: str, no_pypng_rows: None
) -> None:
    arr = adversarial((5, 8, planes), seed=planes)
    (tmp_path / "a.png").write_bytes(pypng_file(arr))
    out = decode(str(tmp_path / "a.png"), MODES[mode], None)
    assert isinstance(out, Decoded)
    np.testing.assert_array_equal(out.pixels, arr[..., : 1 if mode == "I;16" else 3])
