"""Perceptual Path Length of an image path, with LPIPS (Zhang et al. 2018) from the ``lpips`` package.

The paper's PPL is the mean LPIPS distance between consecutive, equally spaced images of a path
(``I_0..I_K``): ``PPL = (1/K) Σ_k LPIPS(I_k, I_{k+1})``. It is not StyleGAN's ε-PPL (Karras et al.
2019), which differentiates at random points with a small ε and rescales by 1/ε².

LPIPS v0.1 is a non-negatively weighted sum of squared differences of normalised features, so for
small steps ``d_k ≈ (step length)²``: the PPL of a steady path of perceptual length ``L`` is about
``L²/K²``, and it compares only paths with the same ``K``. ``√LPIPS`` is a Euclidean distance
between weighted feature maps (a pseudo-metric), so the measures of length beyond the paper are
built on it (docs/definitions.md §4): the perceptual length ``Σ_k √d_k``, the path efficiency
``√LPIPS(I_0, I_K) / Σ_k √d_k`` (in [0, 1]; 1: no detour) and the excursion
``max_k min(√LPIPS(I_k, I_0), √LPIPS(I_k, I_K)) / √LPIPS(I_0, I_K)``. AID's smoothness
``1 − Gini(d)``, the largest step and the total length ``Σ_k d_k`` (= K·PPL) are kept as their
authors define them. Results store only LPIPS distances (:data:`RAW_COLUMNS`); :func:`summaries`
derives every measure of :data:`MEASURES` from them, for stored results and new paths alike.
"""

from __future__ import annotations

from typing import Literal

import warnings

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from otinterp.names import MEASURE_LABELS, MEASURES

__all__ = [
    "load_lpips", "pair_distances", "path_distances", "perceptual_path_length", "gini", "perceptual_length",
    "path_efficiency", "excursion", "summaries", "add_measures", "path_measures", "MEASURES", "MEASURE_LABELS", "RAW_COLUMNS",
]

#: The LPIPS quantities a result row stores per path, from which :func:`summaries` derives the rest:
#: ``distances`` (``d_k``), ``end_to_end`` (``LPIPS(I_0, I_K)``) and ``farthest_from_ends``
#: (``max_k min(LPIPS(I_k, I_0), LPIPS(I_k, I_K))``).
RAW_COLUMNS = ("distances", "end_to_end", "farthest_from_ends")

#: torchvision checkpoint file names of the LPIPS backbones, looked for in torch.hub's cache.
_BACKBONE_FILES = {
    "alex": "alexnet-owt-7be5be79.pth",
    "vgg": "vgg16-397923af.pth",
    "squeeze": "squeezenet1_1-b8a52dc0.pth",
}


def load_lpips(net: Literal["alex", "vgg", "squeeze"] = "alex",
               backbone: Literal["pretrained", "random"] = "pretrained", *,
               device: str | torch.device = "cpu", seed: int = 0) -> torch.nn.Module:
    """LPIPS version 0.1 with its calibrated linear layers (shipped with ``lpips``).

    Parameters
    ----------
    net : {"alex", "vgg", "squeeze"}
        The backbone; the paper uses AlexNet.
    backbone : {"pretrained", "random"}
        ``"pretrained"`` loads torchvision's ImageNet weights (downloaded once into torch.hub's
        cache); when they cannot be had this is an error, never a fallback. ``"random"`` is the
        explicit offline opt-in: a backbone with seeded random weights, whose distances are not
        perceptual. The returned module carries ``backbone`` as an attribute so outputs can say so.
    device : str or torch.device
    seed : int
        Seed of the random backbone (ignored for ``"pretrained"``).
    """
    import lpips

    if backbone not in ("pretrained", "random"):
        raise ValueError(f"unknown LPIPS backbone {backbone!r}; expected 'pretrained' or 'random'")
    if net not in _BACKBONE_FILES:
        raise ValueError(f"unknown LPIPS net {net!r}; expected one of {', '.join(_BACKBONE_FILES)}")
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        # lpips calls torchvision with the deprecated `pretrained=` argument: not the user's concern.
        warnings.filterwarnings("ignore", message="(Arguments other than a weight enum|The parameter 'pretrained')",
                                category=UserWarning)
        torch.manual_seed(seed)
        try:
            model = lpips.LPIPS(net=net, version="0.1", pretrained=True,
                                pnet_rand=backbone == "random", verbose=False)
        except Exception as err:  # torchvision's download: URLError, OSError, RuntimeError...
            if backbone == "random":
                raise
            cache = torch.hub.get_dir()
            raise RuntimeError(
                f"LPIPS needs torchvision's pretrained {net} weights and could not load them ({err}). "
                f"On a machine with network access run `python -c \"import torchvision; "
                f"torchvision.models.{'alexnet' if net == 'alex' else net}(weights='DEFAULT')\"`, or copy "
                f"{_BACKBONE_FILES[net]} into {cache}/checkpoints/. For an offline smoke run only, set "
                f"lpips_backbone: random (its distances are not perceptual)."
            ) from err
    model.backbone = backbone
    return model.eval().requires_grad_(False).to(device)


