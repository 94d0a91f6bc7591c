"""Offline building blocks of the random-weight model specs: configurations, seeded weights, tokenizers.

Everything here works without network access and without model weights:

- :data:`SD15_CONFIGS` (SD 1.5's exact component configurations), :data:`TINY_CONFIGS` (the same
  data flow at tiny sizes) and :data:`SD21_SCHEDULER`;
- :func:`build_pipeline`: a ``StableDiffusionPipeline`` with weights drawn from :data:`WEIGHT_SEED`;
- :func:`clip_tokenizer`: the real CLIP BPE tokenizer, built from the vocabulary file that
  ``open-clip-torch`` ships;
- :func:`t5_standin_tokenizer`: a small stand-in for T5's SentencePiece tokenizer, trained on the fly.

The families (:mod:`otinterp.families`) build their tiny pipelines from these, and
:mod:`otinterp.models` names them as model specs. Images from random weights mean nothing.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import shutil
import tempfile
from importlib.resources import files
from pathlib import Path
from typing import Any

import diffusers
import torch
from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer, T5Tokenizer

__all__ = [
    "build_pipeline", "clip_tokenizer", "t5_standin_tokenizer", "SD15_CONFIGS", "SD21_SCHEDULER", "TINY_CONFIGS",
    "T5_STANDIN_VOCAB", "WEIGHT_SEED",
]

#: Seed of the random weights of the offline specs: same spec, same weights.
WEIGHT_SEED = 0

#: CLIP's context length.
MAX_LENGTH = 77

_SD15_SCHEDULER = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
}

#: SD 2.1's scheduler (``stabilityai/stable-diffusion-2-1``): DDIM, v-prediction.
SD21_SCHEDULER = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "clip_sample": False,
    "prediction_type": "v_prediction",
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "trained_betas": None,
}

#: SD 1.5's component configurations (``stable-diffusion-v1-5/stable-diffusion-v1-5``).
SD15_CONFIGS: dict[str, dict[str, Any]] = {
    "text_encoder": {
        "vocab_size": 49408,
        "hidden_size": 768,
        "intermediate_size": 3072,
        "projection_dim": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "max_position_embeddings": MAX_LENGTH,
        "hidden_act": "quick_gelu",
        "layer_norm_eps": 1e-5,
        "attention_dropout": 0.0,
        "dropout": 0.0,
        "initializer_range": 0.02,
        "initializer_factor": 1.0,
        "pad_token_id": 1,
        "bos_token_id": 0,
        "eos_token_id": 2,
    },
    "unet": {
        "sample_size": 64,
        "in_channels": 4,
        "out_channels": 4,
        "center_input_sample": False,
        "flip_sin_to_cos": True,
        "freq_shift": 0,
        "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
        "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
        "block_out_channels": [320, 640, 1280, 1280],
        "layers_per_block": 2,
        "downsample_padding": 1,
        "mid_block_scale_factor": 1,
        "act_fn": "silu",
        "norm_num_groups": 32,
        "norm_eps": 1e-5,
        "cross_attention_dim": 768,
        "attention_head_dim": 8,
    },
    "vae": {
        "sample_size": 512,
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ["DownEncoderBlock2D"] * 4,
        "up_block_types": ["UpDecoderBlock2D"] * 4,
        "block_out_channels": [128, 256, 512, 512],
        "layers_per_block": 2,
        "act_fn": "silu",
        "latent_channels": 4,
        "norm_num_groups": 32,
    },
    "scheduler": _SD15_SCHEDULER,
}

#: Small configurations with SD 1.5's data flow: 77 positions, the 49,408-token vocabulary, a UNet
#: with cross-attention, a VAE with four levels (``vae_scale_factor`` 8: 64 px -> 8 x 8 latent).
TINY_CONFIGS: dict[str, dict[str, Any]] = {
    "text_encoder": {
        **SD15_CONFIGS["text_encoder"],
        "hidden_size": 32,
        "intermediate_size": 64,
        "projection_dim": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
    },
    "unet": {
        **SD15_CONFIGS["unet"],
        "sample_size": 8,
        "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
        "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"],
        "block_out_channels": [32, 64],
        "layers_per_block": 1,
        "norm_num_groups": 8,
        "cross_attention_dim": 32,
        "attention_head_dim": 8,
    },
    "vae": {
        **SD15_CONFIGS["vae"],
        "sample_size": 64,
        "block_out_channels": [8, 8, 8, 8],
        "layers_per_block": 1,
        "norm_num_groups": 4,
    },
    "scheduler": _SD15_SCHEDULER,
}


def build_pipeline(configs: dict[str, dict[str, Any]], *, seed: int = WEIGHT_SEED) -> StableDiffusionPipeline:
    """A float32 CPU pipeline with seeded random weights from component configurations.

    The global random state is left untouched (the weights are drawn inside
    ``torch.random.fork_rng``), so two calls with the same ``seed`` give identical models.

    Parameters
    ----------
    configs : dict
        ``text_encoder`` (a :class:`~transformers.CLIPTextConfig`'s keywords), ``unet``, ``vae``
        and ``scheduler`` (keywords of the diffusers classes), as in :data:`SD15_CONFIGS`. Optional:
        ``scheduler_class`` (a diffusers scheduler's name, default ``"PNDMScheduler"``) and
        ``pad_token`` (the tokenizer's padding token, default ``"<|endoftext|>"``; SD 2.x pads with ``"!"``).
    seed : int
        Seed of the random weights.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        text_encoder = CLIPTextModel(CLIPTextConfig(**configs["text_encoder"]))
        unet = UNet2DConditionModel(**configs["unet"])
        vae = AutoencoderKL(**configs["vae"])
    return StableDiffusionPipeline(
        vae=vae.eval(),
        text_encoder=text_encoder.eval(),
        tokenizer=clip_tokenizer(pad_token=configs.get("pad_token", "<|endoftext|>")),
        unet=unet.eval(),
        scheduler=getattr(diffusers, configs.get("scheduler_class", "PNDMScheduler"))(**configs["scheduler"]),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def clip_tokenizer(cache_dir: str | Path | None = None, *, pad_token: str = "<|endoftext|>") -> CLIPTokenizer:
    """The CLIP BPE tokenizer as SD 1.5 uses it, built offline from ``open-clip-torch``'s vocabulary.

    On first use, ``vocab.json`` and ``merges.txt`` are derived from open_clip's
    ``bpe_simple_vocab_16e6.txt.gz`` exactly as CLIP does (256 byte tokens, their 256 ``</w>``
    forms, the first 48,894 merges, then ``<|startoftext|>`` and ``<|endoftext|>``: 49,408 tokens)
    and cached. Context length 77, padding with ``<|endoftext|>``.

    Parameters
    ----------
    cache_dir : str or Path, optional
        Folder of the cached files; default ``$XDG_CACHE_HOME/otinterp/clip-tokenizer``
        (``~/.cache/otinterp/clip-tokenizer``).
    pad_token : str
        ``"<|endoftext|>"`` (SD 1.x, CLIP-L everywhere) or ``"!"`` (the OpenCLIP encoders of SD 2.x,
        SDXL's and SD3's second tokenizer).
    """
    folder = Path(cache_dir) if cache_dir is not None else _default_cache_dir()
    if not (folder / "vocab.json").is_file():
        _write_vocab_files(folder)
    return CLIPTokenizer.from_pretrained(folder, model_max_length=MAX_LENGTH, pad_token=pad_token)


#: Vocabulary size of :func:`t5_standin_tokenizer` (fewer pieces if the bundled text has fewer).
T5_STANDIN_VOCAB = 400


def t5_standin_tokenizer(cache_dir: str | Path | None = None) -> T5Tokenizer:
    """A STAND-IN for T5's SentencePiece tokenizer, which cannot be downloaded here: a small unigram
    model trained on the fly (``tokenizers``) from the captions bundled with otinterp.

    Same special tokens and ids as T5 (``<pad>`` 0, ``</s>`` 1, ``<unk>`` 2; EOS appended, padding
    with ``<pad>``), a vocabulary of at most :data:`T5_STANDIN_VOCAB` pieces instead of 32,100.
    Deterministic; cached like :func:`clip_tokenizer`. Only for the offline random-weight specs.

    Parameters
    ----------
    cache_dir : str or Path, optional
        Folder of the cached tokenizer; default ``$XDG_CACHE_HOME/otinterp/t5-standin-tokenizer``.
    """
    folder = Path(cache_dir) if cache_dir is not None else _default_cache_dir().with_name("t5-standin-tokenizer")
    if not (folder / "tokenizer_config.json").is_file():
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=_parent(folder)))
        try:
            T5Tokenizer(vocab=_train_t5_standin_vocab(), extra_ids=0).save_pretrained(tmp)
            os.replace(tmp, folder)
        except OSError:
            if not (folder / "tokenizer_config.json").is_file():
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return T5Tokenizer.from_pretrained(folder)


def _parent(folder: Path) -> Path:
    folder.parent.mkdir(parents=True, exist_ok=True)
    return folder.parent


def _train_t5_standin_vocab() -> list[tuple[str, float]]:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    with files("otinterp.resources").joinpath("bundled_pairs.csv").open(encoding="utf-8") as f:
        text = [p for row in csv.DictReader(f) for p in (row["prompt_a"], row["prompt_b"])]
    tokenizer = Tokenizer(models.Unigram())
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=T5_STANDIN_VOCAB, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>", show_progress=False
    )
    tokenizer.train_from_iterator(text, trainer)
    return [(piece, score) for piece, score in json.loads(tokenizer.to_str())["model"]["vocab"]]


def _default_cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "otinterp" / "clip-tokenizer"


def _write_vocab_files(folder: Path) -> None:
    # Same construction as CLIP's SimpleTokenizer (open_clip/tokenizer.py); imported here because
    # importing open_clip is slow and the vocabulary is built once.
    from open_clip.tokenizer import bytes_to_unicode, default_bpe

    lines = gzip.open(default_bpe()).read().decode("utf-8").split("\n")
    merges = lines[1 : 49152 - 256 - 2 + 1]
    byte_tokens = list(bytes_to_unicode().values())
    tokens = byte_tokens + [t + "</w>" for t in byte_tokens] + ["".join(m.split()) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        (tmp / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}, ensure_ascii=False))
        (tmp / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
        os.replace(tmp, folder)
    except OSError:
        if not (folder / "vocab.json").is_file():  # not a concurrent writer that got there first
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
