"""Prompt embeddings as Stable Diffusion 1.5 computes them (SPEC 1).

``E(p)`` is the last hidden state of the pipeline's CLIP text encoder for the prompt tokenized as
SD 1.5 does: BOS, tokens, EOS, padded with EOS to 77, truncated to 77 (with a warning naming the
prompt). It equals diffusers' ``pipe.encode_prompt`` for the same prompt (no clip-skip).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from diffusers import StableDiffusionPipeline

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
    prompts = _check_prompts(prompts)
    tokenizer = pipe.tokenizer
    max_length = tokenizer.model_max_length
    lengths = [len(ids) for ids in tokenizer(prompts, verbose=False).input_ids]
    truncated = [p for p, n in zip(prompts, lengths) if n > max_length]
    if truncated:
        warnings.warn(
            f"{len(truncated)} prompt(s) longer than {max_length} tokens truncated, as Stable Diffusion does: "
            + ", ".join(map(repr, truncated)),
            stacklevel=2,
        )
    return tokenizer(
        prompts, padding="max_length", max_length=max_length, truncation=True, return_tensors="pt"
    ).input_ids


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
    if ids.ndim != 2:
        raise ValueError(f"token ids must be a 2-D (prompts, positions) tensor, got shape {tuple(ids.shape)}")
    return pipe.text_encoder(ids.to(pipe.device))[0]


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
        On the pipeline's device, in the text encoder's dtype (as ``encode_prompt`` returns them).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    ids = tokenize(pipe, prompts)
    return torch.cat([encode_ids(pipe, chunk) for chunk in ids.split(batch_size)])


def uncond_embedding(pipe: StableDiffusionPipeline) -> torch.Tensor:
    """The unconditional embedding ``E("")`` used for classifier-free guidance.

    Returns
    -------
    embed : (1, 77, D) tensor
        On the pipeline's device, in the text encoder's dtype.
    """
    return encode(pipe, [""])


def _check_prompts(prompts: Sequence[str]) -> list[str]:
    if isinstance(prompts, str):
        raise TypeError(f"prompts must be a sequence of strings, not one string: {prompts!r}; wrap it in a list")
    prompts = list(prompts)
    if not prompts:
        raise ValueError("no prompts given")
    bad = [p for p in prompts if not isinstance(p, str)]
    if bad:
        raise TypeError(f"prompts must be strings, got {bad[0]!r} ({type(bad[0]).__name__})")
    return prompts
