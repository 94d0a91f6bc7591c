"""Permutation invariance of the denoiser in the rows of the token set, for every model family.

SD 1.5's UNet sees the text only through cross-attention, ``softmax(Q Kᵀ / √d) V`` with
``K = E W_K`` and ``V = E W_V``. Permuting the rows of ``E`` by ``P`` permutes the columns of the
score matrix and the rows of ``V`` alike, so ``softmax(Q Kᵀ Pᵀ / √d) P V = softmax(Q Kᵀ / √d) Pᵀ P V``
is unchanged: ``G(P E) = G(E)``. The CLIP text encoder is not permutation-equivariant (causal mask,
position embeddings), so the invariance belongs to the UNet, not to CLIP.

The same holds for the other families (:mod:`otinterp.families`): SD 2.x and SDXL (cross-attention
again; SDXL's pooled vector and time ids are not rows of the set), SD3 (joint attention, no position
embedding on text tokens: any order of the whole 77 + 256 set, within the CLIP block, within the T5
block or across them) and Flux (joint attention, every text token at RoPE position zero). The
denoiser is the UNet or the transformer; the global vector is held as it is. ``rows`` chooses
which rows are permuted: ``"all"`` or one block of :meth:`Family.blocks` (``"CLIP"``, ``"T5"``).

Tolerance: the permuted attention sums its 77 terms in another order, which in float32 changes the
last bits. Measured on the CPU in float32: UNet outputs differ by at most 8.5e-7 relative to their
scale (tiny model; SD 1.5 architecture 6.9e-7 at an 8 x 8 latent), images by at most 1.3e-6 on
[0, 1] pixels; the tests use ``rtol = 1e-5``, ten times the worst measured. Permuting the *tokens*
instead changes the encoder's output by O(1) relative to its scale (0.57 for the tiny model).
The other tiny families, float32 on the CPU: denoiser at most 9.1e-7 (SDXL), 3.4e-7 (SD3, also
2.1e-7 within each block), 1.4e-7 (Flux); images at most 2.6e-6. The tiny random T5 encoders see
order only through a small relative position bias: 0.01 (SD3) and 0.02 (Flux) instead of O(1).

Every table has ``max_abs_diff``, ``mean_abs_diff``, ``scale`` (``max |reference|``) and
``rel_max_diff = max_abs_diff / scale``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from otinterp.families import Conditioning, family_of
from otinterp.families.base import word_positions
from otinterp.render import check_embeds, initial_latent, render

__all__ = [
    "random_permutations",
    "differences",
    "check_unet",
    "check_images",
    "check_text_encoder",
    "verdict",
    "plot_pair",
    "row_scopes",
    "ENCODER_COMPARISON",
]

#: The rows of :func:`check_text_encoder` that test the encoder's permutation equivariance (one per block).
ENCODER_COMPARISON = "text encoder: E(tokens[π]) vs E(tokens)[π]"

#: Guidance value given to a denoiser that takes one (Flux-dev) in the one-step probes.
_PROBE_GUIDANCE = 3.5


def row_scopes(pipe: Any) -> list[str]:
    """The ``rows`` choices for ``pipe``: ``"all"``, then each block when there are several (SD3)."""
    blocks = list(family_of(pipe).blocks(pipe))
    return ["all", *blocks] if len(blocks) > 1 else ["all"]


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
    pipe: Any,
    embeds: torch.Tensor,
    *,
    pooled: torch.Tensor | None = None,
    n_perms: int,
    timesteps: Sequence[int],
    seed: int,
    height: int = 64,
    width: int = 64,
    rows: str = "all",
) -> pd.DataFrame:
    """Denoiser (UNet or transformer) predictions for the original and row-permuted token sets.

    The denoiser's input is :func:`~otinterp.render.initial_latent` (the invariance holds for any
    latent); each prompt gets its own ``n_perms`` permutations of its rows.

    Parameters
    ----------
    pipe : diffusers pipeline of a family of :mod:`otinterp.families`
    embeds : (N, L, D) tensor
        Token sets.
    pooled : (N, P) tensor, optional
        Their global vectors, for the families that have one (held fixed).
    n_perms : int
        Random permutations per prompt (:func:`random_permutations` with ``seed``).
    timesteps : sequence of int
        Diffusion timesteps in ``[0, num_train_timesteps)``.
    seed : int
        Seed of the permutations and of the latent.
    height, width : int
        Image size in pixels the latent stands for.
    rows : str
        Which rows are permuted: ``"all"`` or a block name (:func:`row_scopes`).

    Returns
    -------
    DataFrame
        One row per prompt x permutation x timestep: ``prompt`` (index into ``embeds``),
        ``perm``, ``timestep`` and the columns of :func:`differences`.
    """
    check_embeds(pipe, embeds, pooled)
    _check_n_perms(n_perms)
    family = family_of(pipe)
    n_train = pipe.scheduler.config.num_train_timesteps
    bad = [t for t in timesteps if not 0 <= t < n_train]
    if bad or not timesteps:
        raise ValueError(f"timesteps must be a non-empty list of integers in [0, {n_train}), got {list(timesteps)}")
    dtype = family.denoiser(pipe).dtype
    cond = Conditioning(embeds, pooled).to(pipe.device, dtype)
    batches = _with_permutations(cond.tokens, n_perms, seed, _row_range(pipe, rows))
    latent = initial_latent(pipe, seed, height, width).to(pipe.device, dtype)
    records = []
    for i, batch in enumerate(batches):
        probe = Conditioning(batch, None if cond.pooled is None else cond.pooled[i : i + 1].expand(len(batch), -1))
        for t in timesteps:
            out = family.predict(pipe, latent, t, probe, height, width, _PROBE_GUIDANCE)
            records += [
                {"prompt": i, "perm": k, "timestep": t, **differences(out[0], out[1 + k])} for k in range(n_perms)
            ]
    return pd.DataFrame.from_records(records)


def check_images(
    pipe: Any,
    prompts: Sequence[str],
    *,
    n_perms: int,
    seed: int,
    steps: int,
    guidance: float,
    height: int,
    width: int,
    rows: str = "all",
) -> tuple[pd.DataFrame, torch.Tensor]:
    """Rendered images of the original and row-permuted token sets of ``prompts``.

    Parameters
    ----------
    pipe : diffusers pipeline of a family of :mod:`otinterp.families`
    prompts : sequence of str
    n_perms : int
        Random permutations per prompt (the same ones :func:`check_unet` draws with ``seed``).
    seed : int
        Seed of the permutations and of the initial latent.
    steps, guidance, height, width
        As in :func:`otinterp.render.render`.
    rows : str
        Which rows are permuted: ``"all"`` or a block name (:func:`row_scopes`).

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
    cond = family_of(pipe).encode(pipe, prompts)
    batches = _with_permutations(cond.tokens, n_perms, seed, _row_range(pipe, rows))
    n = batches.shape[0]
    pooled = None if cond.pooled is None else cond.pooled.repeat_interleave(1 + n_perms, dim=0)
    images = render(
        pipe, batches.flatten(0, 1), pooled=pooled, seed=seed, steps=steps, guidance=guidance, height=height,
        width=width, batch_size=1 + n_perms, disable=True,
    ).reshape(n, 1 + n_perms, 3, height, width)
    records = [
        {"prompt": prompts[i], "perm": k, **differences(images[i, 0], images[i, 1 + k])}
        for i in range(n)
        for k in range(n_perms)
    ]
    return pd.DataFrame.from_records(records), images