@torch.inference_mode()
def pair_distances(a: torch.Tensor, b: torch.Tensor, model: torch.nn.Module, *, batch_size: int = 32,
                   resize: int | None = None) -> np.ndarray:
    """LPIPS between paired images ``a[i]`` and ``b[i]``.

    Parameters
    ----------
    a, b : (N, 3, H, W) tensor in [0, 1]
        Mapped to [-1, 1] as LPIPS expects.
    model : LPIPS module (:func:`load_lpips`)
    batch_size : int
        Image pairs per LPIPS forward pass; the result does not depend on it.
    resize : int, optional
        Bilinear (antialiased) resize of both images to ``resize × resize`` before LPIPS.

    Returns
    -------
    d : (N,) float64 array, ``d[i] = LPIPS(a[i], b[i])``
    """
    if a.shape != b.shape or a.ndim != 4 or a.shape[1] != 3:
        raise ValueError(f"image pairs must be two (N, 3, H, W) tensors of one shape, got {tuple(a.shape)} "
                         f"and {tuple(b.shape)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = next(model.parameters()).device
    out = [torch.zeros(0, dtype=torch.float64)]
    for start in range(0, len(a), batch_size):
        xa, xb = (t[start:start + batch_size].to(device, torch.float32) * 2 - 1 for t in (a, b))
        if resize is not None:
            xa, xb = (F.interpolate(t, size=(resize, resize), mode="bilinear", antialias=True,
                                    align_corners=False) for t in (xa, xb))
        out.append(model(xa, xb).flatten().double().cpu())
    return torch.cat(out).numpy()


def path_distances(images: torch.Tensor, model: torch.nn.Module, *, batch_size: int = 32,
                   resize: int | None = None) -> np.ndarray:
    """LPIPS between consecutive images of one or many paths.

    Parameters
    ----------
    images : (..., K+1, 3, H, W) tensor in [0, 1]
        One path, or a stack of paths; mapped to [-1, 1] as LPIPS expects.
    model : LPIPS module (:func:`load_lpips`)
    batch_size : int
        Image pairs per LPIPS forward pass; the result does not depend on it.
    resize : int, optional
        Bilinear (antialiased) resize of both images to ``resize × resize`` before LPIPS.

    Returns
    -------
    d : (..., K) float64 array, ``d[..., k] = LPIPS(I_k, I_{k+1})``
    """
    if images.ndim < 4 or images.shape[-3] != 3 or images.shape[-4] < 2:
        raise ValueError(f"images must be (..., K+1, 3, H, W) with K >= 1, got shape {tuple(images.shape)}")
    lead, (k1, c, h, w) = images.shape[:-4], images.shape[-4:]
    flat = images.reshape(-1, k1, c, h, w)
    d = pair_distances(flat[:, :-1].reshape(-1, c, h, w), flat[:, 1:].reshape(-1, c, h, w), model,
                       batch_size=batch_size, resize=resize)
    return d.reshape(*lead, k1 - 1)


def perceptual_path_length(distances: np.ndarray) -> np.ndarray | float:
    """``PPL = (1/K) Σ_k d_k``, the mean over the last axis (the paper's definition)."""
    result = np.mean(np.asarray(distances, dtype=np.float64), axis=-1)
    return float(result) if np.ndim(result) == 0 else result


def gini(values: np.ndarray) -> np.ndarray | float:
    """Gini coefficient over the last axis, ``Σ_ij |v_i − v_j| / (2 K² mean v)``; 0 when all are 0.

    ``1 − gini(d)`` is the smoothness of a path in the sense of AID (He et al. 2024): 1 when every
    step is the same size, near 0 when one jump holds the whole path.
    """
    v = np.asarray(values, dtype=np.float64)
    k = v.shape[-1]
    pair_diffs = np.abs(v[..., :, None] - v[..., None, :]).sum(axis=(-1, -2))
    total = 2 * k * v.sum(axis=-1)
    result = np.divide(pair_diffs, total, out=np.zeros_like(pair_diffs), where=total > 0)
    return float(result) if np.ndim(result) == 0 else result


def _ratio(num: np.ndarray, den: np.ndarray, when_zero: float) -> np.ndarray | float:
    """``num / den``, with ``when_zero`` where both are 0 and ``inf`` where only ``den`` is."""
    num, den = np.broadcast_arrays(np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64))
    out = np.where(num > 0, np.inf, when_zero)
    np.divide(num, den, out=out, where=den > 0)
    return float(out) if out.ndim == 0 else out


