"""SD3 / SD3.5 (``StableDiffusion3Pipeline``): CLIP-L, CLIP-G and T5-XXL, an MMDiT transformer.

Token set, as ``encode_prompt`` builds it: the CLIP-L and CLIP-G penultimate hidden states
concatenated (``77 x 2048``), zero-padded to T5's width (4096), followed by the T5 tokens
(``256 x 4096``): 333 points. Global vector: CLIP-L's and CLIP-G's pooled embeddings concatenated
(2048). Guidance: the conditioning of the empty prompt. The joint attention adds no position
embedding to text tokens, so the image is invariant to any order of the whole set: within the
CLIP block, within the T5 block and across them. Scheduler: flow matching (Euler), as shipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from diffusers import StableDiffusion3Pipeline

from otinterp.families.base import Conditioning, PooledGuidedFamily, tokenize_with
from otinterp.offline import TINY_CONFIGS, WEIGHT_SEED, clip_tokenizer, t5_standin_tokenizer

__all__ = ["SD3Family", "T5_LENGTH"]

#: T5 tokens in the token set (the pipeline's default ``max_sequence_length``).
T5_LENGTH = 256

_CLIP = ("tokenizer", "tokenizer_2")


class SD3Family(PooledGuidedFamily):
    """SD3: token set ``(N, 77 + 256, 4096)``, pooled ``(N, 2048)``, unconditional ``E("")``."""

    name = "sd3"
    title = "Stable Diffusion 3"
    pipeline_class = StableDiffusion3Pipeline
    flow_matching = True
    fixed_rows = 1  # row 0 is the CLIP block's BOS

    def tokenize(self, pipe: Any, prompts: Sequence[str]) -> dict[str, torch.Tensor]:
        ids = {k: tokenize_with(getattr(pipe, k), prompts, pipe.tokenizer_max_length) for k in _CLIP}
        if pipe.tokenizer_3 is not None:
            ids["tokenizer_3"] = tokenize_with(pipe.tokenizer_3, prompts, T5_LENGTH)
        return ids

    @torch.inference_mode()
    def encode_ids(self, pipe: Any, ids: dict[str, torch.Tensor]) -> Conditioning:
        outputs = [
            encoder(ids[k].to(pipe.device), output_hidden_states=True)
            for encoder, k in ((pipe.text_encoder, "tokenizer"), (pipe.text_encoder_2, "tokenizer_2"))
        ]
        clip = torch.cat([out.hidden_states[-2] for out in outputs], dim=-1)
        width = self.token_width(pipe)
        clip = torch.nn.functional.pad(clip, (0, width - clip.shape[-1]))
        if pipe.text_encoder_3 is None:  # the pipeline's own choice without T5: zeros
            t5 = clip.new_zeros((clip.shape[0], T5_LENGTH, width))
        else:
            t5 = pipe.text_encoder_3(ids["tokenizer_3"].to(pipe.device))[0].to(clip.dtype)
        pooled = torch.cat([out[0] for out in outputs], dim=-1)
        return Conditioning(torch.cat([clip, t5], dim=1), pooled)

    def blocks(self, pipe: Any) -> dict[str, tuple[slice, tuple[str, ...]]]:
        n_clip = pipe.tokenizer_max_length
        return {"CLIP": (slice(0, n_clip), _CLIP), "T5": (slice(n_clip, n_clip + T5_LENGTH), ("tokenizer_3",))}

    def token_width(self, pipe: Any) -> int:
        return pipe.transformer.config.joint_attention_dim

    def size_multiple(self, pipe: Any) -> int:
        return pipe.vae_scale_factor * pipe.transformer.config.patch_size

    def predict(self, pipe: Any, latent: torch.Tensor, timestep: float, cond: Conditioning,
                height: int, width: int, guidance: float) -> torch.Tensor:
        n = len(cond)
        out = pipe.transformer(
            hidden_states=latent.expand(n, -1, -1, -1),
            timestep=torch.full((n,), float(timestep), device=pipe.device),
            encoder_hidden_states=cond.tokens,
            pooled_projections=cond.pooled,
            return_dict=False,
        )[0]
        return out.float()


def build_tiny() -> StableDiffusion3Pipeline:
    """``sd3-tiny``: SD3's classes and data flow (CLIP-L, CLIP-G, T5 with the stand-in tokenizer, an
    MMDiT, flow-matching Euler) at tiny sizes, seeded random weights."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection, T5Config, T5EncoderModel

    text = TINY_CONFIGS["text_encoder"]
    t5_tokenizer = t5_standin_tokenizer()
    width = 4 * text["hidden_size"]  # T5's width: room for the two CLIP widths, as 4096 >= 768 + 1280
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(WEIGHT_SEED)
        text_encoder = CLIPTextModelWithProjection(CLIPTextConfig(**text))
        text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(**{**text, "hidden_act": "gelu"}))
        text_encoder_3 = T5EncoderModel(T5Config(
            vocab_size=len(t5_tokenizer), d_model=width, d_kv=16, d_ff=2 * width, num_layers=2, num_heads=4,
            relative_attention_num_buckets=8, dropout_rate=0.0, feed_forward_proj="gated-gelu",
            pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
        ))
        transformer = SD3Transformer2DModel(
            sample_size=8, patch_size=2, in_channels=4, out_channels=4, num_layers=2, attention_head_dim=8,
            num_attention_heads=4, joint_attention_dim=width, caption_projection_dim=32,
            pooled_projection_dim=2 * text["projection_dim"], pos_embed_max_size=16,
        )
        vae = AutoencoderKL(**{**TINY_CONFIGS["vae"], "use_quant_conv": False, "use_post_quant_conv": False,
                               "shift_factor": 0.0609, "scaling_factor": 1.5035})
    return StableDiffusion3Pipeline(
        transformer=transformer.eval(), scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0),
        vae=vae.eval(), text_encoder=text_encoder.eval(), tokenizer=clip_tokenizer(),
        text_encoder_2=text_encoder_2.eval(), tokenizer_2=clip_tokenizer(pad_token="!"),
        text_encoder_3=text_encoder_3.eval(), tokenizer_3=t5_tokenizer,
    )
