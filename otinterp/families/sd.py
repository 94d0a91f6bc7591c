"""Stable Diffusion 1.x and 2.x (``StableDiffusionPipeline``): one CLIP text encoder, a UNet.

Token set: the text encoder's last hidden state, ``77 x 768`` (SD 1.x, CLIP ViT-L/14) or
``77 x 1024`` (SD 2.x, OpenCLIP ViT-H/14), exactly what ``encode_prompt`` gives (no clip-skip).
No global vector. Guidance: the conditioning of the empty prompt, held fixed. The UNet sees the
tokens only through cross-attention, so it is invariant to their order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from diffusers import StableDiffusionPipeline

from otinterp.families.base import Conditioning, Family, tokenize_with
from otinterp.offline import SD21_SCHEDULER, TINY_CONFIGS, build_pipeline

__all__ = ["SDFamily"]


class SDFamily(Family):
    """SD 1.x / 2.x: token set ``(N, 77, D)``, no global vector, unconditional ``E("")``."""

    name = "sd"
    title = "Stable Diffusion 1.x/2.x"
    pipeline_class = StableDiffusionPipeline
    fixed_rows = 1  # row 0 is CLIP's BOS

    def load_options(self) -> dict[str, Any]:
        return {"safety_checker": None, "requires_safety_checker": False}

    def tokenize(self, pipe: Any, prompts: Sequence[str]) -> dict[str, torch.Tensor]:
        return {"tokenizer": tokenize_with(pipe.tokenizer, prompts, pipe.tokenizer.model_max_length)}

    @torch.inference_mode()
    def encode_ids(self, pipe: Any, ids: dict[str, torch.Tensor]) -> Conditioning:
        tokens = ids["tokenizer"]
        if tokens.ndim != 2:
            raise ValueError(f"token ids must be a 2-D (prompts, positions) tensor, got shape {tuple(tokens.shape)}")
        return Conditioning(pipe.text_encoder(tokens.to(pipe.device))[0])

    def blocks(self, pipe: Any) -> dict[str, tuple[slice, tuple[str, ...]]]:
        return {"CLIP": (slice(0, pipe.tokenizer.model_max_length), ("tokenizer",))}

    def token_width(self, pipe: Any) -> int:
        return pipe.unet.config.cross_attention_dim

    def call_kwargs(self, pipe: Any, cond: Conditioning, uncond: Conditioning | None, guidance: float) -> dict[str, Any]:
        kwargs = {"prompt_embeds": cond.tokens}
        if uncond is not None:
            kwargs["negative_prompt_embeds"] = uncond.tokens
        return kwargs

    def predict(self, pipe: Any, latent: torch.Tensor, timestep: float, cond: Conditioning,
                height: int, width: int, guidance: float) -> torch.Tensor:
        t = torch.tensor(timestep, device=pipe.device)
        out = pipe.unet(latent.expand(len(cond), -1, -1, -1), t, encoder_hidden_states=cond.tokens).sample
        return out.float()


def build_tiny_sd21() -> StableDiffusionPipeline:
    """``sd21-tiny``: SD 2.x's data flow (OpenCLIP-style GELU encoder, linear-projection attention,
    v-prediction DDIM, ``!`` padding) at tiny sizes with seeded random weights."""
    return build_pipeline({
        "text_encoder": {**TINY_CONFIGS["text_encoder"], "hidden_size": 48, "projection_dim": 48,
                         "num_attention_heads": 4, "hidden_act": "gelu"},
        "unet": {**TINY_CONFIGS["unet"], "cross_attention_dim": 48, "attention_head_dim": [2, 4],
                 "use_linear_projection": True},
        "vae": TINY_CONFIGS["vae"],
        "scheduler": SD21_SCHEDULER,
        "scheduler_class": "DDIMScheduler",
        "pad_token": "!",
    })
