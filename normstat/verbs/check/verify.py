"""Verification of one chunk of test images against their candidates, in a worker, from the
contributors' stored references (fingerprints.reference): no train file is opened.

Each candidate is compared with the test image under the hypotheses its size allows, each
giving a test-side thumbnail made the way compute made the contributor's:

- the whole image, and its mirror image (a sign flip of the features);
- resized to the contributor's size, when the sizes differ, with each of Pillow's box,
  bilinear, bicubic and Lanczos filters (the copy was made with one of them, or with something
  close): a 14×14 copy of a 28×28 digit lost detail that its thumbnail cannot have, so the
  test image loses it the same way before they are compared (matched bandwidth);
- cropped: when a crop box's hash found the candidate, the box is refined: a contributor that
  fits inside the test image is searched as a window of exactly its size (the crop kept its
  pixels), any other as a box whose edges move by up to 6 %.

Hypotheses are tried only for promising candidates (LOW agreement ≥ ``PROMISING``), at most
``RESIZE_CAP`` and ``CROP_CAP`` per test image: the work per test image is bounded. Then
decide.py judges the best candidate against the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from normstat.fingerprints import thumbnail

from .candidates import Found
from .decide import FLOOR, Rule, colour_agrees
from .features import LOW_DIMS, agreement, blurred_score, features, mirrored, paired
from .queries import BOXES, Batch, box_thumb, stretch_all

__all__ = ["PROMISING", "Contributors", "Verdict", "verify"]

PROMISING = 0.8  # LOW agreement a candidate needs before hypotheses are tried on it
RESIZE_CAP = 4
CROP_CAP = 2
CROP_AGREEMENT = (0.99, 0.95)  # LOW and BAND agreement a searched crop needs
_FILTERS = {
    "box": Image.Resampling.BOX,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Verdict:
    """A test image's best match when it is a leak or a look-alike: the contributor ``row``,
    the blurred-thumbnail agreement ``score``, ``distinct`` (decide.py), the per-band
    agreements, the pHash bits apart and the transformation found."""

    tier: str
    row: int
    score: float
    distinct: float
    low: float
    band: float
    neighbour: tuple[float, float]
    distance: int | None
    transform: dict[str, Any]


class Contributors:
    """The references of contributor rows (stored columns, or read from files): thumbnails
    (uint8 stretched), colours, sizes, pixel hashes, and their features, computed once."""

    def __init__(
        self,
        thumb: np.ndarray,
        colour: np.ndarray,
        size: np.ndarray,
        pixel_hash: np.ndarray,
        rows: np.ndarray,
        feats: np.ndarray | None = None,
    ) -> None:
        self.rows = rows  # sorted contributor rows these arrays hold
        self.thumb = thumb
        self.colour = colour
        self.size = size
        self.pixel_hash = pixel_hash
        self.features = features(thumb) if feats is None else feats

    def at(self, rows: np.ndarray) -> np.ndarray:
        """Positions of ``rows`` (all held) in these arrays."""
        return np.searchsorted(self.rows, rows)


@dataclass
class _Hypothesis:
    low: float
    band: float
    thumb: np.ndarray  # the test-side thumbnail (uint8 stretched) it compared
    transform: dict[str, Any] = field(default_factory=dict)


def _stretched(img: Image.Image) -> np.ndarray:
    t = thumbnail(img)
    return stretch_all((t / np.float32(255) if img.mode == "L" else t)[None])[0][0]


def _best_of(thumbs: list[np.ndarray], target: np.ndarray, mirror: bool) -> tuple[int, bool, np.ndarray]:
    """Which of ``thumbs`` (and, with ``mirror``, their mirror images) agrees best with the
    features ``target``: (index, mirrored, (low, band))."""
    f = features(np.stack(thumbs))
    s = agreement(f, target[None])[:, :, 0]  # (2, k)
    best, flip = int(np.argmax(s.sum(axis=0))), False
    if mirror:
        sm = agreement(mirrored(f), target[None])[:, :, 0]
        if sm.sum(axis=0).max() > s.sum(axis=0).max():
            best, flip, s = int(np.argmax(sm.sum(axis=0))), True, sm
    return best, flip, s[:, best]


class _Test:
    """One test image under verification."""

    def __init__(self, batch: Batch, i: int) -> None:
        prepared = batch.prepared[i]
        self.gray = prepared.gray  # ``factor`` times smaller than the image (large ones)
        self.factor = prepared.factor
        self.work = prepared.work
        self.h, self.w = (int(v) for v in batch.size[i])
        self.thumb = batch.thumb[i]
        self._resized: dict[tuple[int, int], list[np.ndarray]] = {}

    def cut(self, box: Box) -> Image.Image:
        """The region ``box`` (pixels of the image) of the luma copy: an exact crop when the
        copy is the image itself and the box whole pixels, else an area-averaged resample."""
        f = self.factor
        if f == 1 and all(float(v).is_integer() for v in box):
            return self.gray.crop(tuple(int(v) for v in box))
        x0, y0, x1, y1 = (v / f for v in box)
        size = (max(1, round(x1 - x0)), max(1, round(y1 - y0)))
        return self.gray.resize(size, Image.Resampling.BOX, box=(x0, y0, x1, y1))

    def resized(self, size: tuple[int, int]) -> list[np.ndarray]:
        """The test image resized to ``size`` (w, h) with each filter, as thumbnails."""
        got = self._resized.get(size)
        if got is None:
            got = self._resized[size] = [
                _stretched(self.gray.resize(size, f)) for f in _FILTERS.values()
            ]
        return got

    def resize_hypothesis(self, target: np.ndarray, size: tuple[int, int]) -> _Hypothesis:
        thumbs = self.resized(size)
        k, flip, s = _best_of(thumbs, target, mirror=True)
        thumb = thumbs[k][:, ::-1] if flip else thumbs[k]
        transform = {"mirrored": flip, "scale": size[0] / self.w, "filter": list(_FILTERS)[k]}
        return _Hypothesis(float(s[0]), float(s[1]), thumb, transform)

    def window_hypothesis(self, target: np.ndarray, size: tuple[int, int]) -> _Hypothesis:
        """A window of exactly ``size`` (w, h) pixels anywhere in the image (a crop, which kept
        its pixels): every position when there are at most WINDOWS, else a grid of them, then
        a finer search around the best."""
        cw, ch = size
        xs, ys = self.w - cw, self.h - ch  # the largest offsets
        seen: dict[tuple[int, int], tuple[float, np.ndarray, np.ndarray]] = {}

        def score(points: list[tuple[int, int]]) -> None:
            new = [p for p in dict.fromkeys(points) if p not in seen]
            if not new:
                return
            thumbs = np.stack([_stretched(self.cut((x, y, x + cw, y + ch))) for x, y in new])
            s = agreement(features(thumbs), target[None])[:, :, 0]
            for k, p in enumerate(new):
                seen[p] = (float(s[:, k].sum()), s[:, k], thumbs[k])

        def grid(step: int, cx: int, cy: int, reach: int) -> list[tuple[int, int]]:
            return [
                (min(max(x, 0), xs), min(max(y, 0), ys))
                for x in range(cx - reach, cx + reach + 1, step)
                for y in range(cy - reach, cy + reach + 1, step)
            ]

        step = max(1, -(-max(xs, ys) // 7))
        score(grid(step, xs // 2, ys // 2, step * 4))
        while step > 1:
            x, y = max(seen, key=lambda p: seen[p][0])
            step = max(1, step // 2)
            score(grid(step, x, y, step * 2))
        x, y = max(seen, key=lambda p: seen[p][0])
        _, s_best, thumb = seen[(x, y)]
        crop = [x / self.w, y / self.h, (x + cw) / self.w, (y + ch) / self.h]
        return _Hypothesis(float(s_best[0]), float(s_best[1]), thumb, {"crop": crop, "scale": 1.0})

    def box_hypothesis(self, target: np.ndarray, box: Box, size: tuple[int, int]) -> _Hypothesis:
        """A box of the contributor's aspect ratio (a crop, resized alike in both directions),
        moved and scaled from ``box`` by coordinate ascent, the six moves of each round scored
        together on area-averaged box thumbnails. Holding the aspect ratio keeps the search
        from fitting a look-alike: free edges would align any two-tone image's border."""
        cw, ch = size
        ratio = (cw / ch) * (self.h / self.w)  # box width ÷ height, in fractions

        def box_of(p: np.ndarray) -> np.ndarray | None:
            cx, cy, bw = p
            bh = bw / ratio
            b = np.array([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2])
            if bw < 0.7 or bh < 0.7 or b.min() < -1e-9 or b.max() > 1 + 1e-9:
                return None
            return np.clip(b, 0.0, 1.0)

        width = min(box[2] - box[0], (box[3] - box[1]) * ratio, 1.0)
        start = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2, width])
        for _ in range(8):  # pull the centre in until the box fits
            if box_of(start) is not None:
                break
            half = start[2] / 2, start[2] / ratio / 2
            start[0] = min(max(start[0], half[0]), 1 - half[0])
            start[1] = min(max(start[1], half[1]), 1 - half[1])
            if box_of(start) is None:
                start[2] *= 0.97
        first = box_of(start)
        if first is None:
            return _Hypothesis(-1.0, -1.0, self.thumb, {})
        current, b_best = start, first
        t0 = self.box_thumbs([first])
        s0 = agreement(features(t0), target[None])[:, 0, 0]
        best, s_best, t_best = float(s0.sum()), s0, t0[0]
        for step in (0.02, 0.01, 0.005):
            while True:
                trials, boxes = [], []
                for axis in range(3):
                    for sign in (-1.0, 1.0):
                        trial = current.copy()
                        trial[axis] += sign * step
                        b = box_of(trial)
                        if b is not None and np.abs(b - first).max() <= 0.08:
                            trials.append(trial)
                            boxes.append(b)
                if not trials:
                    break
                thumbs = self.box_thumbs(boxes)
                s = agreement(features(thumbs), target[None])[:, :, 0]
                k = int(np.argmax(s.sum(axis=0)))
                if s[:, k].sum() <= best + 1e-9:
                    break
                best, s_best, t_best = float(s[:, k].sum()), s[:, k], thumbs[k]
                current, b_best = trials[k], boxes[k]
        crop = [round(float(v), 4) for v in b_best]
        scale = cw / max(1e-9, (b_best[2] - b_best[0]) * self.w)
        return _Hypothesis(float(s_best[0]), float(s_best[1]), t_best, {"crop": crop, "scale": scale})

    def box_thumbs(self, boxes: list[np.ndarray]) -> np.ndarray:
        """Stretched area-averaged thumbnails of boxes (fractions) of the work copy."""
        thumbs = np.stack([box_thumb(self.work, tuple(b)) for b in boxes])
        return stretch_all(thumbs)[0]

    def boxed(self, box_index: int) -> np.ndarray:
        t = box_thumb(self.work, BOXES[box_index])
        return stretch_all(t[None])[0][0]


