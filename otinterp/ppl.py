"""Perceptual Path Length of an image path, with LPIPS (Zhang et al. 2018) from the ``lpips`` package.

The paper's PPL is the mean LPIPS distance between consecutive, equally spaced images of a path
(``I_0..I_K``): ``PPL = (1/K) Σ_k LPIPS(I_k, I_{k+1})``. It is not StyleGAN's ε-PPL (Karras et al.
2019), which differentiates at random points with a small ε and rescales by 1/ε².
"""

from __future__ import annotations

from typing import Literal

import warnings

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["load_lpips", "path_distances", "perceptual_path_length", "gini"]

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
        The backbone; the paper and SPEC use AlexNet.
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
    a = flat[:, :-1].reshape(-1, c, h, w)
    b = flat[:, 1:].reshape(-1, c, h, w)
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(a), batch_size):
        xa, xb = (t[start:start + batch_size].to(device, torch.float32) * 2 - 1 for t in (a, b))
        if resize is not None:
            xa, xb = (F.interpolate(t, size=(resize, resize), mode="bilinear", antialias=True,
                                    align_corners=False) for t in (xa, xb))
        out.append(model(xa, xb).flatten().double().cpu())
    return torch.cat(out).numpy().reshape(*lead, k1 - 1)


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
