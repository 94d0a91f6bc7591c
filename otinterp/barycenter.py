"""Wasserstein barycenters of several prompt embeddings read as point clouds, and mixed conditionings.

Each prompt embedding ``X_i`` of shape ``(n, d)`` is the uniform measure on its rows (as in
:mod:`otinterp.couplings`). Given weights ``λ`` on the simplex, the free-support W2 barycenter
with ``n`` points is

.. math:: Z^\\star \\in \\operatorname*{argmin}_{Z \\in \\mathbb{R}^{n \\times d}}
          \\sum_{i=1}^m λ_i W_2^2(Z, X_i),
          \\qquad W_2^2(Z, X) = \\min_σ \\frac1n \\sum_j \\lVert z_j - x_{σ(j)} \\rVert^2,

the paper's eq. 4 (Karris, Durell, Flores and Emerson, "Which Way from B to A: The role of embedding
geometry in image interpolation for Stable Diffusion", arXiv:2511.12757, 2025) with any number of
prompts. For two prompts it is the point ``(1 − t) X + t Y[σ]`` of the OT geodesic (eq. 3) with
``λ = (1 − t, t)``. For three or more it is found by a fixed-point iteration (:func:`barycenter`),
which may stop at a local minimum: the objective is not convex in ``Z``. The row-wise mean
:func:`rowwise_mean` (``Σ λ_i X_i``, every coupling the identity) is the baseline, the analogue of
the CLIP coupling. :func:`mix_conditioning` mixes whole conditionings of any model family: the
token sets by either, the global vector (SDXL, SD3, Flux) linearly with the same weights, never
coupled, as :func:`otinterp.experiment.path_embeddings` moves it along a path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

import numpy as np

from otinterp.couplings import _as_cloud, _like, ot_coupling
from otinterp.families import Conditioning

__all__ = ["METHODS", "BarycenterResult", "barycenter", "barycenter_objective", "rowwise_mean", "mix_conditioning"]

#: Ways to mix token sets: the W2 barycenter (:func:`barycenter`) and the row-wise mean (:func:`rowwise_mean`).
METHODS = ("ot", "mean")

MixMethod = Literal["ot", "mean"]

#: How far the weights' sum may be from 1.
WEIGHT_SUM_TOL = 1e-6


class BarycenterResult(NamedTuple):
    """What :func:`barycenter` returns.

    Attributes
    ----------
    points : (n, d) array or tensor
        The barycenter's support ``Z``, rows in the order of ``clouds[reference]``; numpy in, numpy
        out, a tensor in, a tensor of the first cloud's dtype and device out.
    objective : float
        ``Σ_i λ_i W2²(Z, X_i)``, with each ``W2`` computed exactly at the returned ``Z``.
    iterations : int
        Fixed-point updates made from the kept start (0 when the start is already a fixed point).
    reference : int
        Index in ``clouds`` of the cloud whose anchored mean started the kept run (-1 when ``init``
        was given).
    """

    points: Any
    objective: float
    iterations: int
    reference: int


def _check_clouds(clouds: Sequence[Any]) -> list[np.ndarray]:
    """``clouds`` as float64 ``(n, d)`` arrays of one shape, at least two of them."""
    if len(clouds) < 2:
        raise ValueError(f"need at least 2 point clouds, got {len(clouds)}")
    arrays = [_as_cloud(x, f"clouds[{i}]") for i, x in enumerate(clouds)]
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise ValueError(f"clouds must all have one shape (n, d), got {sorted(shapes)}")
    return arrays


def _check_weights(weights: Any, m: int) -> np.ndarray:
    """``weights`` as a float64 ``(m,)`` array on the simplex (checked, used as given)."""
    if hasattr(weights, "detach"):
        weights = weights.detach().cpu().numpy()
    lam = np.asarray(weights, dtype=np.float64)
    if lam.shape != (m,):
        raise ValueError(f"weights must have shape ({m},), one per cloud, got {lam.shape}")
    if not np.isfinite(lam).all() or (lam < 0).any():
        raise ValueError(f"weights must be finite and >= 0, got {lam.tolist()}")
    if abs(lam.sum() - 1.0) > WEIGHT_SUM_TOL:
        raise ValueError(f"weights must sum to 1 (within {WEIGHT_SUM_TOL:g}), got sum {lam.sum():.8g}")
    return lam


def _out(points: np.ndarray, like: Any) -> Any:
    """``points`` as the type of ``like``: numpy (at least float32), or a tensor of its dtype and device."""
    out = _like(points, like)
    return out.to(like.device) if hasattr(like, "detach") else out


def _mean(clouds: Sequence[np.ndarray], lam: np.ndarray, perms: Sequence[np.ndarray]) -> np.ndarray:
    """``Σ_i λ_i X_i[σ_i]``: the barycenter of the clouds for fixed couplings."""
    return sum(w * x[p] for w, x, p in zip(lam, clouds, perms))


def _objective(z: np.ndarray, clouds: Sequence[np.ndarray], lam: np.ndarray, perms: Sequence[np.ndarray]) -> float:
    """``Σ_i λ_i (1/n) Σ_j ||z_j − x_{i, σ_i(j)}||²`` for the couplings ``perms``."""
    return float(sum(w * np.mean(np.sum((z - x[p]) ** 2, axis=1)) for w, x, p in zip(lam, clouds, perms)))


def _descend(z: np.ndarray, used: Sequence[np.ndarray] | None, clouds: Sequence[np.ndarray], lam: np.ndarray,
             max_iter: int, tol: float) -> tuple[np.ndarray, float, int]:
    """The fixed-point iteration from ``z`` (``_mean`` of the couplings ``used``, if known).

    Each step pairs ``Z`` with every cloud optimally, then moves ``Z`` to the barycenter for those
    couplings. The objective never increases; it stops at a fixed point (the couplings repeat),
    when a step gains at most ``tol`` relative, or after ``max_iter`` steps.
    """
    iterations, previous = 0, None
    while True:
        perms = [ot_coupling(z, x) for x in clouds]
        objective = _objective(z, clouds, lam, perms)
        fixed = used is not None and all(np.array_equal(p, q) for p, q in zip(perms, used))
        stalled = previous is not None and previous - objective <= tol * previous
        if fixed or stalled or iterations == max_iter:
            return z, objective, iterations
        z, used, previous = _mean(clouds, lam, perms), perms, objective
        iterations += 1


def barycenter(clouds: Sequence[Any], weights: Any, *, init: Any = None, max_iter: int = 100,
               tol: float = 1e-10) -> BarycenterResult:
    """Free-support W2 barycenter of ``m >= 2`` uniform point clouds of ``n`` rows, with ``n`` points.

    Minimises :math:`F(Z) = \\sum_i λ_i W_2^2(Z, X_i)` (the paper's eq. 4, weighted) by the
    fixed-point iteration of Álvarez-Esteban et al. (2016), as POT's
    ``ot.lp.free_support_barycenter`` with uniform weights, each coupling an exact assignment
    (:func:`otinterp.couplings.ot_coupling`):

    .. math:: σ_i = \\operatorname*{argmin}_σ \\sum_j \\lVert z_j - x_{i,σ(j)} \\rVert^2,
              \\qquad Z \\leftarrow \\sum_i λ_i X_i[σ_i].

    ``F`` never increases and the couplings are finitely many, so the iteration ends at a fixed
    point; for ``m >= 3`` that may be a local minimum. It starts from **anchored means**: with
    cloud ``r`` as reference, pair every cloud with ``X_r`` optimally (``τ_i = σ_{ot}(X_r, X_i)``)
    and take ``Σ_i λ_i X_i[τ_i]``. Each cloud of positive weight is tried as the reference and
    the run with the lowest final ``F`` is kept (the first on a tie). For ``m = 2`` the start is
    the geodesic point ``(1 − t) X + t Y[σ]`` (eq. 3), a fixed point: the result is exactly the
    OT path's point, for either reference. Zero weights are allowed (the cloud drops out); a single
    positive weight gives that cloud. The objective and the set of rows do not depend on the order
    of any cloud's rows.

    Parameters
    ----------
    clouds : sequence of m (n, d) arrays or CPU/GPU torch tensors, m >= 2
        The prompt embeddings (or an ``(m, n, d)`` array or tensor).
    weights : (m,) array-like
        ``λ``: non-negative, summing to 1 (within :data:`WEIGHT_SUM_TOL`).
    init : (n, d) array, optional
        Start the iteration here instead of from the anchored means (``reference`` is then -1).
    max_iter : int
        Fixed-point updates at most, per start.
    tol : float
        Stop when an update lowers ``F`` by at most ``tol`` relative.

    Returns
    -------
    BarycenterResult
        ``points (n, d)`` (numpy in, numpy out; a tensor in, a tensor of ``clouds[0]``'s dtype and
        device out), ``objective`` ``F(Z)``, ``iterations`` and ``reference``.

    References
    ----------
    Álvarez-Esteban, del Barrio, Cuesta-Albertos and Matrán, "A fixed-point approach to
    barycenters in Wasserstein space", J. Math. Anal. Appl. 441 (2016). Cuturi and Doucet, "Fast
    computation of Wasserstein barycenters", ICML 2014 (Algorithm 2).
    """
    arrays = _check_clouds(clouds)
    lam = _check_weights(weights, len(arrays))
    if max_iter < 0 or not tol >= 0:
        raise ValueError(f"need max_iter >= 0 and tol >= 0, got max_iter={max_iter}, tol={tol}")
    active = np.flatnonzero(lam > 0)
    xs, ws = [arrays[i] for i in active], lam[active]
    if init is not None:
        start = _as_cloud(init, "init")
        if start.shape != arrays[0].shape:
            raise ValueError(f"init must have the clouds' shape {arrays[0].shape}, got {start.shape}")
        z, objective, iterations = _descend(start, None, xs, ws, max_iter, tol)
        return BarycenterResult(_out(z, clouds[0]), objective, iterations, -1)
    best = None
    for r, ref in zip(active, xs):
        perms = [ot_coupling(ref, x) for x in xs]
        run = _descend(_mean(xs, ws, perms), perms, xs, ws, max_iter, tol)
        if best is None or run[1] < best[0][1]:
            best = run, int(r)
    (z, objective, iterations), reference = best
    return BarycenterResult(_out(z, clouds[0]), objective, iterations, reference)


def barycenter_objective(points: Any, clouds: Sequence[Any], weights: Any) -> float:
    """``F(Z) = Σ_i λ_i W2²(Z, X_i)``, each ``W2`` exact (:func:`otinterp.couplings.ot_coupling`).

    Parameters
    ----------
    points : (n, d) array or tensor
        ``Z``, any candidate (a barycenter, a row-wise mean).
    clouds : sequence of m (n, d) arrays or tensors
    weights : (m,) array-like on the simplex

    Returns
    -------
    objective : float
    """
    arrays = _check_clouds(clouds)
    lam = _check_weights(weights, len(arrays))
    z = _as_cloud(points, "points")
    if z.shape != arrays[0].shape:
        raise ValueError(f"points must have the clouds' shape {arrays[0].shape}, got {z.shape}")
    return _objective(z, arrays, lam, [ot_coupling(z, x) for x in arrays])


def rowwise_mean(clouds: Sequence[Any], weights: Any) -> Any:
    """The row-wise weighted mean ``Σ_i λ_i X_i``: every coupling the identity (the CLIP coupling's analogue).

    Parameters
    ----------
    clouds : sequence of m (n, d) arrays or tensors, m >= 2
    weights : (m,) array-like, non-negative, summing to 1

    Returns
    -------
    points : (n, d), numpy in, numpy out; a tensor in, a tensor of ``clouds[0]``'s dtype and device out
    """
    arrays = _check_clouds(clouds)
    lam = _check_weights(weights, len(arrays))
    return _out(_mean(arrays, lam, [np.arange(len(arrays[0]))] * len(arrays)), clouds[0])


def mix_conditioning(conds: Sequence[Conditioning], weights: Any, method: MixMethod = "ot") -> Conditioning:
    """One conditioning mixed from several prompts', for any model family.

    The token sets are mixed by ``method``: ``"ot"``, their W2 barycenter (:func:`barycenter`), or
    ``"mean"``, their row-wise mean (:func:`rowwise_mean`). The global vector, where the family has
    one (SDXL, SD3, Flux), is mixed linearly with the same weights, ``Σ_i λ_i g_i``, for both
    methods (the experiment moves it the same way along every path, docs/definitions.md §10).

    Parameters
    ----------
    conds : sequence of m Conditioning, m >= 2
        One prompt's each: ``tokens (L, D)`` and ``pooled (P,)`` or None, as
        :func:`otinterp.experiment.encode_cached` gives them.
    weights : (m,) array-like, non-negative, summing to 1
    method : {"ot", "mean"}

    Returns
    -------
    Conditioning
        ``tokens (L, D)`` and ``pooled (P,)`` or None, in the dtype and on the device of ``conds[0]``.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    if len(conds) < 2:
        raise ValueError(f"need at least 2 conditionings, got {len(conds)}")
    if len({c.pooled is None for c in conds}) > 1:
        raise ValueError("either every conditioning has a global vector (pooled) or none has")
    tokens = [c.tokens for c in conds]
    mixed = barycenter(tokens, weights).points if method == "ot" else rowwise_mean(tokens, weights)
    if conds[0].pooled is None:
        return Conditioning(mixed)
    pooled = rowwise_mean([c.pooled[None] for c in conds], weights)[0]
    return Conditioning(mixed, pooled)
