"""Stable Diffusion pipelines: pretrained weights, or offline random-weight stand-ins (SPEC 6).

:func:`load_pipeline` turns a model spec into a diffusers :class:`StableDiffusionPipeline`:

``"tiny"``
    Real diffusers / transformers classes with small sizes and seeded random weights; a 64 px
    image at 10 steps takes a fraction of a second on one CPU core. For tests and the smoke profile.
``"sd15-random"``
    SD 1.5's exact configurations (CLIP ViT-L/14 text encoder, 859.5 M-parameter UNet, VAE,
    PNDM scheduler) with seeded random weights: invariance checks at full size, GPU timings.
a Hugging Face model id or a local folder in diffusers layout
    Loaded with ``StableDiffusionPipeline.from_pretrained``.
a ``.safetensors`` / ``.ckpt`` file
    Loaded with ``StableDiffusionPipeline.from_single_file``.

Both offline specs use the real CLIP BPE tokenizer (:func:`clip_tokenizer`), built from the
vocabulary file that ``open-clip-torch`` ships. Images from random weights mean nothing.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from otinterp.params import RANDOM_WEIGHT_MODELS, RANDOM_WEIGHTS_NOTE

__all__ = [
    "load_pipeline", "build_pipeline", "clip_tokenizer", "prepare_for_speed", "weights_note",
    "OFFLINE_SPECS", "SD15_CONFIGS", "TINY_CONFIGS",
]

#: The hub id of SD 1.5 (the paper profile's model), used in error messages.
SD15_HUB_ID = "stable-diffusion-v1-5/stable-diffusion-v1-5"

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

#: The specs built offline with random weights, and their configurations.
OFFLINE_SPECS: dict[str, dict[str, dict[str, Any]]] = dict(zip(RANDOM_WEIGHT_MODELS, (TINY_CONFIGS, SD15_CONFIGS)))

_CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt")

def load_pipeline(
    spec: str, *, device: str | torch.device = "cpu", dtype: torch.dtype | str = torch.float32
) -> StableDiffusionPipeline:
    """A Stable Diffusion pipeline for ``spec``, with the safety checker off.

    Parameters
    ----------
    spec : str
        ``"tiny"`` or ``"sd15-random"`` (offline, random weights: :data:`OFFLINE_SPECS`), a local
        folder in diffusers layout, a ``.safetensors`` / ``.ckpt`` checkpoint file, or a Hugging
        Face model id such as ``"stable-diffusion-v1-5/stable-diffusion-v1-5"``.
    device : str or torch.device
        Where the pipeline's modules live.
    dtype : torch.dtype or str
        Their floating-point type, or its name (``"float32"``, ``"float16"``, ``"bfloat16"``).

    Returns
    -------
    StableDiffusionPipeline
        With ``safety_checker=None`` and diffusers' progress bar disabled.

    Raises
    ------
    FileNotFoundError
        For a checkpoint file or a path-like spec (absolute, ``./``, ``~``) that does not exist.
    OSError
        When the weights cannot be had (hub unreachable or unknown id, unreadable folder or
        file); the message says what was tried and how to get the weights.
    """
    dtype = _as_dtype(dtype)
    if spec in OFFLINE_SPECS:
        pipe = build_pipeline(OFFLINE_SPECS[spec])
        if dtype != torch.float32:  # the random weights are drawn in float32 whatever the dtype
            pipe = pipe.to(dtype=dtype)
    else:
        pipe = _load_weights(spec, dtype)
    pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def prepare_for_speed(
    pipe: StableDiffusionPipeline, *, channels_last: bool = False, compile_unet: bool = False
) -> StableDiffusionPipeline:
    """Speed options (the ``channels_last`` and ``compile_unet`` parameters), applied in place.

    Neither changes what is computed, only how: images agree with the plain pipeline's up to float
    rounding.

    Parameters
    ----------
    pipe : StableDiffusionPipeline
    channels_last : bool
        Store the UNet's and the VAE's weights in ``torch.channels_last`` memory format (faster
        convolutions with cuDNN on GPUs).
    compile_unet : bool
        Replace the UNet by ``torch.compile(pipe.unet)``; the first calls per input shape compile.

    Returns
    -------
    StableDiffusionPipeline
        ``pipe`` itself.
    """
    if channels_last:
        pipe.unet.to(memory_format=torch.channels_last)
        pipe.vae.to(memory_format=torch.channels_last)
    if compile_unet:
        pipe.unet = torch.compile(pipe.unet)
    return pipe


def weights_note(spec: str) -> str:
    """:data:`~otinterp.params.RANDOM_WEIGHTS_NOTE` for an offline random-weight spec, else ``""``."""
    return RANDOM_WEIGHTS_NOTE if spec in OFFLINE_SPECS else ""


def build_pipeline(configs: dict[str, dict[str, Any]], *, seed: int = WEIGHT_SEED) -> StableDiffusionPipeline:
    """A float32 CPU pipeline with seeded random weights from component configurations.

    The global random state is left untouched (the weights are drawn inside
    ``torch.random.fork_rng``), so two calls with the same ``seed`` give identical models.

    Parameters
    ----------
    configs : dict
        ``text_encoder`` (a :class:`~transformers.CLIPTextConfig`'s keywords), ``unet``, ``vae``
        and ``scheduler`` (keywords of the diffusers classes), as in :data:`SD15_CONFIGS`.
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
        tokenizer=clip_tokenizer(),
        unet=unet.eval(),
        scheduler=PNDMScheduler(**configs["scheduler"]),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def clip_tokenizer(cache_dir: str | Path | None = None) -> CLIPTokenizer:
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
    """
    folder = Path(cache_dir) if cache_dir is not None else _default_cache_dir()
    if not (folder / "vocab.json").is_file():
        _write_vocab_files(folder)
    return CLIPTokenizer.from_pretrained(folder, model_max_length=MAX_LENGTH, pad_token="<|endoftext|>")


def _as_dtype(dtype: torch.dtype | str) -> torch.dtype:
    resolved = getattr(torch, dtype, None) if isinstance(dtype, str) else dtype
    if not (isinstance(resolved, torch.dtype) and resolved.is_floating_point):
        raise ValueError(f"unknown floating-point dtype {dtype!r}; use e.g. 'float32', 'float16' or 'bfloat16'")
    return resolved


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


def _load_weights(spec: str, dtype: torch.dtype) -> StableDiffusionPipeline:
    path = Path(spec).expanduser()
    options = {"torch_dtype": dtype, "safety_checker": None, "requires_safety_checker": False}
    if path.suffix in _CHECKPOINT_SUFFIXES:
        if not path.is_file():
            raise FileNotFoundError(f"model checkpoint {spec} does not exist")
        try:
            return StableDiffusionPipeline.from_single_file(str(path), **options)
        except (OSError, ValueError) as err:
            raise OSError(
                f"could not load the checkpoint file {spec} with StableDiffusionPipeline.from_single_file: {err}. "
                f"Loading a single file also needs the model's diffusers configuration from the Hugging Face Hub; "
                f"offline, download the model in diffusers layout instead ({_how_to_download(SD15_HUB_ID)})"
            ) from err
    if path.is_dir():
        try:
            return StableDiffusionPipeline.from_pretrained(path, **options)
        except (OSError, ValueError) as err:
            raise OSError(f"could not load a diffusers pipeline from the folder {spec}: {err}") from err
    if path.is_absolute() or spec.startswith((".", "~")) or spec.count("/") != 1:
        raise FileNotFoundError(
            f"model folder {spec} does not exist (a model spec is 'tiny', 'sd15-random', an existing folder "
            f"in diffusers layout, a .safetensors/.ckpt file, or a Hugging Face model id 'owner/name')"
        )
    try:
        return StableDiffusionPipeline.from_pretrained(spec, **options)
    except (OSError, ValueError) as err:
        raise OSError(
            f"could not load model {spec!r}: it is not a local folder, and the Hugging Face Hub could not "
            f"provide it ({type(err).__name__}: {err}). {_how_to_download(spec)}"
        ) from err


def _how_to_download(hub_id: str) -> str:
    return (
        f"To get the weights, on a machine with network access run `hf download {hub_id} "
        f"--local-dir models/{hub_id.split('/')[-1]}` (older huggingface_hub: `huggingface-cli download`), "
        f"then set `model: models/{hub_id.split('/')[-1]}` in the profile (params/*.yaml)"
    )
