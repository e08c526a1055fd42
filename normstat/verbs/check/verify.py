"""Near-duplicate search and verification for ``check``.

Candidates: each test image is hashed (pHash, see fingerprint.py) over a grid of crop boxes, each
also mirrored, and the hashes are searched in a multi-index over the contributors' pHashes. The
train copy may be a crop of the test image by up to 10 % per side, so the test image is hashed
whole and cropped to 95 % and 90 % of each side at the start, centre and end (7 choices per axis,
49 boxes); one of them lies within 2.5 % of any such crop, close enough for the hash to agree.

Verification: a candidate is a leak only when the pixels agree. Both images go to luma at a common
size of at most 32×32, the test image through the box that matched (refined by moving its edges
while the agreement improves), and the score is the smaller of two Pearson correlations: of the
luma values, and of their horizontal and vertical differences (the edges). Both are 1 for the same
picture whatever its brightness and contrast; the edge term is what separates two different
drawings of the same digit, whose blobs overlap but whose edges do not. Flat images have no
structure to correlate and are never near-matched; flat or two-tone images (whose perceptual
hashes collide, and whose luma correlates perfectly with any other of the same layout) must
also have the same mean colour, up to a brightness change.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from normstat.fileops import stays_inside
from normstat.fingerprints import gray_image, phash_of, pixel_hash, thumbnail
from normstat.modes import get_mode
from normstat.options import ReadOptions
from normstat.readers import Skipped
from normstat.sources import Source
from normstat.verbs.common import ImageRef, read_reference, read_refs

__all__ = [
    "BOXES",
    "COMPARE",
    "RADIUS",
    "Match",
    "Pair",
    "TrainRow",
    "VerifyTask",
    "query_hashes",
    "verify_chunk",
]

RADIUS = 10  # pHash bits a candidate may differ by
COMPARE = 32  # largest side of the verification thumbnails
FLAT = 0.008  # luma std (in [0, 1] units, 2/255) below which an image is flat
_WORK = 256  # test images are reduced to at most this side before boxes are cut


def _filter(source: float, target: int) -> Image.Resampling:
    """Lanczos when shrinking 2× or more: a box filter aliases fine texture differently depending
    on the scale it starts from, which a resized copy changes. Box otherwise: Lanczos' smooth
    sub-pixel shifts let the edge search align two different drawings of a small digit."""
    return Image.Resampling.LANCZOS if source >= 2 * target else Image.Resampling.BOX


def _axis_choices() -> list[tuple[float, float]]:
    out = [(0.0, 1.0)]
    for keep in (0.95, 0.90):
        out.extend((m, m + keep) for m in (0.0, (1 - keep) / 2, 1 - keep))
    return out


BOXES: list[tuple[float, float, float, float]] = [
    (x0, y0, x1, y1) for x0, x1 in _axis_choices() for y0, y1 in _axis_choices()
]  # fractions of width and height; BOXES[0] is the whole image


def _work_gray(pixels: np.ndarray, max_value: float) -> Image.Image:
    """Luma in [0, 1] as a mode-F image, reduced to at most _WORK pixels a side."""
    gray = gray_image(pixels, max_value)
    scale = _WORK / max(gray.size)
    if scale < 1:
        size = (max(1, round(gray.width * scale)), max(1, round(gray.height * scale)))
        gray = gray.resize(size, Image.Resampling.BOX, reducing_gap=2.0)
    arr = np.asarray(gray, dtype=np.float32)
    if gray.mode == "L":
        arr = arr / np.float32(255)
    return Image.fromarray(np.ascontiguousarray(arr))


def query_hashes(pixels: np.ndarray, max_value: float) -> np.ndarray:
    """pHashes of every box of BOXES, then of every box mirrored: (2 * len(BOXES),) uint64."""
    gray = gray_image(pixels, max_value)
    w, h = gray.size
    thumbs = np.stack(
        [thumbnail(gray, (x0 * w, y0 * h, x1 * w, y1 * h)) for x0, y0, x1, y1 in BOXES]
    )
    return np.concatenate([phash_of(thumbs), phash_of(thumbs, mirrored=True)])


def variant(index: int) -> tuple[tuple[float, float, float, float], bool]:
    """The box and mirror flag of query hash ``index``."""
    return BOXES[index % len(BOXES)], index >= len(BOXES)


def _z(values: np.ndarray, floor: float) -> np.ndarray | None:
    """Flattened, zero mean, unit variance; None when the spread is below ``floor``. Written with
    dot products: it runs for every box tried, on small arrays where NumPy's overhead dominates."""
    v = values.ravel().astype(np.float64)
    v = v - v.sum() / v.size
    sd = float(np.sqrt(v @ v / v.size))
    return None if sd < floor else v / sd