def perceptual_length(distances: np.ndarray) -> np.ndarray | float:
    """Perceptual length ``Σ_k √d_k``: the length of the path in the √LPIPS pseudo-metric.

    Refining a path (more images along it) never shortens it, by the triangle inequality.
    """
    result = np.sqrt(np.asarray(distances, dtype=np.float64)).sum(axis=-1)
    return float(result) if np.ndim(result) == 0 else result


def path_efficiency(distances: np.ndarray, end_to_end: np.ndarray | float) -> np.ndarray | float:
    """Path efficiency ``√LPIPS(I_0, I_K) / Σ_k √d_k``: 1 when the path makes no detour.

    √LPIPS obeys the triangle inequality, so the value lies in [0, 1] (up to float rounding) and
    never rises when a path is refined; a straight pixel blend between two images scores about 0.55.

    Parameters
    ----------
    distances : (..., K) array
        ``d_k = LPIPS(I_k, I_{k+1})``.
    end_to_end : (...) array or float
        ``LPIPS(I_0, I_K)``.

    Returns
    -------
    efficiency : (...) array or float
        1 for a constant path (every image the same).
    """
    return _ratio(np.sqrt(end_to_end), perceptual_length(distances), when_zero=1.0)


def excursion(to_start: np.ndarray, to_end: np.ndarray) -> np.ndarray | float:
    """Excursion ``max_k min(√LPIPS(I_k, I_0), √LPIPS(I_k, I_K)) / √LPIPS(I_0, I_K)``.

    How far the path strays from both of its ends, in units of the distance between them: 0.5 for
    a path that moves at constant speed along a straight line, above 1 when an intermediate image
    is farther from both ends than they are from each other (the paper's "hallucinated" images).

    Parameters
    ----------
    to_start, to_end : (..., K+1) array
        ``LPIPS(I_k, I_0)`` and ``LPIPS(I_k, I_K)`` for ``k = 0..K``; ``to_end[..., 0]`` is
        ``LPIPS(I_0, I_K)``.

    Returns
    -------
    excursion : (...) array or float
        0 for a constant path.
    """
    to_start, to_end = (np.asarray(v, dtype=np.float64) for v in (to_start, to_end))
    if to_start.shape != to_end.shape or to_start.ndim < 1 or to_start.shape[-1] < 2:
        raise ValueError(f"to_start and to_end must both be (..., K+1) with K >= 1, got {to_start.shape} "
                         f"and {to_end.shape}")
    return _excursion(np.minimum(to_start, to_end).max(axis=-1), to_end[..., 0])


def _excursion(farthest_from_ends: np.ndarray, end_to_end: np.ndarray) -> np.ndarray | float:
    """``√farthest_from_ends / √end_to_end``, 0 for a constant path."""
    return _ratio(np.sqrt(farthest_from_ends), np.sqrt(end_to_end), when_zero=0.0)


def summaries(distances: np.ndarray, end_to_end: np.ndarray, farthest_from_ends: np.ndarray) -> dict[str, np.ndarray]:
    """Every measure of :data:`MEASURES` of a batch of paths, from its LPIPS distances.

    Parameters
    ----------
    distances : (P, K) array
        ``d_k = LPIPS(I_k, I_{k+1})``.
    end_to_end : (P,) array
        ``LPIPS(I_0, I_K)``.
    farthest_from_ends : (P,) array
        ``max_k min(LPIPS(I_k, I_0), LPIPS(I_k, I_K))``.

    Returns
    -------
    dict of str to (P,) float64 array
        ``ppl``, ``max_step``, ``total_length``, ``smoothness``, ``perceptual_length``,
        ``path_efficiency`` and ``excursion``.
    """
    d = np.asarray(distances, dtype=np.float64)
    if d.ndim != 2 or d.shape[1] < 1:
        raise ValueError(f"distances must be (P, K) with K >= 1, got shape {d.shape}")
    end_to_end, farthest = (np.asarray(v, dtype=np.float64).reshape(len(d)) for v in (end_to_end, farthest_from_ends))
    return {
        "ppl": np.asarray(perceptual_path_length(d)).reshape(len(d)), "max_step": d.max(axis=1),
        "total_length": d.sum(axis=1), "smoothness": 1.0 - np.asarray(gini(d)).reshape(len(d)),
        "perceptual_length": np.asarray(perceptual_length(d)).reshape(len(d)),
        "path_efficiency": np.asarray(path_efficiency(d, end_to_end)).reshape(len(d)),
        "excursion": np.asarray(_excursion(farthest, end_to_end)).reshape(len(d)),
    }


