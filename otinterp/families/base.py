"""What every model family provides: the token set, the global vector, guidance and one render call.

A family turns prompts into a :class:`Conditioning` (the point cloud ``tokens`` the denoiser sees
only through attention, and the optional global vector ``pooled``), says what its fixed
unconditional input is, and turns a batch of conditionings plus one initial latent into the
keywords of its diffusers pipeline's call. Everything else in otinterp (couplings, costs, PPL, the
experiment, statistics, figures) sees only the token set and the global vector.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["Conditioning", "Family", "PooledGuidedFamily", "check_prompts", "tokenize_with", "word_positions"]


@dataclass(frozen=True)
class Conditioning:
    """What a denoiser is conditioned on.

    Attributes
    ----------
    tokens : (N, L, D) tensor
        The token set: the point cloud's rows, seen by the denoiser only through attention. (One
        prompt's, ``(L, D)`` with ``pooled (P,)``, is allowed as a record; the batch methods need N.)
    pooled : (N, P) tensor or None
        The global vector (SDXL, SD3, Flux), interpolated linearly and never coupled; None for SD 1.x/2.x.
    """

    tokens: torch.Tensor
    pooled: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.tokens.shape[0]

    def __getitem__(self, index: slice | torch.Tensor) -> Conditioning:
        return Conditioning(self.tokens[index], None if self.pooled is None else self.pooled[index])

    def to(self, device: torch.device | str, dtype: torch.dtype) -> Conditioning:
        """Both tensors on ``device`` in ``dtype``."""
        return Conditioning(self.tokens.to(device, dtype), None if self.pooled is None else self.pooled.to(device, dtype))

    def expand(self, size: int) -> Conditioning:
        """A batch of one repeated ``size`` times (a view)."""
        if len(self) != 1:
            raise ValueError(f"only a conditioning of batch 1 can be expanded, got batch {len(self)}")
        pooled = None if self.pooled is None else self.pooled.expand(size, -1)
        return Conditioning(self.tokens.expand(size, -1, -1), pooled)

    def permute_rows(self, perm: torch.Tensor) -> Conditioning:
        """The token rows in the order ``perm`` (``(L,)``, or ``(N, L)`` one per item); pooled unchanged."""
        perm = perm.to(self.tokens.device)
        rows = perm.expand(len(self), -1) if perm.ndim == 1 else perm
        tokens = torch.gather(self.tokens, 1, rows[..., None].expand(-1, -1, self.tokens.shape[2]))
        return Conditioning(tokens, self.pooled)


class Family:
    """A model family. Subclasses set the class attributes and implement the abstract methods.

    Attributes
    ----------
    name : str
        ``"sd"``, ``"sdxl"``, ``"sd3"`` or ``"flux"``.
    title : str
        Human-readable name, for messages and figure titles.
    pipeline_class : type
        The diffusers pipeline class (``model_index.json``'s ``_class_name``).
    flow_matching : bool
        Whether the model is trained with flow matching (its scheduler cannot be swapped for a
        DDPM-family one).
    fixed_rows : int
        How many leading rows of the token set are the same for every prompt and so stay in place
        under the random coupling: 1 where row 0 is CLIP's BOS (SD, SDXL, and SD3, whose token set
        starts with its CLIP block), 0 where row 0 is already a word (Flux's T5 tokens, no BOS).
    """

    name: str
    title: str
    pipeline_class: type
    flow_matching: bool = False
    fixed_rows: int

    def load_options(self) -> dict[str, Any]:
        """Extra keywords of ``from_pretrained`` / ``from_single_file``."""
        return {}

    # --- prompts --------------------------------------------------------------------------
    def tokenize(self, pipe: Any, prompts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Token ids ``(N, L_k)`` per tokenizer attribute of ``pipe`` (``"tokenizer"``, ``"tokenizer_2"``, …)."""
        raise NotImplementedError

    def content_rows(self, pipe: Any, prompts: Sequence[str]) -> torch.Tensor:
        """Which rows of each prompt's token set are content and which padding, ``(N, L)`` bool.

        Per block (:meth:`blocks`), the attention mask of the block's first tokenizer, padded and
        truncated as :meth:`tokenize` does: content is BOS, the words and EOS (CLIP), or the words
        and EOS (T5); the rest is padding. A block without its tokenizer (SD3 without T5, whose
        rows are zeros) is all padding.
        """
        prompts = check_prompts(prompts)
        masks = []
        for rows, names in self.blocks(pipe).values():
            tokenizer = getattr(pipe, names[0], None)
            length = rows.stop - rows.start
            if tokenizer is None:
                masks.append(torch.zeros((len(prompts), length), dtype=torch.bool))
                continue
            mask = tokenizer(prompts, padding="max_length", max_length=length, truncation=True,
                             return_tensors="pt").attention_mask
            masks.append(mask.bool())
        return torch.cat(masks, dim=1)

    def encode_ids(self, pipe: Any, ids: dict[str, torch.Tensor]) -> Conditioning:
        """The conditioning of token ids as :meth:`tokenize` gives them, on the pipeline's device."""
        raise NotImplementedError

    def blocks(self, pipe: Any) -> dict[str, tuple[slice, tuple[str, ...]]]:
        """Rows of the token set per block, and the tokenizers whose ids make the block.

        Returns
        -------
        dict
            ``{block name: (row slice, tokenizer attribute names)}``, in row order.
        """
        raise NotImplementedError

    @torch.inference_mode()
    def encode(self, pipe: Any, prompts: Sequence[str], *, batch_size: int = 64) -> Conditioning:
        """The conditioning of ``prompts``, as the pipeline's own ``encode_prompt`` computes it.

        Parameters
        ----------
        pipe : diffusers pipeline of this family
        prompts : sequence of str
            Over-long prompts are truncated with a warning naming them; empty ones are allowed.
        batch_size : int
            Prompts per text-encoder call.

        Returns
        -------
        Conditioning
            ``tokens (N, L, D)`` and ``pooled (N, P)`` or None, on the pipeline's device.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        ids = self.tokenize(pipe, prompts)
        n = next(iter(ids.values())).shape[0]
        parts = [self.encode_ids(pipe, {k: v[s : s + batch_size] for k, v in ids.items()}) for s in range(0, n, batch_size)]
        pooled = None if parts[0].pooled is None else torch.cat([p.pooled for p in parts])
        return Conditioning(torch.cat([p.tokens for p in parts]), pooled)

    def unconditional(self, pipe: Any) -> Conditioning | None:
        """The fixed unconditional input of classifier-free guidance (batch 1), or None without guidance.

        Default: the conditioning of the empty prompt (what the pipeline uses for an empty negative prompt).
        """
        return self.encode(pipe, [""])

    # --- rendering ------------------------------------------------------------------------
    def denoiser(self, pipe: Any) -> torch.nn.Module:
        """The UNet or transformer."""
        return pipe.transformer if hasattr(pipe, "transformer") else pipe.unet

    def token_width(self, pipe: Any) -> int:
        """``D``, the width of the token rows the denoiser accepts."""
        raise NotImplementedError

    def initial_latent(self, pipe: Any, seed: int, height: int, width: int) -> torch.Tensor:
        """The initial latent (batch 1) as the pipeline's ``latents`` argument takes it, float32 on the CPU.

        Drawn from a CPU ``torch.Generator`` seeded with ``seed``, so it is the same on every device.
        """
        factor = self.size_multiple(pipe)
        for name, size in (("height", height), ("width", width)):
            if size < factor or size % factor:
                raise ValueError(f"{name} must be a positive multiple of {factor} for {self.title}, got {size}")
        shape = (1, self.latent_channels(pipe), height // pipe.vae_scale_factor, width // pipe.vae_scale_factor)
        return torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed), dtype=torch.float32)

    def size_multiple(self, pipe: Any) -> int:
        """Image sizes must be multiples of this (the VAE's scale factor, times the patch size of a transformer)."""
        return pipe.vae_scale_factor

    def latent_channels(self, pipe: Any) -> int:
        return self.denoiser(pipe).config.in_channels

    def call_kwargs(self, pipe: Any, cond: Conditioning, uncond: Conditioning | None, guidance: float) -> dict[str, Any]:
        """The conditioning keywords of the pipeline's call for a batch (``uncond`` already expanded)."""
        raise NotImplementedError

    def predict(self, pipe: Any, latent: torch.Tensor, timestep: float, cond: Conditioning,
                height: int, width: int, guidance: float) -> torch.Tensor:
        """One denoiser evaluation (no guidance mixing) for a batch, float32: the invariance checks' probe.

        Parameters
        ----------
        latent : tensor
            :meth:`initial_latent`'s output (batch 1), shared by the batch.
        timestep : float
            In ``[0, num_train_timesteps)``, the scheduler's scale.
        """
        raise NotImplementedError


class PooledGuidedFamily(Family):
    """A family with a global vector and an unconditional input for guidance (SDXL, SD3).

    Its pipeline takes both as ``prompt_embeds`` / ``pooled_prompt_embeds`` and their ``negative_``
    counterparts.
    """

    def call_kwargs(self, pipe: Any, cond: Conditioning, uncond: Conditioning | None, guidance: float) -> dict[str, Any]:
        kwargs = {"prompt_embeds": cond.tokens, "pooled_prompt_embeds": cond.pooled}
        if uncond is not None:
            kwargs |= {"negative_prompt_embeds": uncond.tokens, "negative_pooled_prompt_embeds": uncond.pooled}
        return kwargs


def tokenize_with(tokenizer: Any, prompts: Sequence[str], max_length: int) -> torch.Tensor:
    """Ids ``(N, max_length)`` padded and truncated as the pipelines do, warning about truncated prompts.

    Parameters
    ----------
    tokenizer : transformers tokenizer
    prompts : sequence of str
        Empty strings are allowed.
    max_length : int
        Padded / truncated length (77 for CLIP, the T5 length of the family).

    Warns
    -----
    UserWarning
        Naming every prompt longer than ``max_length`` tokens (it is truncated, as the pipelines do).
    """
    prompts = check_prompts(prompts)
    lengths = [len(ids) for ids in tokenizer(prompts, verbose=False).input_ids]
    truncated = [p for p, n in zip(prompts, lengths) if n > max_length]
    if truncated:
        warnings.warn(
            f"{len(truncated)} prompt(s) longer than {max_length} tokens truncated, as the pipeline does: "
            + ", ".join(map(repr, truncated)),
            stacklevel=3,
        )
    return tokenizer(
        prompts, padding="max_length", max_length=max_length, truncation=True, return_tensors="pt"
    ).input_ids


def check_prompts(prompts: Sequence[str]) -> list[str]:
    """``prompts`` as a list, or a clear error for one string, no prompts or a non-string."""
    if isinstance(prompts, str):
        raise TypeError(f"prompts must be a sequence of strings, not one string: {prompts!r}; wrap it in a list")
    prompts = list(prompts)
    if not prompts:
        raise ValueError("no prompts given")
    bad = [p for p in prompts if not isinstance(p, str)]
    if bad:
        raise TypeError(f"prompts must be strings, got {bad[0]!r} ({type(bad[0]).__name__})")
    return prompts


def word_positions(tokenizer: Any, ids: torch.Tensor) -> torch.Tensor:
    """Positions of the word tokens in one id sequence ``(L,)``: before the first EOS, not special."""
    eos = (ids == tokenizer.eos_token_id).nonzero()
    end = int(eos[0]) if len(eos) else len(ids)
    special = torch.tensor(sorted(set(tokenizer.all_special_ids) - {tokenizer.unk_token_id}))
    keep = ~torch.isin(ids[:end], special)
    return keep.nonzero().flatten()
