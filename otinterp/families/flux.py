"""Flux (``FluxPipeline``): CLIP-L and T5-XXL, a rectified-flow transformer.

Token set: the T5 tokens, ``256 x 4096`` (schnell) or ``512 x 4096`` (dev, whose transformer
takes a guidance value). Every text token gets position id zero, so rotary embedding is the
identity on them and joint attention is equivariant in the text tokens: the image is invariant to
their order. Global vector: CLIP-L's pooled output (768). Guidance-distilled: no unconditional
branch (:meth:`FluxFamily.unconditional` is None); the guidance value goes to the transformer where
it takes one (dev) and is ignored otherwise (schnell). Scheduler: flow matching (Euler), as shipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from diffusers import FluxPipeline

from otinterp.families.base import Conditioning, Family, tokenize_with
from otinterp.offline import TINY_CONFIGS, WEIGHT_SEED, clip_tokenizer, t5_standin_tokenizer

__all__ = ["FluxFamily"]


class FluxFamily(Family):
    """Flux: token set ``(N, 256 or 512, 4096)``, pooled ``(N, 768)``, no unconditional input."""

    name = "flux"
    title = "Flux"
    pipeline_class = FluxPipeline
    flow_matching = True
    fixed_rows = 0  # row 0 is the prompt's first T5 token: no BOS

    def t5_length(self, pipe: Any) -> int:
        """256 for schnell (no guidance embedding), 512 for dev: each model card's sequence length."""
        return 512 if pipe.transformer.config.guidance_embeds else 256

    def tokenize(self, pipe: Any, prompts: Sequence[str]) -> dict[str, torch.Tensor]:
        return {
            "tokenizer": tokenize_with(pipe.tokenizer, prompts, pipe.tokenizer_max_length),
            "tokenizer_2": tokenize_with(pipe.tokenizer_2, prompts, self.t5_length(pipe)),
        }

    @torch.inference_mode()
    def encode_ids(self, pipe: Any, ids: dict[str, torch.Tensor]) -> Conditioning:
        pooled = pipe.text_encoder(ids["tokenizer"].to(pipe.device), output_hidden_states=False).pooler_output
        tokens = pipe.text_encoder_2(ids["tokenizer_2"].to(pipe.device), output_hidden_states=False)[0]
        return Conditioning(tokens, pooled.to(tokens.dtype))

    def blocks(self, pipe: Any) -> dict[str, tuple[slice, tuple[str, ...]]]:
        return {"T5": (slice(0, self.t5_length(pipe)), ("tokenizer_2",))}

    def unconditional(self, pipe: Any) -> Conditioning | None:
        return None

    def token_width(self, pipe: Any) -> int:
        return pipe.transformer.config.joint_attention_dim

    def size_multiple(self, pipe: Any) -> int:
        return pipe.vae_scale_factor * 2

    def latent_channels(self, pipe: Any) -> int:
        return pipe.transformer.config.in_channels // 4

    def initial_latent(self, pipe: Any, seed: int, height: int, width: int) -> torch.Tensor:
        """The initial latent, packed as the pipeline's ``latents`` takes it: ``(1, h w / 4, 4 C)``."""
        latent = super().initial_latent(pipe, seed, height, width)
        return FluxPipeline._pack_latents(latent, *latent.shape)

    def call_kwargs(self, pipe: Any, cond: Conditioning, uncond: Conditioning | None, guidance: float) -> dict[str, Any]:
        if uncond is not None:
            raise ValueError("Flux is guidance-distilled: it takes no unconditional input (uncond must be None)")
        return {"prompt_embeds": cond.tokens, "pooled_prompt_embeds": cond.pooled}

    def predict(self, pipe: Any, latent: torch.Tensor, timestep: float, cond: Conditioning,
                height: int, width: int, guidance: float) -> torch.Tensor:
        n, length = len(cond), cond.tokens.shape[1]
        rows, cols = height // pipe.vae_scale_factor // 2, width // pipe.vae_scale_factor // 2
        dtype = cond.tokens.dtype
        image_ids = FluxPipeline._prepare_latent_image_ids(n, rows, cols, pipe.device, dtype)
        guidance_value = (
            torch.full((n,), float(guidance), device=pipe.device) if pipe.transformer.config.guidance_embeds else None
        )
        out = pipe.transformer(
            hidden_states=latent.expand(n, -1, -1),
            timestep=torch.full((n,), float(timestep) / 1000, device=pipe.device, dtype=dtype),
            guidance=guidance_value,
            pooled_projections=cond.pooled,
            encoder_hidden_states=cond.tokens,
            txt_ids=torch.zeros(length, 3, device=pipe.device, dtype=dtype),
            img_ids=image_ids,
            return_dict=False,
        )[0]
        return out.float()


def build_tiny() -> FluxPipeline:
    """``flux-tiny``: FLUX.1-schnell's classes and data flow (CLIP-L pooled, T5 tokens with the stand-in
    tokenizer, no guidance embedding, flow-matching Euler) at tiny sizes, seeded random weights."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    text = TINY_CONFIGS["text_encoder"]
    t5_tokenizer = t5_standin_tokenizer()
    width = 2 * text["hidden_size"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(WEIGHT_SEED)
        text_encoder = CLIPTextModel(CLIPTextConfig(**text))
        text_encoder_2 = T5EncoderModel(T5Config(
            vocab_size=len(t5_tokenizer), d_model=width, d_kv=16, d_ff=2 * width, num_layers=2, num_heads=4,
            relative_attention_num_buckets=8, dropout_rate=0.0, feed_forward_proj="gated-gelu",
            pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
        ))
        transformer = FluxTransformer2DModel(
            patch_size=1, in_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=16,
            num_attention_heads=2, joint_attention_dim=width, pooled_projection_dim=text["hidden_size"],
            guidance_embeds=False, axes_dims_rope=[4, 4, 8],
        )
        vae = AutoencoderKL(**{**TINY_CONFIGS["vae"], "use_quant_conv": False, "use_post_quant_conv": False,
                               "shift_factor": 0.1159, "scaling_factor": 0.3611})
    scheduler = FlowMatchEulerDiscreteScheduler(
        num_train_timesteps=1000, shift=1.0, use_dynamic_shifting=False, base_shift=0.5, max_shift=1.15,
        base_image_seq_len=256, max_image_seq_len=4096,
    )
    return FluxPipeline(
        scheduler=scheduler, vae=vae.eval(), text_encoder=text_encoder.eval(), tokenizer=clip_tokenizer(),
        text_encoder_2=text_encoder_2.eval(), tokenizer_2=t5_tokenizer, transformer=transformer.eval(),
    )
