"""The ways a test image may have become a contributor of another size, each tried as a
hypothesis: its thumbnail made from the test image the way compute made the contributor's.

- resized to the contributor's size with each of Pillow's box, bilinear, bicubic and Lanczos
  filters (the copy was made with one of them, or with something close): a 14×14 copy of a
  28×28 digit lost detail that its thumbnail cannot have, so the test image loses it the same
  way before they are compared (matched bandwidth);
- cropped: when a crop box's hash found the candidate, a contributor that fits inside the test
  image is searched as a window of exactly its size (the crop kept its pixels), any other as a
  box of its aspect ratio (a crop, then resized).

Hypotheses are tried only for promising candidates (LOW agreement ≥ ``PROMISING``), at most
``RESIZE_CAP`` and ``CROP_CAP`` per test image (``CROP_CAP_SMALL`` for images of at most
``SMALL_SIDE`` pixels a side, whose windows cost little): the work per test image is bounded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from normstat.fingerprints import thumbnail

from .candidates import Found
from .features import agreement, features, mirrored, paired
from .queries import BOXES, Batch, box_thumb, stretch_all, window_weights

__all__ = ["PROMISING", "Hypothesis", "TestImage", "try_hypotheses"]

PROMISING = 0.8  # LOW agreement a candidate needs before hypotheses are tried on it
RESIZE_CAP = 4
CROP_CAP = 2
CROP_CAP_SMALL = 8
SMALL_SIDE = 64
BOX_PROMISING = 0.5  # a box find's LOW agreement before its crop is searched (the box grid
# is 2.5 % off at worst: on fine texture that costs more than a re-encoding does)
WINDOWS = 64  # window positions tried one by one; beyond, a coarse search on the work copy first
WORK_WINDOWS = 16  # window positions per axis of that coarse search, at most
CROP_AGREEMENT = (0.99, 0.95)  # LOW and BAND agreement a searched crop needs
_FILTERS = {
    "box": Image.Resampling.BOX,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}
Box = tuple[float, float, float, float]


@dataclass
class Hypothesis:
    low: float
    band: float
    thumb: np.ndarray  # the test-side thumbnail (uint8 stretched) it compared
    transform: dict[str, Any] = field(default_factory=dict)


def _stretched(img: Image.Image) -> np.ndarray:
    t = thumbnail(img)
    return stretch_all((t / np.float32(255) if img.mode == "L" else t)[None])[0][0]


def _best_of(
    thumbs: list[np.ndarray], target: np.ndarray, mirror: bool
) -> tuple[int, bool, np.ndarray]:
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


class TestImage:
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
            return self.gray.crop((int(box[0]), int(box[1]), int(box[2]), int(box[3])))
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

    def resize_hypothesis(self, target: np.ndarray, size: tuple[int, int]) -> Hypothesis:
        thumbs = self.resized(size)
        k, flip, s = _best_of(thumbs, target, mirror=True)
        thumb = thumbs[k][:, ::-1] if flip else thumbs[k]
        transform = {"mirrored": flip, "scale": size[0] / self.w, "filter": list(_FILTERS)[k]}
        return Hypothesis(float(s[0]), float(s[1]), thumb, transform)

    def window_hypothesis(self, target: np.ndarray, size: tuple[int, int]) -> Hypothesis:
        """A window of exactly ``size`` (w, h) pixels anywhere in the image (a crop, which kept
        its pixels): every position when there are at most ``WINDOWS``; else every position of
        the work copy (area averages, a few matrix products), then a finer search around the
        best with the image's own pixels."""
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

        if (xs + 1) * (ys + 1) <= WINDOWS:
            step = 1
            score(grid(1, xs // 2, ys // 2, max(xs, ys)))
        else:
            x, y, step = self._coarse_window(target, size)
            score(grid(step, x, y, step))
        while step > 1:
            x, y = max(seen, key=lambda p: seen[p][0])
            step = max(1, step // 2)
            score(grid(step, x, y, step * 2))
        x, y = max(seen, key=lambda p: seen[p][0])
        _, s_best, thumb = seen[(x, y)]
        crop = [x / self.w, y / self.h, (x + cw) / self.w, (y + ch) / self.h]
        return Hypothesis(
            float(s_best[0]),
            float(s_best[1]),
            thumb,
            {"mirrored": False, "crop": crop, "scale": 1.0},
        )

    def _coarse_window(self, target: np.ndarray, size: tuple[int, int]) -> tuple[int, int, int]:
        """The window position (image pixels) whose area-averaged thumbnail on the work copy
        agrees best, and the step (image pixels) of that search."""
        cw, ch = size
        hw, ww = self.work.shape
        span = max(self.w - cw, self.h - ch)
        stride = max(1, round(self.w / ww), -(-span // (WORK_WINDOWS - 1)))  # image pixels
        xs = list(range(0, self.w - cw + 1, stride))
        ys = list(range(0, self.h - ch + 1, stride))
        wx = window_weights(ww, tuple((x / self.w, (x + cw) / self.w) for x in xs))
        wy = window_weights(hw, tuple((y / self.h, (y + ch) / self.h) for y in ys))
        cols = np.matmul(self.work[None], wx.transpose(0, 2, 1))  # (nx, hw, 32)
        thumbs = np.matmul(wy[:, None], cols[None]).reshape(-1, 32, 32)  # (ny * nx, 32, 32)
        s = agreement(features(thumbs), target[None])[:, :, 0].sum(axis=0)
        k = int(np.argmax(s))
        return xs[k % len(xs)], ys[k // len(xs)], stride

    def box_hypothesis(self, target: np.ndarray, box: Box, size: tuple[int, int]) -> Hypothesis:
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
            return Hypothesis(-1.0, -1.0, self.thumb, {})
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
        return Hypothesis(
            float(s_best[0]),
            float(s_best[1]),
            t_best,
            {"mirrored": False, "crop": crop, "scale": scale},
        )

    def box_thumbs(self, boxes: list[np.ndarray]) -> np.ndarray:
        """Stretched area-averaged thumbnails of boxes (fractions) of the work copy."""
        thumbs = np.stack([box_thumb(self.work, tuple(b)) for b in boxes])
        return stretch_all(thumbs)[0]

    def boxed(self, box_index: int) -> np.ndarray:
        t = box_thumb(self.work, BOXES[box_index])
        return stretch_all(t[None])[0][0]


def try_hypotheses(
    test: TestImage,
    f: Found,
    cf: np.ndarray,
    scores: np.ndarray,
    other: np.ndarray,
    sizes: np.ndarray,
    hyps: dict[int, Hypothesis],
) -> None:
    """Try the crop and resize hypotheses on one test image's candidates of another size;
    ``scores`` (2, width) is updated where a hypothesis agrees better."""
    n = len(f.rows)

    def keep(j: int, hyp: Hypothesis, searched: bool = False) -> None:
        """A hypothesis replaces the whole-image comparison when it agrees better; a searched
        box (a crop) only when it agrees as a crop of a copy does (CROP_AGREEMENT): a box
        fitted to a look-alike scores above the look-alikes around it, which were not."""
        if searched and (hyp.low < CROP_AGREEMENT[0] or hyp.band < CROP_AGREEMENT[1]):
            return
        if hyp.low + hyp.band > scores[:, j].sum():
            hyps[j] = hyp
            scores[:, j] = (hyp.low, hyp.band)

    def fits(j: int) -> bool:
        """Whether candidate ``j`` could be a crop of the test image that kept its pixels."""
        h, w = (int(v) for v in sizes[j])
        return w <= test.w and h <= test.h and w >= 0.75 * test.w and h >= 0.75 * test.h

    # Crops: the box finds of another size, best box agreement first; then the whole-image
    # finds of a crop's size (a small crop can keep the hash of the whole image).
    tried: list[int] = []
    boxed = np.flatnonzero((f.box >= 0) & other)
    if len(boxed):
        boxes, which = np.unique(f.box[boxed], return_inverse=True)
        box_feats = features(np.stack([test.boxed(int(b)) for b in boxes]))
        s_box = paired(box_feats[which], cf[boxed])
        cap = CROP_CAP_SMALL if max(test.w, test.h) <= SMALL_SIDE else CROP_CAP
        for k in np.argsort(-s_box.sum(axis=0), kind="stable")[:cap].tolist():
            j = int(boxed[k])
            if s_box[0, k] < BOX_PROMISING:
                break
            tried.append(j)
            h, w = (int(v) for v in sizes[j])
            if fits(j):
                keep(j, test.window_hypothesis(cf[j], (w, h)), searched=True)
            else:
                keep(j, test.box_hypothesis(cf[j], BOXES[int(f.box[j])], (w, h)), searched=True)
    promising = np.flatnonzero(other & (scores[0, :n] >= PROMISING))
    for j in promising[np.argsort(-scores[0, promising], kind="stable")].tolist():
        if len(tried) >= (CROP_CAP_SMALL if max(test.w, test.h) <= SMALL_SIDE else CROP_CAP):
            break
        if j not in tried and fits(j):
            tried.append(j)
            h, w = (int(v) for v in sizes[j])
            keep(j, test.window_hypothesis(cf[j], (w, h)), searched=True)
    # Resized copies: the promising finds of another size.
    resizable = np.flatnonzero(other & (scores[0, :n] >= PROMISING))
    for j in resizable[np.argsort(-scores[0, resizable], kind="stable")][:RESIZE_CAP].tolist():
        h, w = (int(v) for v in sizes[j])
        keep(j, test.resize_hypothesis(cf[j], (w, h)))