def _standardized(arr: np.ndarray) -> np.ndarray | None:
    return _z(arr, FLAT)


def _edges(arr: np.ndarray) -> np.ndarray | None:
    """Standardized horizontal and vertical differences: where the picture's edges are."""
    if arr.shape[0] < 2 or arr.shape[1] < 2:
        return None
    d = np.concatenate([(arr[1:] - arr[:-1]).ravel(), (arr[:, 1:] - arr[:, :-1]).ravel()])
    return _z(d, 1e-6)


def _simple(gray: Image.Image) -> bool:
    """Flat or two-tone: 90 % of the pixels within 4 of 64 luma levels (two tones, each blurred
    into its neighbouring level by compression). Measured on the picture, not a thumbnail,
    whose resampling would blend the two tones along every edge."""
    arr = np.asarray(gray, dtype=np.float32)
    levels = np.bincount(np.clip((arr * 64).astype(np.int64), 0, 63).ravel(), minlength=64)
    return bool(np.sort(levels)[-4:].sum() >= 0.9 * arr.size)


def _same_colour(a: np.ndarray, b: np.ndarray) -> bool:
    """Mean colours equal up to one brightness factor (±25 %) and a little noise."""
    ma = a.reshape(-1, a.shape[-1])[:, :3].mean(axis=0)
    mb = b.reshape(-1, b.shape[-1])[:, :3].mean(axis=0)
    factor = float(ma.sum() / mb.sum()) if mb.sum() > 0 else 1.0
    if not 0.75 <= factor <= 1.34:
        return False
    return bool(np.abs(ma - factor * mb).max() <= 0.05 * max(1e-9, float(ma.max())) + 1e-3)


def _similarity(
    test: Image.Image, ref: Image.Image, box: tuple[float, float, float, float], mirrored: bool
) -> tuple[float | None, np.ndarray | None]:
    """Best correlation of ``ref`` with ``test`` cut near ``box``; None if either is flat."""
    tw, th = test.size
    x0, y0, x1, y1 = box[0] * tw, box[1] * th, box[2] * tw, box[3] * th
    w = max(1, min(COMPARE, ref.width, round(x1 - x0)))
    h = max(1, min(COMPARE, ref.height, round(y1 - y0)))
    resample = _filter(max(ref.width, x1 - x0), w)  # one filter for both: same artefacts
    ref_arr = np.asarray(ref.resize((w, h), resample), dtype=np.float32)
    zr = _standardized(ref_arr)
    if zr is None:
        return None, None

    gr = _edges(ref_arr)

    def score(b: tuple[float, float, float, float]) -> float:
        arr = np.asarray(test.resize((w, h), resample, box=b), dtype=np.float32)
        if mirrored:
            arr = arr[:, ::-1]
        za = _standardized(arr)
        if za is None:
            return -1.0
        plain = float(za @ zr) / za.size
        if gr is None:
            return plain
        ga = _edges(arr)
        edges = -1.0 if ga is None else float(ga @ gr) / ga.size
        return min(plain, edges)

    # Start from the matched box or the whole image, whichever agrees better (a hash can match
    # a crop box by chance), then coordinate ascent on the four edges, each kept within 6 %.
    whole = np.array([0.0, 0.0, tw, th])
    start = np.array([x0, y0, x1, y1])
    best = score((x0, y0, x1, y1))
    if not np.allclose(start, whole):
        s_whole = score((0.0, 0.0, float(tw), float(th)))
        if s_whole > best:
            best, start = s_whole, whole
    limit = 0.06 * np.array([tw, th, tw, th])
    current = start.copy()
    if best < 0.3 or best > 0.995:  # unrelated, or already certain: no need to refine
        return best, ref_arr
    for step in (0.02, 0.01, 0.005):
        delta = step * np.array([tw, th, tw, th])
        if max(delta) < 0.25:  # finer than a quarter pixel of the test image: nothing to gain
            break
        improved = True
        while improved:
            improved = False
            for edge in range(4):
                for sign in (-1.0, 1.0):
                    trial = current.copy()
                    trial[edge] += sign * delta[edge]
                    trial[:2] = np.maximum(trial[:2], 0)
                    trial[2:] = np.minimum(trial[2:], [tw, th])
                    if np.any(np.abs(trial - start) > limit + 1e-9):
                        continue
                    if trial[2] - trial[0] < 1 or trial[3] - trial[1] < 1:
                        continue
                    s = score((trial[0], trial[1], trial[2], trial[3]))
                    if s > best + 1e-6:
                        best, current, improved = s, trial, True
    return best, ref_arr


