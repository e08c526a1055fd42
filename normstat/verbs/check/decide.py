"""Whether a test image's best match is a copy: it must stand out from the test image's
neighbourhood, not merely score high.

Natural look-alikes (thin strokes, one font's digits, a smooth sky) score as high as copies do;
what they do not do is stand apart from every other look-alike. So each candidate's
disagreement with the test image, ``1 - agreement`` in each band (features.py), is compared
with that of the nearest OTHER distinct contributor (among the candidates and a fixed sample of
contributors, so that a sparse hash neighbourhood does not read as "nothing like it exists"):

    distinct = max over bands of (1 - s_nearest_other) / (1 - s_best)

A copy disagrees with the test image only by its re-encoding noise or resampling: tens to
thousands of times less than with the nearest other image. A look-alike disagrees about as
much as its neighbours do (on the benchmark's clean splits, at most 9.2 times less). Other
copies of the best match (same pixels, or closer to it than the test image is) are not its
neighbours: a test image copied from an image the train split holds twice is still found.

Tiers: ``leak`` when distinct reaches ``margin`` (the gate fails), ``look-alike`` when it
reaches ``look`` (listed for review). Both need the mean colours to agree up to a brightness
change: luma alone cannot tell a green gradient from a grey one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["FLOOR", "Decisions", "Rule", "colour_agrees", "decide", "tier"]

FLOOR = 1e-6  # the least disagreement counted (1 - agreement), so ratios stay finite


@dataclass(frozen=True)
class Rule:
    """``margin``: distinctness a leak needs; ``look``: a look-alike's; ``threshold``: the
    least agreement (blurred-thumbnail correlation) either needs."""

    margin: float = 12.0
    look: float = 4.0
    threshold: float = 0.9


@dataclass(frozen=True)
class Decisions:
    """For each test image: its ``best`` entry, how ``distinct`` it is, and the nearest other
    entry's agreement per band (``near``, (2, n))."""

    best: np.ndarray
    distinct: np.ndarray
    near: np.ndarray


def decide(
    scores: np.ndarray, valid: np.ndarray, twins: Callable[[np.ndarray], np.ndarray]
) -> Decisions:
    """``scores`` (2, n, m): each test image's agreement with each of its m entries per band
    (LOW, BAND); ``valid`` (n, m): which entries exist. ``twins(best)`` gives, for the best
    entry of each test image, (n, m) True for the entries that are copies of it (not its
    neighbours). A test image without any other entry has no neighbour closer than
    agreement 0."""
    n = scores.shape[1]
    at = np.arange(n)
    total = np.where(valid, scores.sum(axis=0), -np.inf)
    best = np.argmax(total, axis=1) if scores.shape[2] else np.zeros(n, dtype=np.int64)
    s_best = scores[:, at, best] if scores.shape[2] else np.zeros((2, n))
    others = valid & ~twins(best)
    if scores.shape[2]:
        others[at, best] = False
    near = np.where(others[None], scores, -2.0).max(axis=2) if scores.shape[2] else s_best * 0
    near = np.where(others.any(axis=1)[None], near, 0.0)
    near = np.clip(near, -1.0, 1.0 - FLOOR)
    d_best = np.maximum(1.0 - s_best, FLOOR)
    distinct = ((1.0 - near) / d_best).max(axis=0)
    distinct = np.where(valid.any(axis=1), distinct, 0.0)
    return Decisions(best, distinct, near)


def colour_agrees(a: np.ndarray, b: np.ndarray) -> bool:
    """Mean colours (r, g, b in [0, 1]) equal up to one brightness factor and a little noise.
    Dark images (whose chromaticity is noise) agree."""
    sa, sb = float(a.sum()), float(b.sum())
    if sa < 0.06 or sb < 0.06:
        return True
    gain = sa / sb
    if not 0.4 <= gain <= 2.5:
        return False
    return bool(np.abs(a / sa - b / sb).max() <= 0.04)


def tier(distinct: float, agreement: float, colour_ok: bool, rule: Rule) -> str | None:
    """ "leak", "look-alike" or None, for a best entry that stands out ``distinct`` times."""
    if distinct < rule.look or not colour_ok or agreement < rule.threshold:
        return None
    return "leak" if distinct >= rule.margin else "look-alike"