@torch.inference_mode()
def check_text_encoder(
    pipe: Any,
    prompt: str,
    *,
    seed: int,
    timestep: int = 500,
    height: int = 64,
    width: int = 64,
) -> pd.DataFrame:
    """Permuting a prompt's *tokens* is not permuting its token set's rows.

    In each block of the token set (:meth:`Family.blocks`: CLIP, T5), the word tokens (not BOS,
    EOS or padding, which stay in place) are shuffled by a permutation ``π`` that changes the
    token sequence; the tokenizers of one block (SDXL's and SD3's two CLIPs) share it. If the
    encoders were permutation-equivariant, ``E(tokens[π]) = E(tokens)[π]`` and token order would
    not matter.

    Parameters
    ----------
    pipe : diffusers pipeline of a family of :mod:`otinterp.families`
    prompt : str
        Needs at least two distinct word tokens.
    seed : int
        Seed of ``π`` and of the denoiser's latent.
    timestep : int
        Timestep of the denoiser comparisons.
    height, width : int
        Image size the latent stands for.

    Returns
    -------
    DataFrame
        ``prompt``, ``comparison``, ``block`` and the columns of :func:`differences`: per block
        ``text encoder: E(tokens[π]) vs E(tokens)[π]`` (large: not equivariant), then
        ``UNet: E[π] vs E`` (float noise: invariant) and ``UNet: E(tokens[π]) vs E`` (large:
        token order matters to the image), over the whole set (``block`` ``"all"``). "UNet" is
        the denoiser, a transformer for SD3 and Flux.
    """
    family = family_of(pipe)
    ids = family.tokenize(pipe, [prompt])
    rng = np.random.default_rng(seed)
    shuffled = dict(ids)
    blocks = family.blocks(pipe)
    n_rows = max(rows.stop for rows, _ in blocks.values())
    row_perm = torch.arange(n_rows)
    for rows, names in blocks.values():
        if names[0] not in ids:  # a block without its encoder (SD3 without T5: zeros)
            continue
        perm = _token_permutation(ids[names[0]][0], getattr(pipe, names[0]), rng, prompt)
        for name in names:
            shuffled[name] = ids[name][:, perm]
        row_perm[rows] = rows.start + perm
    original, permuted = family.encode_ids(pipe, ids), family.encode_ids(pipe, shuffled)
    records = [
        {"prompt": prompt, "comparison": ENCODER_COMPARISON, "block": block,
         **differences(original.tokens[0, row_perm][rows], permuted.tokens[0][rows])}
        for block, (rows, names) in blocks.items() if names[0] in ids
    ]
    dtype = family.denoiser(pipe).dtype
    latent = initial_latent(pipe, seed, height, width).to(pipe.device, dtype)
    tokens = torch.stack([original.tokens[0], original.tokens[0, row_perm], permuted.tokens[0]]).to(dtype)
    pooled = None if original.pooled is None else torch.cat([original.pooled, original.pooled, permuted.pooled]).to(dtype)
    out = family.predict(pipe, latent, timestep, Conditioning(tokens, pooled), height, width, _PROBE_GUIDANCE)
    records += [
        {"prompt": prompt, "comparison": "UNet: E[π] vs E", "block": "all", **differences(out[0], out[1])},
        {"prompt": prompt, "comparison": "UNet: E(tokens[π]) vs E", "block": "all", **differences(out[0], out[2])},
    ]
    return pd.DataFrame.from_records(records)


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
    encoder = text_encoder.loc[text_encoder["comparison"] == ENCODER_COMPARISON, "rel_max_diff"].min()  # every block
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


