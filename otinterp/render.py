"""Rendering ``G(E)``: images from prompt embeddings through the pipeline's own call (SPEC 1).

Every image of a call starts from the same initial latent (:func:`initial_latent`, drawn from the
seed with a CPU generator, so it is the same on every device), and classifier-free guidance uses
one fixed unconditional embedding ``E("")``, never interpolated. The scheduler is the pipeline's.

Batch independence: the image of an embedding does not depend on the batch it is in, up to float
rounding. The batch shape changes how CPU GEMM / convolution kernels block their sums, so the last
float32 bits can differ: measured on the CPU with the tiny model, batch 1 vs batch 3 images differ
by at most 1.3e-6 on [0, 1] pixels (repeating a call is bitwise identical). The tests use an
absolute tolerance of 1e-5, far below one 8-bit level (1/255 = 0.004).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from diffusers import StableDiffusionPipeline
from tqdm.auto import tqdm

from otinterp.text import uncond_embedding

__all__ = ["initial_latent", "render", "check_embeds", "largest_batch_size", "halve_until_fits"]


def initial_latent(pipe: StableDiffusionPipeline, seed: int, height: int, width: int) -> torch.Tensor:
    """The initial latent shared by every image rendered with ``seed``.

    Parameters
    ----------
    pipe : StableDiffusionPipeline
    seed : int
        Seed of a CPU ``torch.Generator``, so the latent is the same whatever the device.
    height, width : int
        Image size in pixels, multiples of the VAE's scale factor (8 for SD).

    Returns
    -------
    latent : (1, C, height / 8, width / 8) float32 tensor on the CPU
        Standard normal, before the scheduler's ``init_noise_sigma`` scaling (the pipeline applies it).
    """
    factor = pipe.vae_scale_factor
    for name, size in (("height", height), ("width", width)):
        if size < factor or size % factor:
            raise ValueError(f"{name} must be a positive multiple of {factor} (the VAE's scale factor), got {size}")
    shape = (1, pipe.unet.config.in_channels, height // factor, width // factor)
    return torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed), dtype=torch.float32)


def check_embeds(pipe: StableDiffusionPipeline, embeds: torch.Tensor) -> None:
    """Raise a clear error unless ``embeds`` is a finite ``(N, L, D)`` batch the UNet accepts.

    Parameters
    ----------
    pipe : StableDiffusionPipeline
    embeds : (N, L, D) tensor
        ``D`` must equal the UNet's ``cross_attention_dim``; ``N >= 1``.
    """
    if not isinstance(embeds, torch.Tensor):
        raise TypeError(f"embeddings must be a torch.Tensor, got {type(embeds).__name__}")
    if embeds.ndim != 3:
        raise ValueError(f"embeddings must be a 3-D (batch, rows, width) tensor, got shape {tuple(embeds.shape)}")
    if embeds.shape[0] == 0:
        raise ValueError("no embeddings given (batch of size 0)")
    expected = pipe.unet.config.cross_attention_dim
    if embeds.shape[2] != expected:
        raise ValueError(f"embeddings have width {embeds.shape[2]} but the pipeline's UNet expects {expected}")
    bad = ~torch.isfinite(embeds).flatten(1).all(dim=1)
    if bad.any():
        raise ValueError(f"embeddings contain NaN or infinite values (batch index {bad.nonzero()[0].item()})")


def render(
    pipe: StableDiffusionPipeline,
    embeds: torch.Tensor,
    *,
    seed: int,
    steps: int,
    guidance: float,
    height: int,
    width: int,
    batch_size: int,
    uncond: torch.Tensor | None = None,
    callback: Callable[[int, int], None] | None = None,
    disable: bool = False,
) -> torch.Tensor:
    """Render prompt embeddings, one image each, from one fixed initial latent.

    Parameters
    ----------
    pipe : StableDiffusionPipeline
    embeds : (N, 77, D) tensor
        Prompt embeddings (any device or float dtype; cast to the UNet's).
    seed : int
        Seed of the initial latent (:func:`initial_latent`), the same for all ``N`` images.
    steps : int
        ``num_inference_steps`` of the pipeline's scheduler.
    guidance : float
        Classifier-free guidance scale (no guidance at ``<= 1``).
    height, width : int
        Image size in pixels.
    batch_size : int
        Images per pipeline call; the result does not depend on it.
    uncond : (1, 77, D) tensor, optional
        The unconditional embedding; default ``E("")`` (:func:`otinterp.text.uncond_embedding`).
    callback : callable, optional
        ``callback(n_done, n_total)`` after each batch.
    disable : bool
        Hide the ``tqdm`` progress bar over images.

    Returns
    -------
    images : (N, 3, height, width) float32 tensor on the CPU, values in [0, 1]
    """
    check_embeds(pipe, embeds)
    if uncond is None:
        uncond = uncond_embedding(pipe)
    check_embeds(pipe, uncond)
    if uncond.shape[:2] != (1, embeds.shape[1]):
        raise ValueError(
            f"the unconditional embedding must have shape (1, {embeds.shape[1]}, D), got {tuple(uncond.shape)}"
        )
    if batch_size < 1 or steps < 1:
        raise ValueError(f"batch_size and steps must be >= 1, got {batch_size} and {steps}")
    dtype = pipe.unet.dtype
    embeds = embeds.to(pipe.device, dtype)
    uncond = uncond.to(pipe.device, dtype)
    latent = initial_latent(pipe, seed, height, width).to(pipe.device, dtype)
    pipe.set_progress_bar_config(disable=True)
    n = embeds.shape[0]
    images = torch.empty((n, 3, height, width), dtype=torch.float32)
    with tqdm(total=n, desc="render", unit="img", disable=disable) as bar:
        for start in range(0, n, batch_size):
            chunk = embeds[start : start + batch_size]
            size = chunk.shape[0]
            out = pipe(
                prompt_embeds=chunk,
                negative_prompt_embeds=uncond.expand(size, -1, -1),
                latents=latent.expand(size, -1, -1, -1),
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


def largest_batch_size(pipe: StableDiffusionPipeline, *, height: int, width: int, start: int = 64) -> int:
    """A batch size that fills the GPU: the largest of ``start, start / 2, …`` whose guided render
    (one step, the experiment's image size) fits in device memory. On a CPU, ``start``.
    """
    if pipe.device.type != "cuda":
        return start
    embeds = uncond_embedding(pipe)

    def try_batch(size: int) -> None:
        render(pipe, embeds.expand(size, -1, -1), seed=0, steps=1, guidance=7.5, height=height, width=width,
               batch_size=size, uncond=embeds, disable=True)

    return halve_until_fits(try_batch, start)
