"""SDXL (``StableDiffusionXLPipeline``): CLIP ViT-L and OpenCLIP ViT-bigG, a UNet with added conditions.

Token set: the two encoders' penultimate hidden states concatenated, ``77 x (768 + 1280 = 2048)``.
Global vector: bigG's pooled, projected embedding (1280), with ``add_time_ids`` fixed from the image
size (original size = target size = the rendered size, no crop), as the pipeline computes them.
Guidance: zeros for both (``force_zeros_for_empty_prompt``, the pipeline's default for an empty
negative prompt). The UNet sees the tokens only through cross-attention.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from diffusers import StableDiffusionXLPipeline

from otinterp.families.base import Conditioning, PooledGuidedFamily, tokenize_with
from otinterp.offline import TINY_CONFIGS, WEIGHT_SEED, clip_tokenizer

__all__ = ["SDXLFamily"]

_TOKENIZERS = ("tokenizer", "tokenizer_2")


class SDXLFamily(PooledGuidedFamily):
    """SDXL: token set ``(N, 77, 2048)``, pooled ``(N, 1280)``, zero unconditional input."""

    name = "sdxl"
    title = "SDXL"
    pipeline_class = StableDiffusionXLPipeline
    fixed_rows = 1  # row 0 is CLIP's BOS (both encoders')

    def tokenize(self, pipe: Any, prompts: Sequence[str]) -> dict[str, torch.Tensor]:
        return {k: tokenize_with(getattr(pipe, k), prompts, getattr(pipe, k).model_max_length) for k in _TOKENIZERS}

    @torch.inference_mode()
    def encode_ids(self, pipe: Any, ids: dict[str, torch.Tensor]) -> Conditioning:
        first = pipe.text_encoder(ids["tokenizer"].to(pipe.device), output_hidden_states=True)
        second = pipe.text_encoder_2(ids["tokenizer_2"].to(pipe.device), output_hidden_states=True)
        tokens = torch.cat([first.hidden_states[-2], second.hidden_states[-2]], dim=-1)
        return Conditioning(tokens, second[0])

    def blocks(self, pipe: Any) -> dict[str, tuple[slice, tuple[str, ...]]]:
        return {"CLIP-L+bigG": (slice(0, pipe.tokenizer.model_max_length), _TOKENIZERS)}

    def unconditional(self, pipe: Any) -> Conditioning | None:
        empty = self.encode(pipe, [""])
        if not pipe.config.force_zeros_for_empty_prompt:
            return empty
        return Conditioning(torch.zeros_like(empty.tokens), torch.zeros_like(empty.pooled))

    def token_width(self, pipe: Any) -> int:
        return pipe.unet.config.cross_attention_dim

    def predict(self, pipe: Any, latent: torch.Tensor, timestep: float, cond: Conditioning,
                height: int, width: int, guidance: float) -> torch.Tensor:
        n = len(cond)
        time_ids = torch.tensor([[height, width, 0, 0, height, width]], device=pipe.device, dtype=cond.tokens.dtype)
        out = pipe.unet(
            latent.expand(n, -1, -1, -1), torch.tensor(timestep, device=pipe.device),
            encoder_hidden_states=cond.tokens,
            added_cond_kwargs={"text_embeds": cond.pooled, "time_ids": time_ids.expand(n, -1)},
        ).sample
        return out.float()


def build_tiny() -> StableDiffusionXLPipeline:
    """``sdxl-tiny``: SDXL's classes and data flow (two CLIP encoders, ``text_time`` added
    conditions, Euler scheduler, zero unconditional input) at tiny sizes, seeded random weights."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    text = TINY_CONFIGS["text_encoder"]  # hidden 32, the CLIP vocabulary
    time_dim = 8
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(WEIGHT_SEED)
        text_encoder = CLIPTextModel(CLIPTextConfig(**text))
        text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(**{**text, "hidden_act": "gelu"}))
        unet = UNet2DConditionModel(**{
            **TINY_CONFIGS["unet"],
            "cross_attention_dim": 2 * text["hidden_size"],
            "attention_head_dim": [2, 4],
            "use_linear_projection": True,
            "addition_embed_type": "text_time",
            "addition_time_embed_dim": time_dim,
            "projection_class_embeddings_input_dim": text["projection_dim"] + 6 * time_dim,
        })
        vae = AutoencoderKL(**TINY_CONFIGS["vae"])
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
        steps_offset=1, timestep_spacing="leading", prediction_type="epsilon",
    )
    return StableDiffusionXLPipeline(
        vae=vae.eval(), text_encoder=text_encoder.eval(), text_encoder_2=text_encoder_2.eval(),
        tokenizer=clip_tokenizer(), tokenizer_2=clip_tokenizer(pad_token="!"), unet=unet.eval(),
        scheduler=scheduler, force_zeros_for_empty_prompt=True,
    )