def _row_range(pipe: Any, rows: str) -> slice:
    """The rows of the token set that ``rows`` names."""
    if rows == "all":
        return slice(None)
    blocks = family_of(pipe).blocks(pipe)
    if rows not in blocks:
        raise ValueError(f"rows must be 'all' or a block of this model ({', '.join(blocks)}), got {rows!r}")
    return blocks[rows][0]


def _with_permutations(embeds: torch.Tensor, n_perms: int, seed: int, rows: slice = slice(None)) -> torch.Tensor:
    """``(N, 1 + n_perms, L, D)``: each token set, then its ``rows`` under its own random permutations."""
    n, n_rows, _ = embeds.shape
    index = torch.arange(n_rows)[rows]
    perms = torch.arange(n_rows).repeat(n * n_perms, 1)
    perms[:, index] = index[torch.as_tensor(random_permutations(len(index), n * n_perms, seed))]
    perms = perms.to(embeds.device)
    owner = torch.arange(n, device=embeds.device).repeat_interleave(n_perms)
    permuted = embeds[owner[:, None], perms].reshape(n, n_perms, n_rows, -1)
    return torch.cat([embeds[:, None], permuted], dim=1)


def _token_permutation(ids: torch.Tensor, tokenizer: Any, rng: np.random.Generator, prompt: str) -> torch.Tensor:
    """A permutation of all positions that shuffles the word tokens and changes the sequence."""
    words = word_positions(tokenizer, ids)
    if len(set(ids[words].tolist())) < 2:
        raise ValueError(f"prompt {prompt!r} has fewer than two distinct tokens: permuting them changes nothing")
    perm = torch.arange(len(ids))
    while torch.equal(ids[perm], ids):
        perm[words] = words[torch.as_tensor(rng.permutation(len(words)))]
    return perm


def _check_n_perms(n_perms: int) -> None:
    if n_perms < 1:
        raise ValueError(f"n_perms must be >= 1, got {n_perms}")