# Contributors are named by the manifest, which may have been tampered with: reading one must
# not tell whether a file exists or why it cannot be read, and never leaves its recorded root.
CONTRIBUTOR_UNREADABLE = "cannot be read now (moved, changed, unreadable or not an image)"


@dataclass(frozen=True)
class TrainRow:
    """A contributor, by the root and relative name the sidecar stores."""

    root: str
    rel: str


@dataclass(frozen=True)
class Pair:
    """A candidate to verify: the reference image (a contributor, or another test image) as
    reports name it and where to read it, the pixel hash it must still have (None: not
    checked), and the query variant that matched."""

    ref: str
    expected: bytes | None
    variant: int
    distance: int
    where: TrainRow | ImageRef


@dataclass(frozen=True)
class Match:
    """A verified candidate: ``score`` is None when it could not be verified (``problem``)."""

    pair: Pair
    score: float | None
    problem: str = ""


@dataclass(frozen=True)
class VerifyTask:
    """Test images with their candidates; contributors are read from ``train``, test images
    from ``test``, in the manifest's mode."""

    jobs: list[tuple[ImageRef, list[Pair]]]
    test: Source
    train: Source
    mode_name: str
    read: ReadOptions


def verify_chunk(task: VerifyTask) -> list[list[Match]]:
    """Verify each test image's candidates on the pixels; runs in the engine's workers."""
    mode = get_mode(task.mode_name)
    out: list[list[Match]] = []
    tests = read_refs(task.test, [ref for ref, _ in task.jobs], mode, task.read)
    for (_, pairs), dec in zip(task.jobs, tests, strict=True):
        if isinstance(dec, Skipped):
            out.append([Match(p, None, f"test image unreadable now: {dec.reason}") for p in pairs])
            continue
        test = _work_gray(dec.pixels, mode.max_value)
        test_simple = _simple(test)
        results = []
        for pair in pairs:
            where = pair.where
            if isinstance(where, TrainRow):
                if not stays_inside(where.rel):
                    results.append(Match(pair, None, CONTRIBUTOR_UNREADABLE))
                    continue
                ref_dec = read_reference(task.train, where.root, where.rel, mode, task.read)
                if isinstance(ref_dec, Skipped):  # the same words whatever the reason (below)
                    results.append(Match(pair, None, CONTRIBUTOR_UNREADABLE))
                    continue
            else:
                ref_dec = next(read_refs(task.test, [where], mode, task.read))
            if isinstance(ref_dec, Skipped):
                results.append(Match(pair, None, f"cannot be read: {ref_dec.reason}"))
                continue
            if pair.expected is not None and pixel_hash(ref_dec.pixels, mode.name) != pair.expected:
                results.append(Match(pair, None, "changed since the statistics were computed"))
                continue
            ref = _work_gray(ref_dec.pixels, mode.max_value)
            box, mirrored = variant(pair.variant)
            score, ref_arr = _similarity(test, ref, box, mirrored)
            if score is None or ref_arr is None:
                results.append(Match(pair, None, "flat"))
                continue
            if (test_simple or _simple(ref)) and not _same_colour(
                dec.pixels.astype(np.float32), ref_dec.pixels.astype(np.float32)
            ):
                score = min(score, 0.0)
            results.append(Match(pair, score))
        out.append(results)
    return out
