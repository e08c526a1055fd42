"""Verification of one chunk of test images against their candidates, in a worker, from the
contributors' stored references (fingerprints.reference): no train file is opened.

Each candidate is compared with the whole test image and its mirror image (a sign flip of the
features); candidates of another size also under the hypotheses of hypotheses.py (resized,
cropped). The comparisons and the decision (decide.py: does the best candidate stand out from
the others?) run on all test images of a chunk at once; only test images with candidates of
another size try hypotheses one by one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .candidates import Found
from .decide import Rule, colour_agrees, decide, tier
from .features import LOW_DIMS, agreement, blurred_score, features, mirrored
from .hypotheses import PROMISING, Hypothesis, TestImage, try_hypotheses
from .queries import Batch

__all__ = ["Contributors", "Verdict", "verify"]


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
    """The references of contributor rows (stored columns, or read from files): colours,
    sizes, pixel hashes and features, by position; ``thumb(position)`` gives one thumbnail
    (uint8 stretched), read only for the matches reported."""

    def __init__(
        self,
        thumb: Callable[[int], np.ndarray],
        colour: np.ndarray,
        size: np.ndarray,
        pixel_hash: np.ndarray,
        rows: np.ndarray,
        feats: np.ndarray,
    ) -> None:
        self.rows = rows  # sorted contributor rows these arrays hold
        self.thumb = thumb
        self.colour = colour
        self.size = size
        self.pixel_hash = pixel_hash
        self.features = feats

    def at(self, rows: np.ndarray) -> np.ndarray:
        """Positions of ``rows`` (all held) in these arrays."""
        return np.searchsorted(self.rows, rows)


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
    if len(sample):  # a sample row among the candidates counts once
        owner = np.concatenate([np.full(len(f.rows), t) for t, f in enumerate(part)] + [[]])
        cands = np.concatenate([f.rows for f in part] + [[]]).astype(np.int64)
        at = np.minimum(np.searchsorted(sample, cands), len(sample) - 1)
        hit = sample[at] == cands
        valid[owner[hit].astype(np.int64), k + at[hit]] = False
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
    hyps: list[dict[int, Hypothesis]] = [{} for _ in range(n)]
    tests: list[TestImage | None] = [None] * n
    for t, f in enumerate(part):
        sizes = refs.size[pos[t, : len(f.rows)]]
        h_t, w_t = (int(v) for v in batch.size[lo + t])
        other = (sizes[:, 0] != h_t) | (sizes[:, 1] != w_t)
        if not other.any():
            continue
        wanted = (f.box >= 0) & other | other & (scores[0, t, : len(f.rows)] >= PROMISING)
        if wanted.any():
            tests[t] = test = TestImage(batch, lo + t)
            try_hypotheses(test, f, cf[t], scores[:, t], other, sizes, hyps[t])
    at = np.arange(n)

    def twins(best: np.ndarray) -> np.ndarray:
        """Entries with the best one's pixels, or at least as close to it in both bands as
        the test image is: copies of it, not its neighbours."""
        hashes = refs.pixel_hash[pos]  # (n, width, 16)
        same = np.all(hashes == hashes[at, best][:, None, :], axis=2)
        bf = refs.features[pos[at, best]]  # (n, DIMS): each best entry's features
        mutual = np.concatenate([_banded(cf, bf), _crossed(bf, sf)], axis=2)
        return same | np.all(mutual >= scores[:, at, best][:, :, None], axis=0)

    decided = decide(scores, valid, twins)
    best, distinct, near = decided.best, decided.distinct, decided.near
    out: list[Verdict | None] = []
    for t in range(n):
        if distinct[t] < rule.look:
            out.append(None)
            continue
        test = tests[t] or TestImage(batch, lo + t)
        b = int(best[t])
        verdict = _verdict(
            batch,
            lo + t,
            part[t],
            refs,
            pos[t],
            rows[t],
            b,
            scores[:, t],
            bool(use_flip[t, b]),
            hyps[t].get(b),
            test,
            float(distinct[t]),
            (float(near[0, t]), float(near[1, t])),
            rule,
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
    hyp: Hypothesis | None,
    test: TestImage,
    distinct: float,
    neighbour: tuple[float, float],
    rule: Rule,
) -> Verdict | None:
    """The verdict on test image ``i``'s best entry ``b``, once it stands out: the colour
    test, the agreement threshold, the tier and the transformation found."""
    thumb = hyp.thumb if hyp else (test.thumb[:, ::-1] if flipped else test.thumb)
    score = blurred_score(thumb, refs.thumb(int(pos[b])))
    colour_ok = colour_agrees(batch.colour[i], refs.colour[pos[b]])
    found = tier(distinct, score, colour_ok, rule)
    if found is None:
        return None
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
        found,
        int(rows[b]),
        score,
        distinct,
        float(scores[0, b]),
        float(scores[1, b]),
        neighbour,
        distance,
        transform,
    )