def _changes(transform: dict[str, Any], gain: float) -> list[str]:
    words = []
    scale = transform.get("scale")
    if transform.get("crop") is not None:
        words.append("cropped")
    if scale is not None and abs(scale - 1.0) > 0.02:
        words.append("resized")
    if transform.get("mirrored"):
        words.append("mirrored")
    if gain > 1.05:
        words.append("brighter")
    elif gain < 0.95:
        words.append("darker")
    return words or ["re-encoded"]


SUB = 32  # test images whose candidates are gathered at once (bounded memory)


def verify(
    batch: Batch,
    found: list[Found],
    refs: Contributors,
    sample: np.ndarray,
    rule: Rule,
) -> list[Verdict | None]:
    """The verdict of each test image of ``batch`` (None: nothing stands out). ``sample``:
    contributor rows every test image is also compared with (held by ``refs``). The common
    path, whole-image comparisons and the decision, runs on all test images at once; only
    those with candidates of another size try hypotheses one by one."""
    out: list[Verdict | None] = []
    tf = features(batch.thumb)
    for lo in range(0, len(found), SUB):
        out.extend(_verify_part(batch, found, refs, sample, rule, tf, lo))
    return out


def _verify_part(
    batch: Batch,
    found: list[Found],
    refs: Contributors,
    sample: np.ndarray,
    rule: Rule,
    tf_all: np.ndarray,
    lo: int,
) -> list[Verdict | None]:
    part = found[lo : lo + SUB]
    n = len(part)
    k = max([len(f.rows) for f in part] + [0])  # candidates, then the sample
    width = k + len(sample)
    if width == 0:
        return [None] * n
    rows = np.full((n, width), -1, dtype=np.int64)
    rows[:, k:] = sample
    for t, f in enumerate(part):
        rows[t, : len(f.rows)] = f.rows
    valid = rows >= 0
    for t, f in enumerate(part):  # a sample row among the candidates counts once
        valid[t, k:] &= ~np.isin(sample, f.rows)
    pos = refs.at(np.where(rows >= 0, rows, refs.rows[0] if len(refs.rows) else 0))
    tf = tf_all[lo : lo + n]
    cf = refs.features[pos[:, :k]]  # (n, k, DIMS): the candidates'
    sf = refs.features[pos[0, k:]]  # (s, DIMS): the sample's, the same for all
    plain = np.concatenate([_banded(cf, tf), _crossed(tf, sf)], axis=2)
    tfm = mirrored(tf)
    flip = np.concatenate([_banded(cf, tfm), _crossed(tfm, sf)], axis=2)
    use_flip = flip.sum(axis=0) > plain.sum(axis=0)
    scores = np.where(use_flip[None], flip, plain)  # (2, n, width)
    scores[:, ~valid] = -2.0
    hyps: list[dict[int, _Hypothesis]] = [{} for _ in range(n)]
    tests: list[_Test | None] = [None] * n
    for t, f in enumerate(part):
        sizes = refs.size[pos[t, : len(f.rows)]]
        h_t, w_t = (int(v) for v in batch.size[lo + t])
        other = (sizes[:, 0] != h_t) | (sizes[:, 1] != w_t)
        if not other.any():
            continue
        wanted = (f.box >= 0) & other | other & (scores[0, t, : len(f.rows)] >= PROMISING)
        if wanted.any():
            tests[t] = test = _Test(batch, lo + t)
            _hypotheses(test, f, cf[t], scores[:, t], other, sizes, hyps[t])
    # The decision, for all at once: the best entry, its twins, the nearest other.
    total = scores.sum(axis=0)
    best = np.argmax(total, axis=1)
    at = np.arange(n)
    s_best = scores[:, at, best]  # (2, n)
    hashes = refs.pixel_hash[pos]  # (n, width, 16)
    same = np.all(hashes == hashes[at, best][:, None, :], axis=2)
    bf = refs.features[pos[at, best]]  # (n, DIMS): each best entry's features
    mutual = np.concatenate([_banded(cf, bf), _crossed(bf, sf)], axis=2)
    twins = same | np.all(mutual >= s_best[:, :, None], axis=0)
    others = valid & ~twins
    others[at, best] = False
    near = np.where(others[None], scores, -2.0).max(axis=2)
    near = np.where(others.any(axis=1)[None], near, 0.0)
    near = np.clip(near, -1.0, 1.0 - FLOOR)
    d_best = np.maximum(1.0 - s_best, FLOOR)
    distinct = ((1.0 - near) / d_best).max(axis=0)
    out: list[Verdict | None] = []
    for t in range(n):
        if distinct[t] < rule.look or not valid[t, best[t]]:
            out.append(None)
            continue
        test = tests[t] or _Test(batch, lo + t)
        b = int(best[t])
        verdict = _verdict(
            batch, lo + t, part[t], refs, pos[t], rows[t], b, scores[:, t], bool(use_flip[t, b]),
            hyps[t].get(b), test, float(distinct[t]), (float(near[0, t]), float(near[1, t])), rule
        )
        out.append(verdict)
    return out


