"""Validation of the covariance keys (``compute --covariance``): ``state.covariance`` must be the
cross products of a possible dataset, and ``raw.covariance``, ``correlation`` and ``pca`` what
they give. Manifests without them (0.2, or computed without the option) are valid as they are,
but either half without the other is not.

The eigenvectors are checked by what they must be (orthonormal, ``C·v = λ·v``), not against a
fresh decomposition: with repeated eigenvalues (a grey dataset) any basis of the eigenspace is
right, and LAPACK builds may pick different ones."""

from __future__ import annotations

from fractions import Fraction
from itertools import pairwise
from typing import Any

import numpy as np

from normstat.modes import Mode
from normstat.reduce.covariance import CrossMoments, correlation, pairs
from normstat.reduce.exact import BITS

from .values import Reader

__all__ = ["check_covariance"]

_REPORTED = ("correlation", "pca")
_TOLERANCE = 1e-9  # relative to the largest eigenvalue: a symmetric eigensolver's accuracy


def check_covariance(r: Reader, data: dict[str, Any], mode: Mode, count: int) -> None:
    """The covariance keys, when present, agree with each other and with ``state``."""
    state, raw = data["state"], data["raw"]
    present = [k for k in ("covariance",) if k in raw] + [k for k in _REPORTED if k in data]
    if "covariance" not in state:
        if present:
            r.fail(f"'{present[0]}' without 'state.covariance'")
        return
    missing = [k for k in ("raw.covariance", *_REPORTED) if k.split(".")[-1] not in present]
    if missing:
        r.fail(f"'state.covariance' without '{missing[0]}'")
    cross = _state(r, r.obj(state["covariance"], "state.covariance"), mode, count)
    totals, squares = _channel_sums(r, state, mode)
    for k, (i, j) in enumerate(pairs(len(mode.channels))):
        if cross.sums[k] ** 2 > squares[i] * squares[j]:  # Cauchy-Schwarz
            r.fail("'state.covariance' sums are not those of any data (out of range)")
    cov = cross.covariance(count, totals, squares)
    n = len(mode.channels)
    stored = _matrix(r, raw["covariance"], "raw.covariance", n)
    for i in range(n):
        r.agrees(stored[i][i], float(data["raw"]["var"][i]), "raw.covariance")
        for j in range(n):
            r.agrees(stored[i][j], float(cov[i][j]), "raw.covariance")
    _correlation(r, data["correlation"], correlation(cov), n)
    unit = np.array([[float(v / Fraction(mode.max_value) ** 2) for v in row] for row in cov])
    _pca(r, r.obj(data["pca"], "pca"), unit, n)


def _state(r: Reader, state: dict[str, Any], mode: Mode, count: int) -> CrossMoments:
    n = len(mode.channels)
    if r.key(state, "pairs", "state.covariance") != [list(p) for p in pairs(n)]:
        r.fail(f"'state.covariance.pairs' must be the upper triangle of {n} channels")
    values = r.key(state, "sum_prod", "state.covariance")
    if not isinstance(values, list) or len(values) != len(pairs(n)):
        r.fail(f"'state.covariance.sum_prod' must hold {len(pairs(n))} sums, one per pair")
    if mode.integer:
        top = int(mode.max_value)
        sums = [r.integer(v, "state.covariance.sum_prod", 0, count * top * top) for v in values]
        return CrossMoments(n, True, sums)
    if r.key(state, "bits", "state.covariance") != BITS:
        r.fail(f"'state.covariance.bits' must be {BITS}")
    sums = []
    for v in values:
        if not isinstance(v, str) or not 3 <= len(v) <= 1200 or v.lstrip("-")[:2] != "0x":
            r.fail("'state.covariance.sum_prod' must hold hex integers such as '0x1f'")
        try:
            sums.append(int(v, 16))
        except ValueError:
            r.fail("'state.covariance.sum_prod' must hold hex integers such as '0x1f'")
    return CrossMoments(n, False, sums)


def _channel_sums(r: Reader, state: dict[str, Any], mode: Mode) -> tuple[list[int], list[int]]:
    """Σx and Σx² exactly (already validated by statistics.py): integers, or for float data
    the exact sums scaled by 2^BITS and 2^(2·BITS)."""
    if mode.integer:
        return [int(v) for v in state["sum"]], [int(v) for v in state["sum_sq"]]
    exact = state.get("exact")
    if not isinstance(exact, dict) or "sum" not in exact or "sum_sq" not in exact:
        r.fail("'state.covariance' needs 'state.exact'")
    return [int(v, 16) for v in exact["sum"]], [int(v, 16) for v in exact["sum_sq"]]


def _matrix(r: Reader, value: Any, what: str, n: int) -> list[list[float]]:
    if not isinstance(value, list) or len(value) != n:
        r.fail(f"'{what}' must be a {n}×{n} matrix")
    return [r.numbers(row, what, n) for row in value]


def _correlation(r: Reader, value: Any, exact: list[list[float | None]], n: int) -> None:
    if not isinstance(value, list) or len(value) != n:
        r.fail(f"'correlation' must be a {n}×{n} matrix")
    for row, want in zip(value, exact, strict=True):
        if not isinstance(row, list) or len(row) != n:
            r.fail(f"'correlation' must be a {n}×{n} matrix")
        for got, rho in zip(row, want, strict=True):
            if (got is None) != (rho is None):
                r.fail("'correlation' must be null exactly where a channel is constant")
            if rho is not None:
                r.agrees(r.number(got, "correlation"), rho, "correlation")


def _pca(r: Reader, pca: dict[str, Any], unit: np.ndarray, n: int) -> None:
    if pca.get("scale") != "unit":
        r.fail("'pca.scale' must be 'unit' (the covariance of [0, 1]-scaled values)")
    values = r.numbers(r.key(pca, "eigenvalues", "pca"), "pca.eigenvalues", n)
    vectors = np.array(_matrix(r, r.key(pca, "eigenvectors", "pca"), "pca.eigenvectors", n))
    top = max(float(np.abs(unit).max()), 1e-300)
    if any(v < 0 for v in values) or any(a < b for a, b in pairwise(values)):
        r.fail("'pca.eigenvalues' must be non-negative and descending")
    if not np.allclose(vectors.T @ vectors, np.eye(n), rtol=0, atol=1e-9):
        r.fail("'pca.eigenvectors' must be orthonormal columns")
    residual = unit @ vectors - vectors * np.array(values)
    if float(np.abs(residual).max()) > _TOLERANCE * top * n:
        r.fail("'pca' is not the eigen decomposition of 'raw.covariance'")
