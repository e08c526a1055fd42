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
much as its neighbours do (on the benchmark's clean splits, at most ~8 times less). Other
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

__all__ = ["FLOOR", "Decision", "Rule", "colour_agrees", "decide"]

FLOOR = 1e-6  # the least disagreement counted (1 - agreement), so ratios stay finite


@dataclass(frozen=True)
class Rule:
    """``margin``: distinctness a leak needs; ``look``: a look-alike's; ``threshold``: the
    least agreement (blurred-thumbnail correlation) either needs."""

    margin: float = 12.0
    look: float = 4.0
    threshold: float = 0.9


@dataclass(frozen=True)
class Decision:
    best: int  # index into the candidates
    distinct: float
    tier: str | None  # "leak", "look-alike" or None
    neighbour: tuple[float, float]  # the nearest other's agreement per band


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


def decide(
    scores: np.ndarray,
    twins_of: Callable[[int], np.ndarray],
    agree: Callable[[int], float],
    colour_ok: Callable[[int], bool],
    rule: Rule,
) -> Decision | None:
    """``scores`` (2, m): each candidate's agreement with the test image per band (LOW, BAND).
    For the best candidate ``b`` the caller tells ``twins_of(b)`` (m,) bool: the candidates
    that are copies of it; ``agree(b)``: its blurred-thumbnail agreement; ``colour_ok(b)``."""
    m = scores.shape[1]
    if m == 0:
        return None
    best = int(np.argmax(scores.sum(axis=0)))
    others = ~twins_of(best)
    others[best] = False
    near = scores[:, others].max(axis=1) if others.any() else np.zeros(2)
    near = np.clip(near, -1.0, 1.0 - FLOOR)
    d_best = np.maximum(1.0 - scores[:, best], FLOOR)
    distinct = float(np.max((1.0 - near) / d_best))
    tier = None
    if distinct >= rule.look and colour_ok(best) and agree(best) >= rule.threshold:
        if distinct >= rule.margin:
            tier = "leak"
        elif distinct >= rule.look:
            tier = "look-alike"
    return Decision(best, distinct, tier, (float(near[0]), float(near[1])))
