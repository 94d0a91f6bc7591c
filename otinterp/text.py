"""Prompt embeddings as Stable Diffusion 1.x/2.x compute them (docs/definitions.md §1).

The other families' token sets and global vectors come from :mod:`otinterp.families`
(``family_of(pipe).encode``); this module is the SD 1.x/2.x case, which that family uses.

``E(p)`` is the last hidden state of the pipeline's CLIP text encoder for the prompt tokenized as
SD 1.5 does: BOS, tokens, EOS, padded with EOS to 77, truncated to 77 (with a warning naming the
prompt). It equals diffusers' ``pipe.encode_prompt`` for the same prompt (no clip-skip).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from diffusers import StableDiffusionPipeline

from otinterp.families import family_of
from otinterp.families.base import tokenize_with

__all__ = ["tokenize", "encode_ids", "encode", "uncond_embedding"]


def tokenize(pipe: StableDiffusionPipeline, prompts: Sequence[str]) -> torch.Tensor:
    """Token ids of ``prompts`` as SD 1.5 feeds them to its text encoder.

    Parameters
    ----------
    pipe : StableDiffusionPipeline
    prompts : sequence of str
        Empty strings are allowed (BOS then EOS padding).

    Returns
    -------
    ids : (N, 77) int64 tensor on the CPU
        BOS, tokens, EOS, padded with the pad token (EOS for SD 1.5) to the tokenizer's
        ``model_max_length``.

    Warns
    -----
    UserWarning
        Naming every prompt longer than the context, which is truncated to BOS, its first 75
        tokens and EOS (what SD does).
    """
    return tokenize_with(pipe.tokenizer, prompts, pipe.tokenizer.model_max_length)


@torch.inference_mode()
def encode_ids(pipe: StableDiffusionPipeline, ids: torch.Tensor) -> torch.Tensor:
    """The text encoder's last hidden state for token ids.

    Parameters
    ----------
    pipe : StableDiffusionPipeline
    ids : (N, 77) integer tensor

    Returns
    -------
    embeds : (N, 77, D) tensor
        On the pipeline's device, in the text encoder's dtype.
    """
    _require_sd(pipe)
    return family_of(pipe).encode_ids(pipe, {"tokenizer": ids}).tokens


def encode(pipe: StableDiffusionPipeline, prompts: Sequence[str], *, batch_size: int = 64) -> torch.Tensor:
    """Prompt embeddings ``E(p)``, equal to ``pipe.encode_prompt``'s.

    Parameters
    ----------
    pipe : StableDiffusionPipeline
    prompts : sequence of str
        Over-long prompts are truncated with a warning naming them; empty ones are allowed.
    batch_size : int
        Prompts per text-encoder call.

    Returns
    -------
    embeds : (N, 77, D) tensor
        On the pipeline's device, in the text encoder's dtype (as ``encode_prompt`` returns them):
        the SD family's token set, ``family_of(pipe).encode(pipe, prompts).tokens``.
    """
    _require_sd(pipe)
    return family_of(pipe).encode(pipe, prompts, batch_size=batch_size).tokens


def _require_sd(pipe: object) -> None:
    """A clear error for a pipeline of another family, naming the family encoder to use instead."""
    if not isinstance(pipe, StableDiffusionPipeline):
        raise TypeError(
            f"otinterp.text encodes for SD 1.x/2.x only, not {type(pipe).__name__}: use "
            f"otinterp.families.family_of(pipe).encode(pipe, prompts) (token set and global vector)"
        )


def uncond_embedding(pipe: StableDiffusionPipeline) -> torch.Tensor:
    """The unconditional embedding ``E("")`` used for classifier-free guidance.

    Returns
    -------
    embed : (1, 77, D) tensor
        On the pipeline's device, in the text encoder's dtype.
    """
    return encode(pipe, [""])
