"""Rendering ``G(E)``: images from token sets through the pipeline's own call, for every family.

Every image of a call starts from the same initial latent (:func:`initial_latent`, drawn from the
seed with a CPU generator, so it is the same on every device), and classifier-free guidance uses
the family's one fixed unconditional input (``E("")``; zeros for SDXL; none for guidance-distilled
Flux), never interpolated. The scheduler is the pipeline's.

Batch independence: the image of an embedding does not depend on the batch it is in, up to float
rounding. The batch shape changes how CPU GEMM / convolution kernels block their sums, so the last
float32 bits can differ: measured on the CPU with the tiny model, batch 1 vs batch 3 images differ
by at most 1.3e-6 on [0, 1] pixels (repeating a call is bitwise identical). The tests use an
absolute tolerance of 1e-5, far below one 8-bit level (1/255 = 0.004).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from tqdm.auto import tqdm

from otinterp.families import Conditioning, family_of

__all__ = ["initial_latent", "render", "check_embeds", "largest_batch_size", "halve_until_fits"]


def initial_latent(pipe: Any, seed: int, height: int, width: int) -> torch.Tensor:
    """The initial latent shared by every image rendered with ``seed``.

    Parameters
    ----------
    pipe : diffusers pipeline of a family of :mod:`otinterp.families`
    seed : int
        Seed of a CPU ``torch.Generator``, so the latent is the same whatever the device.
    height, width : int
        Image size in pixels, multiples of the VAE's scale factor (8 for SD; 16 for SD3 and Flux,
        whose transformers take 2 x 2 patches).

    Returns
    -------
    latent : float32 tensor on the CPU, batch 1
        ``(1, C, height / 8, width / 8)``, or packed ``(1, h w / 4, 4 C)`` for Flux, as the
        pipeline's ``latents`` argument takes it. Standard normal, before the scheduler's
        ``init_noise_sigma`` scaling (the pipeline applies it).
    """
    return family_of(pipe).initial_latent(pipe, seed, height, width)


def check_embeds(pipe: Any, embeds: torch.Tensor, pooled: torch.Tensor | None = None) -> None:
    """Raise a clear error unless ``embeds`` (and ``pooled``) are a finite batch the denoiser accepts.

    Parameters
    ----------
    pipe : diffusers pipeline
    embeds : (N, L, D) tensor
        ``D`` must equal the width the family's denoiser takes; ``N >= 1``.
    pooled : (N, P) tensor or None
        Required exactly for the families with a global vector (SDXL, SD3, Flux).
    """
    family = family_of(pipe)
    if not isinstance(embeds, torch.Tensor):
        raise TypeError(f"embeddings must be a torch.Tensor, got {type(embeds).__name__}")
    if embeds.ndim != 3:
        raise ValueError(f"embeddings must be a 3-D (batch, rows, width) tensor, got shape {tuple(embeds.shape)}")
    if embeds.shape[0] == 0:
        raise ValueError("no embeddings given (batch of size 0)")
    expected = family.token_width(pipe)
    if embeds.shape[2] != expected:
        denoiser = "transformer" if hasattr(pipe, "transformer") else "UNet"
        raise ValueError(f"embeddings have width {embeds.shape[2]} but the pipeline's {denoiser} expects {expected}")
    _check_finite(embeds, "embeddings")
    wants_pooled = family.name != "sd"
    if wants_pooled and pooled is None:
        raise ValueError(f"{family.title} needs the global vector: pass pooled (N, P) with the embeddings")
    if not wants_pooled and pooled is not None:
        raise ValueError(f"{family.title} has no global vector: pooled must be None")
    if pooled is not None:
        if pooled.ndim != 2 or pooled.shape[0] != embeds.shape[0]:
            raise ValueError(f"pooled must have shape ({embeds.shape[0]}, P), got {tuple(pooled.shape)}")
        _check_finite(pooled, "pooled vectors")


def _check_finite(values: torch.Tensor, what: str) -> None:
    bad = ~torch.isfinite(values).flatten(1).all(dim=1)
    if bad.any():
        raise ValueError(f"{what} contain NaN or infinite values (batch index {bad.nonzero()[0].item()})")


def render(
    pipe: Any,
    embeds: torch.Tensor,
    *,
    pooled: torch.Tensor | None = None,
    seed: int,
    steps: int,
    guidance: float,
    height: int,
    width: int,
    batch_size: int,
    uncond: Conditioning | torch.Tensor | None = None,
    callback: Callable[[int, int], None] | None = None,
    disable: bool = False,
) -> torch.Tensor:
    """Render token sets, one image each, from one fixed initial latent.

    Parameters
    ----------
    pipe : diffusers pipeline of a family of :mod:`otinterp.families`
    embeds : (N, L, D) tensor
        Token sets (any device or float dtype; cast to the denoiser's).
    pooled : (N, P) tensor, optional
        Global vectors, for the families that have one (SDXL, SD3, Flux); None for SD 1.x/2.x.
    seed : int
        Seed of the initial latent (:func:`initial_latent`), the same for all ``N`` images.
    steps : int
        ``num_inference_steps`` of the pipeline's scheduler.
    guidance : float
        Guidance scale: classifier-free (no guidance at ``<= 1``), or Flux-dev's distilled guidance
        value (ignored by FLUX.1-schnell).
    height, width : int
        Image size in pixels.
    batch_size : int
        Images per pipeline call; the result does not depend on it.
    uncond : Conditioning or (1, L, D) tensor, optional
        The fixed unconditional input; default the family's own
        (:meth:`otinterp.families.Family.unconditional`, computed once). A tensor is the token set
        of a family without a global vector. Must be None for Flux (no unconditional branch).
    callback : callable, optional
        ``callback(n_done, n_total)`` after each batch.
    disable : bool
        Hide the ``tqdm`` progress bar over images.

    Returns
    -------
    images : (N, 3, height, width) float32 tensor on the CPU, values in [0, 1]
    """
    family = family_of(pipe)
    check_embeds(pipe, embeds, pooled)
    if uncond is None:
        uncond = family.unconditional(pipe)
    elif isinstance(uncond, torch.Tensor):
        uncond = Conditioning(uncond)
    if uncond is not None:
        check_embeds(pipe, uncond.tokens, uncond.pooled)
        if uncond.tokens.shape[:2] != (1, embeds.shape[1]):
            raise ValueError(
                f"the unconditional embedding must have shape (1, {embeds.shape[1]}, D), got {tuple(uncond.tokens.shape)}"
            )
    if batch_size < 1 or steps < 1:
        raise ValueError(f"batch_size and steps must be >= 1, got {batch_size} and {steps}")
    dtype = family.denoiser(pipe).dtype
    cond = Conditioning(embeds, pooled).to(pipe.device, dtype)
    uncond = None if uncond is None else uncond.to(pipe.device, dtype)
    latent = initial_latent(pipe, seed, height, width).to(pipe.device, dtype)
    pipe.set_progress_bar_config(disable=True)
    n = len(cond)
    images = torch.empty((n, 3, height, width), dtype=torch.float32)
    with tqdm(total=n, desc="render", unit="img", disable=disable) as bar:
        for start in range(0, n, batch_size):
            chunk = cond[start : start + batch_size]
            size = len(chunk)
            out = pipe(
                **family.call_kwargs(pipe, chunk, None if uncond is None else uncond.expand(size), guidance),
                latents=latent.expand(size, *latent.shape[1:]),
                num_inference_steps=steps,
                guidance_scale=guidance,
                height=height,
                width=width,
                output_type="pt",
            ).images
            images[start : start + size] = out.float().cpu()
            bar.update(size)
            if callback is not None:
                callback(start + size, n)
    return images


def halve_until_fits(try_batch: Callable[[int], object], start: int) -> int:
    """The first of ``start, start // 2, …, 1`` for which ``try_batch(size)`` runs out of no memory.

    ``torch.cuda.OutOfMemoryError`` means "too large"; any other error propagates.
    """
    size = start
    while True:
        try:
            try_batch(size)
            return size
        except torch.cuda.OutOfMemoryError:
            if size == 1:
                raise
            size //= 2
            torch.cuda.empty_cache()


def largest_batch_size(pipe: Any, *, height: int, width: int, start: int = 64) -> int:
    """A batch size that fills the GPU: the largest of ``start, start / 2, …`` whose guided render
    (one step, the experiment's image size) fits in device memory. On a CPU, ``start``.
    """
    if pipe.device.type != "cuda":
        return start
    probe = family_of(pipe).encode(pipe, [""])

    def try_batch(size: int) -> None:
        batch = probe.expand(size)
        render(pipe, batch.tokens, pooled=batch.pooled, seed=0, steps=1, guidance=7.5, height=height, width=width,
               batch_size=size, disable=True)

    return halve_until_fits(try_batch, start)
