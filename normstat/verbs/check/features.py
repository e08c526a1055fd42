"""What verification compares: two band-pass views of a 32×32 luma thumbnail, as unit vectors,
so that the agreement of two images in each band is one dot product.

The thumbnails (stored ones are stretched to 0-255, see fingerprints.reference) go to the DCT
domain once, keeping the lowest ``KEEP`` frequencies per axis (the rest carry compression noise
that no band below uses). A Gaussian blur with mirrored edges is diagonal in that basis, so the
blurred images of the spatial recipe are weights on the coefficients:

- ``LOW``: blurred with σ = 2 thumbnail pixels: layout and shading. Re-encoding, resampling and
  brightness changes leave it intact (a JPEG copy of a photograph agrees to within 0.002),
  whereas two photographs of one scene differ there.
- ``BAND``: σ = 1 minus σ = 2: strokes and edges. Two different drawings of the same digit
  agree in LOW (their blobs overlap) but not here, where a copy still does.

Reports show one agreement figure, ``blurred_score``: the Pearson correlation of the two
thumbnails blurred by σ = 1.

The DC coefficient is left out everywhere: correlations ignore brightness and contrast. A left-
right mirror flips the sign of every odd horizontal frequency, so mirrored comparisons cost
nothing more.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "DIMS",
    "KEEP",
    "LOW_DIMS",
    "SIDE",
    "agreement",
    "blurred_score",
    "coefficients",
    "features",
    "mirrored",
    "paired",
]

SIDE = 32  # thumbnail side (fingerprints.THUMB)
KEEP = 24  # DCT frequencies kept per axis
LOW_KEEP = 14  # of which LOW uses these
LOW_DIMS = LOW_KEEP * LOW_KEEP  # the LOW features come first
DIMS = LOW_DIMS + KEEP * KEEP


def _dct(n: int) -> np.ndarray:
    k, x = np.arange(n)[:, None], np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * x + 1) * k / (2 * n)) * np.sqrt(2 / n)
    m[0] /= np.sqrt(2)
    return m


def _blur(n: int, sigma: float) -> np.ndarray:
    """Gaussian blur (±3σ) with half-sample mirrored edges, as an n×n matrix."""
    r = int(np.ceil(3 * sigma))
    taps = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    taps /= taps.sum()
    m = np.zeros((n, n))
    for i in range(n):
        for j, w in zip(range(i - r, i + r + 1), taps, strict=True):
            m[i, -j - 1 if j < 0 else 2 * n - j - 1 if j >= n else j] += w
    return m


def _response(sigma: float) -> np.ndarray:
    """The blur's gain on each DCT frequency (it is diagonal in that basis)."""
    d = _dct(SIDE)
    return np.diag(d @ _blur(SIDE, sigma) @ d.T)[:KEEP]


_D = _dct(SIDE)[:KEEP].astype(np.float32)
_R1, _R2 = np.outer(*[_response(1.0)] * 2), np.outer(*[_response(2.0)] * 2)
_LOW = _R2[:LOW_KEEP, :LOW_KEEP].astype(np.float32)  # beyond LOW_KEEP its gain is below 0.1
_BAND = (_R1 - _R2).astype(np.float32)
_LOW[0, 0] = _BAND[0, 0] = 0  # the DC term: brightness
_ODD = np.zeros((KEEP, KEEP), dtype=np.float32)
_ODD[:, 1::2] = 1  # odd horizontal frequencies: a mirror flips their sign
_MIRROR = 1 - 2 * np.concatenate([_ODD[:LOW_KEEP, :LOW_KEEP].ravel(), _ODD.ravel()])


def _unit(v: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Rows of ``v`` as unit vectors; a row whose norm is rounding noise against ``scale`` (the
    largest coefficient of its thumbnail, brightness included) becomes zeros."""
    norms = np.sqrt(np.einsum("nd,nd->n", v, v))[:, None]
    return np.divide(v, norms, out=np.zeros_like(v), where=norms > 1e-5 * scale[:, None])


def coefficients(thumbs: np.ndarray) -> np.ndarray:
    """The KEEP×KEEP lowest DCT coefficients of thumbnails (n, 32, 32): (n, KEEP, KEEP)."""
    t = np.asarray(thumbs, dtype=np.float32).reshape(-1, SIDE, SIDE)
    return np.matmul(np.matmul(_D, t), _D.T)


def features(thumbs: np.ndarray) -> np.ndarray:
    """Band features of thumbnails (n, 32, 32), any real dtype: (n, DIMS) float32, the LOW
    unit vector then the BAND one (a flat thumbnail gives zeros, which agree with nothing)."""
    c = coefficients(thumbs)
    scale = np.abs(c).reshape(len(c), -1).max(axis=1) if len(c) else np.zeros(0, np.float32)
    low = _unit((c[:, :LOW_KEEP, :LOW_KEEP] * _LOW).reshape(len(c), LOW_DIMS), scale)
    band = _unit((c * _BAND).reshape(len(c), KEEP * KEEP), scale)
    return np.concatenate([low, band], axis=1)


def agreement(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per band (LOW, BAND), the correlations of feature rows ``a`` (n, DIMS) with ``b`` (m,
    DIMS): (2, n, m); or of row pairs when both are (n, DIMS) and ``pairs``."""
    split = LOW_KEEP * LOW_KEEP
    return np.stack([a[:, :split] @ b[:, :split].T, a[:, split:] @ b[:, split:].T])


def paired(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per band, the correlations of row i of ``a`` with row i of ``b``: (2, n)."""
    split = LOW_KEEP * LOW_KEEP
    prod = a * b
    return np.stack([prod[:, :split].sum(axis=1), prod[:, split:].sum(axis=1)])


def mirrored(feats: np.ndarray) -> np.ndarray:
    """The features of the left-right mirror images."""
    return feats * _MIRROR


def blurred_score(a: np.ndarray, b: np.ndarray) -> float:
    """The Pearson correlation of two thumbnails blurred by σ = 1: the one agreement figure
    reports show."""
    ca, cb = (coefficients(t)[0] * _R1 for t in (a, b))
    ca[0, 0] = cb[0, 0] = 0
    den = float(np.sqrt((ca * ca).sum() * (cb * cb).sum()))
    return float((ca * cb).sum() / den) if den > 1e-12 else 0.0
