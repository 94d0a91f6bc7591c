"""Library calls for practitioners: OT interpolation and mixing on a diffusers pipeline you already have.

No profile or run folder: :func:`interpolate` renders the path between two prompts that Karris,
Durell, Flores and Emerson, "Which Way from B to A: The role of embedding geometry in image
interpolation for Stable Diffusion" (arXiv:2511.12757, 2025) propose — the rows of the two
prompts' token sets paired by optimal transport, then moved in straight lines (their eq. 3) — and
:func:`mix` renders the weighted Wasserstein barycenter of several prompts (their eq. 4). Both go
through the experiment's own rendering code (:func:`otinterp.experiment.render_unit`,
:func:`otinterp.render.render`), so for the same settings the images equal the experiment's.

Any supported pipeline works (SD 1.x/2.x, SDXL, SD3, Flux), on the device and in the dtype it was
loaded with: move it with ``pipe.to("cuda")`` first, as diffusers does.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from otinterp.names import MEASURES, PATHS

__all__ = ["Interpolation", "interpolate", "mix"]


@dataclass(frozen=True)
class Interpolation:
    """The images of one path from prompt A to prompt B, and what it cost.

    Attributes
    ----------
    images : list of PIL.Image.Image
        ``I_0..I_n``, rendered at ``t_k = k / n`` from one fixed initial latent.
    path : str
        ``"ot"``, ``"clip"``, ``"random"`` or ``"slerp"``.
    perm : (L,) int array
        The row pairing ``σ`` (row ``i`` of A moves to row ``σ(i)`` of B).
    cost, w2 : float
        The pairing's cost ``Σ_i ‖x_i − y_σ(i)‖²`` and the least cost, ``W2²`` (equal for ``"ot"``).
    measures : dict of str to float, optional
        The path measures (docs/definitions.md §4: ``ppl`` at ``K = n``, ``perceptual_length``,
        ``path_efficiency``, ``excursion``…) when an LPIPS model was given or could be loaded.
    """

    images: list
    path: str
    perm: np.ndarray
    cost: float
    w2: float
    measures: dict[str, float] | None = None


def _render_params(pipe: Any, *, seed: int, n: int, steps: int, guidance: float, height: int | None,
                   width: int | None, batch_size: int):
    """The experiment's settings for one call, the image size defaulting to the pipeline's own."""
    from otinterp.params import make

    size = getattr(pipe, "default_sample_size", None) or pipe.unet.config.sample_size
    default = int(size * pipe.vae_scale_factor)
    return make(seed=seed, n_intervals=n, steps=steps, guidance=float(guidance), height=height or default,
                width=width or default, batch_size=batch_size, paths=["ot"])


def _to_pil(images: torch.Tensor) -> list:
    """``(N, 3, H, W)`` floats in [0, 1] as PIL images (rounded to 8 bits)."""
    from PIL import Image

    array = (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(a) for a in array]


def _lpips_model(lpips: torch.nn.Module | str | None, device: torch.device) -> torch.nn.Module | None:
    """``lpips`` itself, None, or for ``"auto"`` the pretrained AlexNet LPIPS when it can be loaded."""
    if lpips is None or isinstance(lpips, torch.nn.Module):
        return lpips
    if lpips != "auto":
        raise ValueError(f"lpips must be an LPIPS module, 'auto' or None, got {lpips!r}")
    from otinterp.ppl import load_lpips

    try:
        return load_lpips("alex", "pretrained", device=device)
    except RuntimeError as err:
        warnings.warn(f"no path measures: {err}", stacklevel=3)
        return None


def interpolate(pipe: Any, prompt_a: str, prompt_b: str, n: int = 10, path: str = "ot", seed: int = 0, *,
                steps: int = 50, guidance: float = 7.5, height: int | None = None, width: int | None = None,
                batch_size: int = 8, lpips: torch.nn.Module | str | None = "auto",
                pair_id: str | None = None) -> Interpolation:
    """Render the path from ``prompt_a`` to ``prompt_b`` in ``n`` steps (Karris et al. 2025, eq. 3).

    Parameters
    ----------
    pipe : diffusers pipeline
        SD 1.x/2.x, SDXL, SD3 or Flux, on the device and in the dtype you loaded it with.
    prompt_a, prompt_b : str
    n : int
        Intervals ``K``: ``n + 1`` images, the two ends included.
    path : {"ot", "clip", "random", "slerp"}
        ``"ot"`` pairs the token rows by optimal transport (the Wasserstein geodesic); ``"clip"``
        interpolates row by row; ``"random"`` pairs rows at random; ``"slerp"`` is the usual
        spherical interpolation of the whole embedding.
    seed : int
        Seed of the one initial latent every image starts from (and of the random pairing).
    steps, guidance, height, width : int, float, int, int
        The pipeline's ``num_inference_steps``, guidance scale and image size (default: the
        pipeline's own size).
    batch_size : int
        Images per pipeline call; the images do not depend on it (up to float rounding).
    lpips : LPIPS module, "auto" or None
        Scores the path (:func:`otinterp.ppl.path_measures`); ``"auto"`` loads the pretrained
        AlexNet LPIPS and, when it cannot be had, warns and skips the measures.
    pair_id : str, optional
        Seeds the random pairing with ``seed``, as the experiment does per pair; default an id of
        the two prompts.

    Returns
    -------
    Interpolation
        The ``n + 1`` PIL images, the pairing, its cost and ``W2²``, and the measures.
    """
    from otinterp.data.groups import prompt_pair_id
    from otinterp.experiment import render_unit
    from otinterp.families import family_of
    from otinterp.ppl import path_measures

    if path not in PATHS:
        raise ValueError(f"unknown path {path!r}; expected one of {', '.join(PATHS)}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    params = _render_params(pipe, seed=seed, n=n, steps=steps, guidance=guidance, height=height, width=width,
                            batch_size=batch_size)
    family = family_of(pipe)
    cond = family.encode(pipe, [prompt_a, prompt_b])
    pair_id = pair_id if pair_id is not None else prompt_pair_id(prompt_a, prompt_b)
    rendered = render_unit(pipe, cond[0], cond[1], pair_id, params, seed=seed, paths=[path],
                           uncond=family.unconditional(pipe))[path]
    model = _lpips_model(lpips, pipe.device)
    measures = None
    if model is not None:
        scored = path_measures(rendered["images"][None], model, batch_size=batch_size)
        measures = {name: float(scored[name][0]) for name in MEASURES}
        measures["intervals"] = n
    return Interpolation(images=_to_pil(rendered["images"]), path=path, perm=np.asarray(rendered["perm"]),
                         cost=float(rendered["cost"]), w2=float(rendered["w2"]), measures=measures)


def mix(pipe: Any, prompts: Sequence[str], weights: Sequence[float], seed: int = 0, *, method: str = "ot",
        steps: int = 50, guidance: float = 7.5, height: int | None = None, width: int | None = None):
    """Render one image of the weighted mixture of several prompts (Karris et al. 2025, eq. 4).

    Parameters
    ----------
    pipe : diffusers pipeline
        SD 1.x/2.x, SDXL, SD3 or Flux.
    prompts : sequence of m >= 2 str
    weights : (m,) non-negative floats summing to 1
    seed : int
        Seed of the initial latent.
    method : {"ot", "mean"}
        ``"ot"``: the token sets' free-support W2 barycenter (:func:`otinterp.barycenter.barycenter`);
        ``"mean"``: their row-wise mean. The global vector (SDXL, SD3, Flux) is mixed linearly.
    steps, guidance, height, width : int, float, int, int
        As in :func:`interpolate`.

    Returns
    -------
    PIL.Image.Image
    """
    from otinterp.barycenter import mix_conditioning
    from otinterp.families import family_of
    from otinterp.render import render

    params = _render_params(pipe, seed=seed, n=1, steps=steps, guidance=guidance, height=height, width=width,
                            batch_size=1)
    family = family_of(pipe)
    cond = family.encode(pipe, list(prompts))
    mixed = mix_conditioning([cond[i] for i in range(len(prompts))], weights, method=method)
    image = render(pipe, mixed.tokens[None], pooled=None if mixed.pooled is None else mixed.pooled[None], seed=seed,
                   steps=params.steps, guidance=params.guidance, height=params.height, width=params.width,
                   batch_size=1, uncond=family.unconditional(pipe), disable=True)
    return _to_pil(image)[0]
