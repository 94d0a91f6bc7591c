"""Permutation invariance of the UNet in the rows of the prompt embedding (SPEC 2).

SD 1.5's UNet sees the text only through cross-attention, ``softmax(Q Kᵀ / √d) V`` with
``K = E W_K`` and ``V = E W_V``. Permuting the rows of ``E`` by ``P`` permutes the columns of the
score matrix and the rows of ``V`` alike, so ``softmax(Q Kᵀ Pᵀ / √d) P V = softmax(Q Kᵀ / √d) Pᵀ P V``
is unchanged: ``G(P E) = G(E)``. The CLIP text encoder is not permutation-equivariant (causal mask,
position embeddings), so the invariance belongs to the UNet, not to CLIP.

Tolerance: the permuted attention sums its 77 terms in another order, which in float32 changes the
last bits. Measured on the CPU in float32: UNet outputs differ by at most 8.5e-7 relative to their
scale (tiny model; SD 1.5 architecture 6.9e-7 at an 8 x 8 latent), images by at most 1.3e-6 on
[0, 1] pixels; the tests use ``rtol = 1e-5``, ten times the worst measured. Permuting the *tokens*
instead changes the encoder's output by O(1) relative to its scale (0.57 for the tiny model).

Every table has ``max_abs_diff``, ``mean_abs_diff``, ``scale`` (``max |reference|``) and
``rel_max_diff = max_abs_diff / scale``.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from diffusers import StableDiffusionPipeline

from otinterp.render import check_embeds, initial_latent, render
from otinterp.text import encode, encode_ids, tokenize

__all__ = [
    "random_permutations",
    "differences",
    "check_unet",
    "check_images",
    "check_text_encoder",
    "verdict",
    "plot_pair",
    "ENCODER_COMPARISON",
]

#: The row of :func:`check_text_encoder` that tests the encoder's permutation equivariance.
ENCODER_COMPARISON = "text encoder: E(tokens[π]) vs E(tokens)[π]"


def random_permutations(n_rows: int, count: int, seed: int) -> np.ndarray:
    """``count`` uniformly random permutations of ``0..n_rows-1``.

    Returns
    -------
    perms : (count, n_rows) int array
        Drawn from ``numpy.random.default_rng(seed)``.
    """
    rng = np.random.default_rng(seed)
    return rng.permuted(np.tile(np.arange(n_rows), (count, 1)), axis=1)


def differences(reference: torch.Tensor, other: torch.Tensor) -> dict[str, float]:
    """How far ``other`` is from ``reference`` (same shape), absolutely and relative to its scale.

    Returns
    -------
    dict
        ``max_abs_diff``, ``mean_abs_diff``, ``scale = max |reference|`` and
        ``rel_max_diff = max_abs_diff / scale``.
    """
    if reference.shape != other.shape:
        raise ValueError(f"cannot compare shapes {tuple(reference.shape)} and {tuple(other.shape)}")
    diff = (other.double() - reference.double()).abs()
    scale = reference.double().abs().max().item()
    return {
        "max_abs_diff": diff.max().item(),
        "mean_abs_diff": diff.mean().item(),
        "scale": scale,
        "rel_max_diff": diff.max().item() / scale if scale > 0 else float("inf"),
    }


@torch.inference_mode()
def check_unet(
    pipe: StableDiffusionPipeline,
    embeds: torch.Tensor,
    *,
    n_perms: int,
    timesteps: Sequence[int],
    seed: int,
    height: int = 64,
    width: int = 64,
) -> pd.DataFrame:
    """UNet noise predictions for the original and row-permuted embeddings.

    The UNet's input is :func:`~otinterp.render.initial_latent` (the invariance holds for any
    latent); each prompt gets its own ``n_perms`` permutations of all its rows.

    Parameters
    ----------
    pipe : StableDiffusionPipeline
    embeds : (N, 77, D) tensor
        Prompt embeddings.
    n_perms : int
        Random permutations per prompt (:func:`random_permutations` with ``seed``).
    timesteps : sequence of int
        Diffusion timesteps in ``[0, num_train_timesteps)``.
    seed : int
        Seed of the permutations and of the latent.
    height, width : int
        Image size in pixels the latent stands for (latent ``height / 8 x width / 8``).

    Returns
    -------
    DataFrame
        One row per prompt x permutation x timestep: ``prompt`` (index into ``embeds``),
        ``perm``, ``timestep`` and the columns of :func:`differences`.
    """
    check_embeds(pipe, embeds)
    _check_n_perms(n_perms)
    n_train = pipe.scheduler.config.num_train_timesteps
    bad = [t for t in timesteps if not 0 <= t < n_train]
    if bad or not timesteps:
        raise ValueError(f"timesteps must be a non-empty list of integers in [0, {n_train}), got {list(timesteps)}")
    batches = _with_permutations(embeds.to(pipe.device, pipe.unet.dtype), n_perms, seed)
    latent = initial_latent(pipe, seed, height, width).to(pipe.device, pipe.unet.dtype)
    records = []
    for i, batch in enumerate(batches):
        for t in timesteps:
            out = _unet(pipe, latent, t, batch)
            records += [
                {"prompt": i, "perm": k, "timestep": t, **differences(out[0], out[1 + k])} for k in range(n_perms)
            ]
    return pd.DataFrame.from_records(records)


def check_images(
    pipe: StableDiffusionPipeline,
    prompts: Sequence[str],
    *,
    n_perms: int,
    seed: int,
    steps: int,
    guidance: float,
    height: int,
    width: int,
) -> tuple[pd.DataFrame, torch.Tensor]:
    """Rendered images of the original and row-permuted embeddings of ``prompts``.

    Parameters
    ----------
    pipe : StableDiffusionPipeline
    prompts : sequence of str
    n_perms : int
        Random permutations per prompt (the same ones :func:`check_unet` draws with ``seed``).
    seed : int
        Seed of the permutations and of the initial latent.
    steps, guidance, height, width
        As in :func:`otinterp.render.render`.

    Returns
    -------
    table : DataFrame
        One row per prompt x permutation: ``prompt`` (its text), ``perm`` and the columns of
        :func:`differences`, over pixels in [0, 1].
    images : (N, 1 + n_perms, 3, height, width) float32 tensor
        ``images[i, 0]`` renders prompt ``i``'s embedding, ``images[i, 1 + k]`` its permutation ``k``.
    """
    _check_n_perms(n_perms)
    prompts = list(prompts)
    batches = _with_permutations(encode(pipe, prompts), n_perms, seed)
    n = batches.shape[0]
    images = render(
        pipe, batches.flatten(0, 1), seed=seed, steps=steps, guidance=guidance, height=height, width=width,
        batch_size=1 + n_perms, disable=True,
    ).reshape(n, 1 + n_perms, 3, height, width)
    records = [
        {"prompt": prompts[i], "perm": k, **differences(images[i, 0], images[i, 1 + k])}
        for i in range(n)
        for k in range(n_perms)
    ]
    return pd.DataFrame.from_records(records), images


@torch.inference_mode()
def check_text_encoder(
    pipe: StableDiffusionPipeline,
    prompt: str,
    *,
    seed: int,
    timestep: int = 500,
    height: int = 64,
    width: int = 64,
) -> pd.DataFrame:
    """Permuting a prompt's *tokens* is not permuting its embedding's rows.

    The word tokens (between BOS and the first EOS; BOS, EOS and padding stay in place) are
    shuffled by a permutation ``π`` that changes the token sequence. If the encoder were
    permutation-equivariant, ``E(tokens[π]) = E(tokens)[π]`` and the token order would not matter.

    Parameters
    ----------
    pipe : StableDiffusionPipeline
    prompt : str
        Needs at least two distinct word tokens.
    seed : int
        Seed of ``π`` and of the UNet's latent.
    timestep : int
        Timestep of the UNet comparisons.
    height, width : int
        Image size the latent stands for.

    Returns
    -------
    DataFrame
        Three rows, ``prompt``, ``comparison`` and the columns of :func:`differences`:
        ``text encoder: E(tokens[π]) vs E(tokens)[π]`` (large: not equivariant),
        ``UNet: E[π] vs E`` (float noise: invariant) and
        ``UNet: E(tokens[π]) vs E`` (large: token order matters to the image).
    """
    ids = tokenize(pipe, [prompt])[0]
    perm = _token_permutation(ids, pipe.tokenizer.eos_token_id, np.random.default_rng(seed), prompt)
    embeds = encode_ids(pipe, torch.stack([ids, ids[perm]]))
    original, shuffled = embeds[0], embeds[1]
    latent = initial_latent(pipe, seed, height, width).to(pipe.device, pipe.unet.dtype)
    unet_in = torch.stack([original, original[perm], shuffled]).to(pipe.unet.dtype)
    out = _unet(pipe, latent, timestep, unet_in)
    return pd.DataFrame.from_records([
        {"prompt": prompt, "comparison": ENCODER_COMPARISON, **differences(original[perm], shuffled)},
        {"prompt": prompt, "comparison": "UNet: E[π] vs E", **differences(out[0], out[1])},
        {"prompt": prompt, "comparison": "UNet: E(tokens[π]) vs E", **differences(out[0], out[2])},
    ])


def verdict(unet: pd.DataFrame, images: pd.DataFrame, text_encoder: pd.DataFrame, *, rtol: float) -> str:
    """One line: do the UNet and the images pass ``rtol``, and does the text encoder fail it?

    Parameters
    ----------
    unet, images, text_encoder : DataFrame
        Tables of :func:`check_unet`, :func:`check_images` and :func:`check_text_encoder` (the
        latter possibly concatenated over prompts: its smallest encoder difference counts).
    rtol : float
        Largest ``rel_max_diff`` accepted as "equal up to float rounding".
    """
    worst_unet = unet["rel_max_diff"].max()
    worst_images = images["rel_max_diff"].max()
    encoder = text_encoder.loc[text_encoder["comparison"] == ENCODER_COMPARISON, "rel_max_diff"].min()
    invariant = worst_unet <= rtol and worst_images <= rtol
    return (
        f"{'PASS' if invariant and encoder > rtol else 'FAIL'}: UNet {'is' if invariant else 'is NOT'} "
        f"row-permutation invariant at rtol {rtol:.0e} (worst relative difference: UNet {worst_unet:.1e}, "
        f"images {worst_images:.1e}); the text encoder is {'not ' if encoder > rtol else ''}"
        f"token-permutation equivariant (relative difference {encoder:.1e})"
    )


def plot_pair(original: torch.Tensor, permuted: torch.Tensor, *, title: str = "") -> plt.Figure:
    """Original image, image of the permuted embedding, and their absolute difference.

    Parameters
    ----------
    original, permuted : (3, H, W) tensor
        Images in [0, 1].
    title : str
        Figure title (say "random weights: images mean nothing" where it applies).
    """
    diff = (permuted - original).abs().amax(dim=0)
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.4), layout="constrained")
    for ax, image, name in zip(axes[:2], (original, permuted), ("E", "E[perm]")):
        ax.imshow(image.permute(1, 2, 0).clamp(0, 1).numpy())
        ax.set_title(name)
    shown = axes[2].imshow(diff.numpy(), cmap="magma")
    axes[2].set_title(f"|difference| (max {diff.max().item():.1e})")
    fig.colorbar(shown, ax=axes[2], shrink=0.8)
    for ax in axes:
        ax.set_axis_off()
    fig.suptitle(title)
    return fig


def _with_permutations(embeds: torch.Tensor, n_perms: int, seed: int) -> torch.Tensor:
    """``(N, 1 + n_perms, L, D)``: each embedding, then its rows under its own random permutations."""
    n, rows, _ = embeds.shape
    perms = torch.as_tensor(random_permutations(rows, n * n_perms, seed), device=embeds.device)
    owner = torch.arange(n, device=embeds.device).repeat_interleave(n_perms)
    permuted = embeds[owner[:, None], perms].reshape(n, n_perms, rows, -1)
    return torch.cat([embeds[:, None], permuted], dim=1)


def _unet(pipe: StableDiffusionPipeline, latent: torch.Tensor, t: int, embeds: torch.Tensor) -> torch.Tensor:
    """Noise prediction ``(B, C, h, w)`` in float32 for one ``(1, C, h, w)`` latent and ``B`` embeddings."""
    timestep = torch.tensor(t, device=pipe.device)
    out = pipe.unet(latent.expand(embeds.shape[0], -1, -1, -1), timestep, encoder_hidden_states=embeds).sample
    return out.float()


def _token_permutation(ids: torch.Tensor, eos: int, rng: np.random.Generator, prompt: str) -> torch.Tensor:
    """A permutation of all positions that shuffles the word tokens and changes the sequence."""
    n_words = int((ids == eos).nonzero()[0]) - 1
    if len(set(ids[1 : 1 + n_words].tolist())) < 2:
        raise ValueError(f"prompt {prompt!r} has fewer than two distinct tokens: permuting them changes nothing")
    perm = torch.arange(len(ids))
    while torch.equal(ids[perm], ids):
        perm[1 : 1 + n_words] = 1 + torch.as_tensor(rng.permutation(n_words))
    return perm


def _check_n_perms(n_perms: int) -> None:
    if n_perms < 1:
        raise ValueError(f"n_perms must be >= 1, got {n_perms}")