def _banded(cf: np.ndarray, tf: np.ndarray) -> np.ndarray:
    """Per band, the agreement of each entry of ``cf`` (n, m, DIMS) with the row of ``tf`` (n,
    DIMS) of its test image: (2, n, m)."""
    low = np.matmul(cf[:, :, :LOW_DIMS], tf[:, :LOW_DIMS, None])[..., 0]
    band = np.matmul(cf[:, :, LOW_DIMS:], tf[:, LOW_DIMS:, None])[..., 0]
    return np.stack([low, band])


def _crossed(tf: np.ndarray, sf: np.ndarray) -> np.ndarray:
    """Per band, the agreement of every row of ``tf`` (n, DIMS) with every row of ``sf`` (s,
    DIMS): (2, n, s)."""
    return agreement(tf, sf)


def _hypotheses(
    test: _Test,
    f: Found,
    cf: np.ndarray,
    scores: np.ndarray,
    other: np.ndarray,
    sizes: np.ndarray,
    hyps: dict[int, _Hypothesis],
) -> None:
    """Try the crop and resize hypotheses on one test image's candidates of another size;
    ``scores`` (2, width) is updated where a hypothesis agrees better."""
    n = len(f.rows)

    def keep(j: int, hyp: _Hypothesis, searched: bool = False) -> None:
        """A hypothesis replaces the whole-image comparison when it agrees better; a searched
        box (a crop) only when it agrees as a crop of a copy does (CROP_AGREEMENT): a box
        fitted to a look-alike scores above the look-alikes around it, which were not."""
        if searched and (hyp.low < CROP_AGREEMENT[0] or hyp.band < CROP_AGREEMENT[1]):
            return
        if hyp.low + hyp.band > scores[:, j].sum():
            hyps[j] = hyp
            scores[:, j] = (hyp.low, hyp.band)

    # Crops: the box finds of another size, best box agreement first.
    boxed = np.flatnonzero((f.box >= 0) & other)
    if len(boxed):
        boxes, which = np.unique(f.box[boxed], return_inverse=True)
        box_feats = features(np.stack([test.boxed(int(b)) for b in boxes]))
        s_box = paired(box_feats[which], cf[boxed])
        for k in np.argsort(-s_box.sum(axis=0), kind="stable")[:CROP_CAP].tolist():
            j = int(boxed[k])
            if s_box[0, k] < PROMISING:
                break
            h, w = (int(v) for v in sizes[j])
            box = BOXES[int(f.box[j])]
            fits = w <= test.w and h <= test.h and w >= 0.75 * test.w and h >= 0.75 * test.h
            if fits:
                keep(j, test.window_hypothesis(cf[j], (w, h)), searched=True)
            else:
                keep(j, test.box_hypothesis(cf[j], box, (w, h)), searched=True)
    # Resized copies: the promising finds of another size.
    resizable = np.flatnonzero(other & (scores[0, :n] >= PROMISING))
    for j in resizable[np.argsort(-scores[0, resizable], kind="stable")][:RESIZE_CAP].tolist():
        h, w = (int(v) for v in sizes[j])
        keep(j, test.resize_hypothesis(cf[j], (w, h)))