def add_measures(rows: pd.DataFrame) -> pd.DataFrame:
    """Result rows with every measure of :data:`MEASURES` derived from their :data:`RAW_COLUMNS`.

    Rows written before the raw columns were stored (they held ``path_efficiency`` and
    ``excursion`` on LPIPS itself) are converted without rendering: ``LPIPS(I_0, I_K)`` is the old
    efficiency times ``Σ d_k``, and the farthest distance from both ends the old excursion times
    ``LPIPS(I_0, I_K)``. Stored summaries are replaced, so no table mixes two definitions.

    Parameters
    ----------
    rows : DataFrame
        One row per path with ``distances`` (a list of ``K`` floats per row, one ``K`` for all)
        and the other raw columns (or the old ``path_efficiency`` and ``excursion``).

    Returns
    -------
    rows : DataFrame
        A copy with the raw columns and one column per measure.
    """
    if not len(rows):
        return rows.assign(**{c: pd.Series(dtype=float) for c in (*RAW_COLUMNS[1:], *MEASURES)})
    d = np.array(rows["distances"].tolist(), dtype=np.float64)
    if "end_to_end" not in rows.columns:
        if not {"path_efficiency", "excursion"} <= set(rows.columns):
            raise ValueError("result rows have neither the LPIPS columns end_to_end, farthest_from_ends nor the "
                             "older path_efficiency, excursion: they cannot be measured")
        end_to_end = rows["path_efficiency"].to_numpy(dtype=float) * d.sum(axis=1)
        rows = rows.assign(end_to_end=end_to_end, farthest_from_ends=rows["excursion"].to_numpy(dtype=float) * end_to_end)
    derived = summaries(d, rows["end_to_end"].to_numpy(), rows["farthest_from_ends"].to_numpy())
    return rows.drop(columns=[c for c in MEASURES if c in rows.columns]).assign(**derived)


def path_measures(images: torch.Tensor, model: torch.nn.Module, *, batch_size: int = 32,
                  resize: int | None = None) -> dict[str, np.ndarray]:
    """Every LPIPS measure of a batch of paths, from one set of LPIPS calls.

    Parameters
    ----------
    images : (P, K+1, 3, H, W) tensor in [0, 1]
        ``P`` paths of ``K + 1`` images each.
    model : LPIPS module (:func:`load_lpips`)
    batch_size : int
        Image pairs per LPIPS forward pass; the result does not depend on it.
    resize : int, optional
        Resize before LPIPS (see :func:`pair_distances`).

    Returns
    -------
    dict of str to array
        ``distances`` (P, K): ``d_k = LPIPS(I_k, I_{k+1})``; ``to_start``, ``to_end`` (P, K+1):
        ``LPIPS(I_k, I_0)``, ``LPIPS(I_k, I_K)``; ``end_to_end`` and ``farthest_from_ends`` (P,)
        (:data:`RAW_COLUMNS`); and the summaries of :data:`MEASURES` (:func:`summaries`), each
        (P,). Trivial entries are exact: ``to_start[:, 0] = to_end[:, K] = 0`` and
        ``to_start[:, K] = to_end[:, 0] = end_to_end``.
    """
    if images.ndim != 5 or images.shape[2] != 3 or images.shape[1] < 2:
        raise ValueError(f"images must be (P, K+1, 3, H, W) with K >= 1, got shape {tuple(images.shape)}")
    n_paths, k1 = images.shape[:2]
    k = k1 - 1
    first, last = images[:, :1], images[:, -1:]
    interior = images[:, 1:-1]
    # One LPIPS call: consecutive steps, each interior image against both ends, and the two ends.
    a = torch.cat([images[:, :-1], interior, interior, first], dim=1).flatten(0, 1)
    b = torch.cat([images[:, 1:], first.expand_as(interior), last.expand_as(interior), last], dim=1).flatten(0, 1)
    d_all = pair_distances(a, b, model, batch_size=batch_size, resize=resize).reshape(n_paths, -1)
    distances, to_first, to_last, end_to_end = np.split(d_all, [k, 2 * k - 1, 3 * k - 2], axis=1)
    end_to_end = end_to_end[:, 0]
    zeros = np.zeros((n_paths, 1))
    to_start = np.concatenate([zeros, to_first, end_to_end[:, None]], axis=1)
    to_end = np.concatenate([end_to_end[:, None], to_last, zeros], axis=1)
    farthest = np.minimum(to_start, to_end).max(axis=1)
    return {"distances": distances, "to_start": to_start, "to_end": to_end, "end_to_end": end_to_end,
            "farthest_from_ends": farthest, **summaries(distances, end_to_end, farthest)}
