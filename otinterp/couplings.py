"""Couplings between two prompt embeddings read as point clouds, and the paths they induce.

A prompt embedding ``X`` of shape ``(n, d)`` (``n = 77`` tokens, ``d = 768`` for SD 1.5) is read
as the uniform measure on its rows. A coupling is a permutation ``σ`` of ``0..n-1`` pairing row
``i`` of ``X`` with row ``σ[i]`` of ``Y``; it induces the straight path

.. math:: X_t = (1 - t) X + t Y_σ, \\qquad t \\in [0, 1],

whose length in Wasserstein space is the coupling's cost
:math:`C(σ) = \\sqrt{\\tfrac1n \\sum_i \\lVert x_i - y_{σ(i)} \\rVert^2}`.
The optimal coupling gives the geodesic and :math:`W_2(X, Y) = C(σ_{ot})` (Karris, Durell, Flores
and Emerson, "Which Way from B to A: The role of embedding geometry in image interpolation for
Stable Diffusion", arXiv:2511.12757, 2025, section 2.3). Besides the three couplings, :func:`slerp`
interpolates the whole embedding spherically (the usual baseline of community interpolation
tools); :func:`path_points` gives the points of any of the four paths by name. Functions take
numpy arrays or CPU torch tensors.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

import numpy as np
from scipy.optimize import linear_sum_assignment

from otinterp.names import COUPLINGS, PATHS

__all__ = [
    "COUPLINGS", "ot_coupling", "clip_coupling", "random_coupling", "coupling",
    "coupling_cost", "saving_by_rows", "wasserstein2", "interpolate", "pair_rng", "pairwise_sq_dists",
    "PATHS", "SLERP_DOT_THRESHOLD", "slerp", "path_coupling", "path_points", "path_cost",
]

#: Coupling names, in the order the paper reports them.
COUPLINGS = ("ot", "clip", "random")


CouplingName = Literal["ot", "clip", "random"]
PathName = Literal["ot", "clip", "random", "slerp"]

#: Above this cosine between the flattened embeddings, :func:`slerp` interpolates linearly (the
#: community tools' threshold): the spherical weights would divide by a vanishing ``sin θ``.
SLERP_DOT_THRESHOLD = 0.9995


def _as_cloud(x: Any, name: str) -> np.ndarray:
    """A finite float64 ``(n, d)`` array from a numpy array or CPU torch tensor."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (n, d) point cloud, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf")
    return x