def _verdict(
    batch: Batch,
    i: int,
    f: Found,
    refs: Contributors,
    pos: np.ndarray,
    rows: np.ndarray,
    b: int,
    scores: np.ndarray,
    flipped: bool,
    hyp: _Hypothesis | None,
    test: _Test,
    distinct: float,
    neighbour: tuple[float, float],
    rule: Rule,
) -> Verdict | None:
    """The verdict on test image ``i``'s best entry ``b``, once it stands out: the colour
    test, the agreement threshold, the tier and the transformation found."""
    if not colour_agrees(batch.colour[i], refs.colour[pos[b]]):
        return None
    thumb = hyp.thumb if hyp else (test.thumb[:, ::-1] if flipped else test.thumb)
    score = blurred_score(thumb, refs.thumb[pos[b]])
    if score < rule.threshold:
        return None
    tier = "leak" if distinct >= rule.margin else "look-alike"
    transform: dict[str, Any] = {"mirrored": flipped, "crop": None, "scale": None}
    if hyp is not None:
        transform.update(hyp.transform)
    h, w = (int(v) for v in refs.size[pos[b]])
    if transform["scale"] is None and (w, h) != (test.w, test.h):
        transform["scale"] = w / test.w
    lum_t, lum_c = float(batch.colour[i].sum()), float(refs.colour[pos[b]].sum())
    gain = lum_c / lum_t if lum_t > 1e-6 else 1.0
    transform["gain"] = round(gain, 4)
    transform["changes"] = _changes(transform, gain)
    distance = None
    if b < len(f.rows):
        distance = int(f.distance[b]) if f.distance[b] >= 0 else int(f.box_distance[b])
    return Verdict(
        tier,
        int(rows[b]),
        score,
        distinct,
        float(scores[0, b]),
        float(scores[1, b]),
        neighbour,
        distance,
        transform,
    )