def _as_clouds(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    x, y = _as_cloud(x, "x"), _as_cloud(y, "y")
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape, got x {x.shape} and y {y.shape}")
    return x, y


def _check_perm(perm: Any, n: int) -> np.ndarray:
    perm = np.asarray(perm)
    if perm.shape != (n,) or not np.issubdtype(perm.dtype, np.integer) or not np.array_equal(
        np.sort(perm), np.arange(n)
    ):
        raise ValueError(f"perm must be a permutation of 0..{n - 1}, got {perm!r}")
    return perm


def pairwise_sq_dists(x: Any, y: Any) -> np.ndarray:
    """Squared Euclidean cost matrix ``M[i, j] = ||x_i - y_j||²``.

    Parameters
    ----------
    x, y : (n, d) array

    Returns
    -------
    M : (n, n) float64 array, non-negative
    """
    x, y = _as_clouds(x, y)
    m = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * x @ y.T
    return np.maximum(m, 0.0)


def ot_coupling(x: Any, y: Any) -> np.ndarray:
    """The optimal assignment ``σ = argmin_σ Σ_i ||x_i − y_σ(i)||²`` (exact, Hungarian/LAPJV).

    Parameters
    ----------
    x, y : (n, d) array

    Returns
    -------
    perm : (n,) int64 array, row ``i`` of ``x`` is paired with row ``perm[i]`` of ``y``
    """
    rows, cols = linear_sum_assignment(pairwise_sq_dists(x, y))
    perm = np.empty_like(cols)
    perm[rows] = cols
    return perm.astype(np.int64)


def clip_coupling(n: int) -> np.ndarray:
    """The identity ``σ(i) = i``: row-wise (matrix) interpolation, the paper's "CLIP coupling"."""
    return np.arange(n, dtype=np.int64)


def random_coupling(n: int, rng: np.random.Generator, fixed: int = 1) -> np.ndarray:
    """``σ(i) = i`` for the first ``fixed`` rows, the other rows paired uniformly at random.

    ``fixed = 1`` keeps CLIP's BOS row, the same for every prompt (SD 1.x/2.x, SDXL, SD3); a token
    set without one (Flux's T5 tokens) takes ``fixed = 0``. The draw for ``fixed = 1`` is the one
    this function has always made, so existing results keep their random couplings.
    """
    if n < 1 or not 0 <= fixed <= n:
        raise ValueError(f"need n >= 1 and 0 <= fixed <= n, got n={n}, fixed={fixed}")
    return np.concatenate([np.arange(fixed), fixed + rng.permutation(n - fixed)]).astype(np.int64)


def coupling(name: CouplingName, x: Any, y: Any, rng: np.random.Generator | None = None, *,
             fixed: int = 1) -> np.ndarray:
    """The coupling ``name`` (``"ot"``, ``"clip"`` or ``"random"``) between ``x`` and ``y``.

    ``rng`` is required for ``"random"`` (use :func:`pair_rng` so the draw is per pair); ``fixed``
    is its number of leading rows kept in place (:func:`random_coupling`).
    """
    x, y = _as_clouds(x, y)
    if name == "ot":
        return ot_coupling(x, y)
    if name == "clip":
        return clip_coupling(len(x))
    if name == "random":
        if rng is None:
            raise ValueError("the random coupling needs rng (see pair_rng)")
        return random_coupling(len(x), rng, fixed)
    raise ValueError(f"unknown coupling {name!r}; expected one of {', '.join(COUPLINGS)}")


def coupling_cost(x: Any, y: Any, perm: Any) -> float:
    """Cost ``C(σ) = sqrt((1/n) Σ_i ||x_i − y_σ(i)||²)``, the length of the induced path in W2.

    Parameters
    ----------
    x, y : (n, d) array
    perm : (n,) int array, a permutation of ``0..n-1``
    """
    x, y = _as_clouds(x, y)
    perm = _check_perm(perm, len(x))
    return float(np.sqrt(np.mean(np.sum((x - y[perm]) ** 2, axis=1))))


def saving_by_rows(x: Any, y: Any, perm: Any, content_x: Any, content_y: Any) -> dict[str, float | int]:
    """Where OT's saving over the row-wise (CLIP) pairing comes from: content rows or padding rows.

    With ``c_i(σ) = (1/n) ||x_i − y_σ(i)||²``, the saving ``C_clip² − W2² = Σ_i (c_i(id) − c_i(σ))``
    splits into its sum over the padding rows of ``x`` and over its content rows. Either part can
    be negative (OT may pay more on some rows to save more on others), so both are reported.

    Parameters
    ----------
    x, y : (n, d) array
        The two token sets.
    perm : (n,) int array
        The OT coupling ``σ`` (:func:`ot_coupling`).
    content_x, content_y : (n,) bool array
        Which rows are content (the tokenizer's attention mask: BOS, words, EOS) and which padding.

    Returns
    -------
    dict
        ``saving_padding``, ``saving_content`` (floats summing to ``C_clip² − W2²``),
        ``content_rows_a``, ``content_rows_b`` (how many rows of each are content),
        ``content_to_padding`` (content rows of ``x`` that σ sends to padding rows of ``y``) and
        ``padding_to_content`` (padding rows of ``x`` sent to content rows of ``y``).
    """
    x, y = _as_clouds(x, y)
    perm = _check_perm(perm, len(x))
    cx, cy = (np.asarray(c, dtype=bool).reshape(-1) for c in (content_x, content_y))
    if len(cx) != len(x) or len(cy) != len(y):
        raise ValueError(f"content masks must have one entry per row ({len(x)}), got {len(cx)} and {len(cy)}")
    saving = (np.sum((x - y) ** 2, axis=1) - np.sum((x - y[perm]) ** 2, axis=1)) / len(x)
    sent = cy[perm]
    return {"saving_padding": float(saving[~cx].sum()), "saving_content": float(saving[cx].sum()),
            "content_rows_a": int(cx.sum()), "content_rows_b": int(cy.sum()),
            "content_to_padding": int(np.sum(cx & ~sent)), "padding_to_content": int(np.sum(~cx & sent))}


def wasserstein2(x: Any, y: Any) -> float:
    """``W2(X, Y)`` between the uniform measures on the rows: the cost of :func:`ot_coupling`."""
    return coupling_cost(x, y, ot_coupling(x, y))


def interpolate(x: Any, y: Any, perm: Any, ts: Any) -> Any:
    """Points ``X_t = (1 − t) X + t Y[σ]`` of the path induced by ``perm``, rows in ``x``'s order.

    Parameters
    ----------
    x, y : (n, d) array or CPU torch tensor
    perm : (n,) int array, a permutation of ``0..n-1``
    ts : (k,) array of floats

    Returns
    -------
    path : (k, n, d), a numpy array or, when ``x`` is a torch tensor, a tensor of ``x``'s dtype
    """
    xa, ya = _as_clouds(x, y)
    perm = _check_perm(perm, len(xa))
    ts = np.asarray(ts, dtype=np.float64).reshape(-1, 1, 1)
    return _like((1.0 - ts) * xa + ts * ya[perm], x)


def _like(path: np.ndarray, x: Any) -> Any:
    """``path`` as a tensor of ``x``'s dtype when ``x`` is a torch tensor, else at least float32."""
    if hasattr(x, "detach"):
        import torch

        return torch.from_numpy(path).to(dtype=x.dtype)
    return path.astype(np.result_type(np.asarray(x).dtype, np.float32), copy=False)


def slerp(x: Any, y: Any, ts: Any) -> Any:
    """Spherical linear interpolation of the whole embedding, each ``(n, d)`` matrix read as one vector.

    With ``u = vec(X)``, ``v = vec(Y)`` and ``θ = arccos(<u, v> / (|u| |v|))``, the standard slerp
    of community interpolation tools (Shoemake 1985, as in stable-diffusion-videos):

    .. math:: X_t = \\frac{\\sin((1 - t) θ)}{\\sin θ} X + \\frac{\\sin(t θ)}{\\sin θ} Y .

    It follows the great circle between the two directions; when ``|X| = |Y|`` the norm stays
    constant, otherwise it varies smoothly between them. When ``|cos θ| >`` :data:`SLERP_DOT_THRESHOLD`
    (near-parallel or antiparallel vectors, where ``sin θ`` vanishes) or either matrix is zero, it
    falls back to the linear path ``(1 − t) X + t Y``. Rows are never reordered: the path pairs
    row ``i`` with row ``i``, like the CLIP coupling, and ends at ``Y`` itself. Both endpoints
    are exact: ``X_0 = X`` and ``X_1 = Y`` bit for bit.

    Parameters
    ----------
    x, y : (n, d) array or CPU torch tensor
    ts : (k,) array of floats

    Returns
    -------
    path : (k, n, d), a numpy array or, when ``x`` is a torch tensor, a tensor of ``x``'s dtype
    """
    xa, ya = _as_clouds(x, y)
    ts = np.asarray(ts, dtype=np.float64).reshape(-1, 1, 1)
    norms = np.linalg.norm(xa) * np.linalg.norm(ya)
    cos = float(np.sum(xa * ya) / norms) if norms > 0 else 1.0
    if abs(cos) > SLERP_DOT_THRESHOLD:
        path = (1.0 - ts) * xa + ts * ya
    else:
        theta = np.arccos(cos)
        path = (np.sin((1.0 - ts) * theta) * xa + np.sin(ts * theta) * ya) / np.sin(theta)
        path[ts[:, 0, 0] == 0] = xa  # sin(θ)/sin(θ) may miss 1 by one ulp
        path[ts[:, 0, 0] == 1] = ya
    return _like(path, x)


def path_coupling(name: PathName, x: Any, y: Any, rng: np.random.Generator | None = None, *,
                  fixed: int = 1) -> np.ndarray:
    """The row pairing of path ``name``: the coupling for ``"ot"``, ``"clip"``, ``"random"``; the
    identity for ``"slerp"``, which interpolates rows ``i`` and ``i`` (it never draws from ``rng``,
    so adding it changes no other path).

    Returns
    -------
    perm : (n,) int64 array
    """
    if name == "slerp":
        return clip_coupling(len(_as_cloud(x, "x")))
    if name not in COUPLINGS:
        raise ValueError(f"unknown path {name!r}; expected one of {', '.join(PATHS)}")
    return coupling(name, x, y, rng, fixed=fixed)


def path_points(name: PathName, x: Any, y: Any, ts: Any, rng: np.random.Generator | None = None, *,
                perm: Any = None) -> Any:
    """Points at ``ts`` of path ``name`` from ``x`` to ``y``: one entry point for all of :data:`PATHS`.

    Parameters
    ----------
    name : {"ot", "clip", "random", "slerp"}
        A coupling's straight path (:func:`interpolate`) or the spherical one (:func:`slerp`).
    x, y : (n, d) array or CPU torch tensor
    ts : (k,) array of floats
        For the interior of a ``K``-interval grid, ``k / K`` for ``k = 1..K-1``.
    rng : numpy Generator, optional
        Needed for ``"random"`` when ``perm`` is not given (use :func:`pair_rng`).
    perm : (n,) int array, optional
        The pairing from :func:`path_coupling`, to avoid computing it twice.

    Returns
    -------
    path : (k, n, d), a numpy array or, when ``x`` is a torch tensor, a tensor of ``x``'s dtype.
        Rows in ``x``'s order: at ``t = 1`` the straight paths give ``Y[σ]`` (which renders as
        ``Y``), slerp gives ``Y``.
    """
    if perm is None:
        perm = path_coupling(name, x, y, rng)
    if name == "slerp":
        _check_perm(perm, len(_as_cloud(x, "x")))
        if not np.array_equal(perm, np.arange(len(perm))):
            raise ValueError("slerp pairs rows i with i: perm must be the identity")
        return slerp(x, y, ts)
    return interpolate(x, y, perm, ts)


def path_cost(name: PathName, x: Any, y: Any, perm: Any) -> float:
    """The recorded cost of path ``name``: :func:`coupling_cost` of its pairing ``perm``.

    For ``"slerp"`` this is the cost of the identity (slerp pairs row ``i`` with row ``i``), equal
    to the CLIP coupling's cost. It is the cost of the row pairing, not the length of the slerp
    curve, which is not straight: read it as "which rows slerp matches", never as a path length.
    """
    if name not in PATHS:
        raise ValueError(f"unknown path {name!r}; expected one of {', '.join(PATHS)}")
    return coupling_cost(x, y, perm)


def pair_rng(seed: int, pair_id: str) -> np.random.Generator:
    """Generator for one pair, from the experiment seed and a SHA-256 of ``pair_id``.

    Stable across processes, platforms, shards and restarts (unlike Python's ``hash``).
    """
    digest = hashlib.sha256(str(pair_id).encode("utf-8")).digest()
    return np.random.default_rng([int(seed), int.from_bytes(digest[:8], "little")])
