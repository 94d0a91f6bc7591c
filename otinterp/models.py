"""Diffusion pipelines: pretrained weights, or offline random-weight stand-ins.

:func:`load_pipeline` turns a model spec into a diffusers pipeline of one of the families of
:mod:`otinterp.families` (SD 1.x/2.x, SDXL, SD3, Flux), detected from the pipeline class:

``"tiny"``
    Real diffusers / transformers classes with small sizes and seeded random weights; a 64 px
    image at 10 steps takes a fraction of a second on one CPU core. For tests and the smoke profile.
``"sd15-random"``
    SD 1.5's exact configurations (CLIP ViT-L/14 text encoder, 859.5 M-parameter UNet, VAE,
    PNDM scheduler) with seeded random weights: invariance checks at full size, GPU timings.
``"sd21-tiny"``, ``"sdxl-tiny"``, ``"sd3-tiny"``, ``"flux-tiny"``
    The same for SD 2.x (v-prediction, DDIM), SDXL, SD3 and Flux: each family's real diffusers /
    transformers classes, tiny sizes, seeded random weights (built by the family's module).
a Hugging Face model id or a local folder in diffusers layout
    Loaded with the pipeline class named by its ``model_index.json``.
a ``.safetensors`` / ``.ckpt`` file
    Loaded with the family's ``from_single_file``; ``config`` (a local folder in diffusers layout)
    names the family and supplies the configuration offline.

The offline specs use the real CLIP BPE tokenizer (:func:`clip_tokenizer`), built from the
vocabulary file that ``open-clip-torch`` ships, and for T5 a small stand-in tokenizer trained on
the fly (:func:`t5_standin_tokenizer`). Images from random weights mean nothing.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Any

import diffusers
import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    DiffusionPipeline,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from diffusers.loaders.single_file_utils import SingleFileComponentError
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer, T5Tokenizer

from otinterp.params import RANDOM_WEIGHTS_NOTE

__all__ = [
    "load_pipeline", "build_pipeline", "clip_tokenizer", "t5_standin_tokenizer", "set_scheduler",
    "prepare_for_speed", "weights_note", "OFFLINE_SPECS", "SD15_CONFIGS", "TINY_CONFIGS", "SCHEDULERS",
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

def _offline_builder(module: str, function: str, *args: Any) -> Callable[[], Any]:
    def build() -> Any:
        import importlib

        return getattr(importlib.import_module(f"otinterp.families.{module}"), function)(*args)

    return build


#: The specs built offline with seeded random weights, and how each is built.
OFFLINE_SPECS: dict[str, Callable[[], Any]] = {
    "tiny": lambda: build_pipeline(TINY_CONFIGS),
    "sd15-random": lambda: build_pipeline(SD15_CONFIGS),
    "sd21-tiny": _offline_builder("sd", "build_tiny_sd21"),
    "sdxl-tiny": _offline_builder("sdxl", "build_tiny"),
    "sd3-tiny": _offline_builder("sd3", "build_tiny"),
    "flux-tiny": _offline_builder("flux", "build_tiny"),
}

#: The ``scheduler`` choices other than ``"default"`` (the model's own), for DDPM-family models.
SCHEDULERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "ddim": DDIMScheduler.from_config,
    "dpm-solver++": lambda config: DPMSolverMultistepScheduler.from_config(config, algorithm_type="dpmsolver++"),
    "euler": EulerDiscreteScheduler.from_config,
}

_CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt")

#: The hub ids of the profiles, with the family each one is (for messages before anything is loaded).
KNOWN_HUB_IDS = {
    SD15_HUB_ID: "sd",
    "stabilityai/stable-diffusion-2-1": "sd",
    "stabilityai/stable-diffusion-xl-base-1.0": "sdxl",
    "stabilityai/stable-diffusion-3.5-medium": "sd3",
    "black-forest-labs/FLUX.1-schnell": "flux",
    "black-forest-labs/FLUX.1-dev": "flux",
}


def load_pipeline(
    spec: str,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | str = torch.float32,
    scheduler: str = "default",
    config: str | Path | None = None,
) -> Any:
    """A diffusion pipeline for ``spec``, with the safety checker off.

    Parameters
    ----------
    spec : str
        An offline random-weight spec (:data:`OFFLINE_SPECS`: ``"tiny"``, ``"sd15-random"``,
        ``"sd21-tiny"``, ``"sdxl-tiny"``, ``"sd3-tiny"``, ``"flux-tiny"``), a local folder in
        diffusers layout, a ``.safetensors`` / ``.ckpt`` checkpoint file, or a Hugging Face model
        id such as ``"stable-diffusion-v1-5/stable-diffusion-v1-5"``.
    device : str or torch.device
        Where the pipeline's modules live.
    dtype : torch.dtype or str
        Their floating-point type, or its name (``"float32"``, ``"float16"``, ``"bfloat16"``).
    scheduler : {"default", "ddim", "dpm-solver++", "euler"}
        The model's own scheduler, or one built ``from_config`` of it (:func:`set_scheduler`).
    config : str or Path, optional
        For a checkpoint file only: a local folder in diffusers layout (``model_index.json`` and
        the component configurations) that names the pipeline class and lets the file load offline.

    Returns
    -------
    diffusers pipeline
        Of a class :func:`otinterp.families.family_of` knows, with diffusers' progress bar disabled.

    Raises
    ------
    FileNotFoundError
        For a checkpoint file or a path-like spec (absolute, ``./``, ``~``) that does not exist.
    OSError
        When the weights cannot be had (hub unreachable or unknown id, unreadable folder or
        file); the message names the family and says how to get the weights.
    ValueError
        For an unknown dtype or scheduler, or a scheduler the model's family cannot use.
    """
    from otinterp.families import family_of

    dtype = _as_dtype(dtype)
    if scheduler != "default" and scheduler not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {scheduler!r}; use 'default' or one of {', '.join(SCHEDULERS)}")
    if config is not None and Path(spec).suffix not in _CHECKPOINT_SUFFIXES:
        raise ValueError(f"config is only for a checkpoint file (.safetensors / .ckpt), not for the model spec {spec!r}")
    if spec in OFFLINE_SPECS:
        pipe = OFFLINE_SPECS[spec]()
        if dtype != torch.float32:  # the random weights are drawn in float32 whatever the dtype
            pipe = pipe.to(dtype=dtype)
    else:
        pipe = _load_weights(spec, dtype, config)
    family_of(pipe)  # an unsupported pipeline class is an error here, not at the first render
    set_scheduler(pipe, scheduler)
    pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def set_scheduler(pipe: Any, scheduler: str) -> Any:
    """Replace ``pipe.scheduler`` (in place) by the named one, built ``from_config`` of the model's own.

    Parameters
    ----------
    pipe : diffusers pipeline
    scheduler : {"default", "ddim", "dpm-solver++", "euler"}
        ``"default"`` keeps the model's scheduler (the paper's setting). ``"ddim"``:
        :class:`~diffusers.DDIMScheduler`; ``"dpm-solver++"``: :class:`~diffusers.DPMSolverMultistepScheduler`
        with ``algorithm_type="dpmsolver++"``; ``"euler"``: :class:`~diffusers.EulerDiscreteScheduler`.
        A different scheduler is a different experiment.

    Raises
    ------
    ValueError
        For an unknown name, or any but ``"default"`` on a flow-matching family (SD3, Flux), whose
        own scheduler is already flow-matching Euler.
    """
    from otinterp.families import family_of

    if scheduler == "default":
        return pipe
    if scheduler not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {scheduler!r}; use 'default' or one of {', '.join(SCHEDULERS)}")
    family = family_of(pipe)
    if family.flow_matching:
        raise ValueError(
            f"scheduler {scheduler!r} is a DDPM-family scheduler; {family.title} is a flow-matching model whose own "
            f"scheduler ({type(pipe.scheduler).__name__}, flow-matching Euler) is the only choice: use scheduler: default"
        )
    pipe.scheduler = SCHEDULERS[scheduler](pipe.scheduler.config)
    return pipe


def prepare_for_speed(
    pipe: Any, *, channels_last: bool = False, compile_unet: bool = False
) -> Any:
    """Speed options (the ``channels_last`` and ``compile_unet`` parameters), applied in place.

    Neither changes what is computed, only how: images agree with the plain pipeline's up to float
    rounding.

    Parameters
    ----------
    pipe : diffusers pipeline of a family of :mod:`otinterp.families`
    channels_last : bool
        Store the denoiser's and the VAE's 4-D weights in ``torch.channels_last`` memory format
        (faster convolutions with cuDNN on GPUs; a transformer has few).
    compile_unet : bool
        Replace the denoiser (UNet, or SD3's / Flux's transformer) by its ``torch.compile``; the
        first calls per input shape compile.

    Returns
    -------
    diffusers pipeline
        ``pipe`` itself.
    """
    name = "transformer" if hasattr(pipe, "transformer") else "unet"
    if channels_last:
        getattr(pipe, name).to(memory_format=torch.channels_last)
        pipe.vae.to(memory_format=torch.channels_last)
    if compile_unet:
        setattr(pipe, name, torch.compile(getattr(pipe, name)))
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


def _load_weights(spec: str, dtype: torch.dtype, config: str | Path | None) -> Any:
    from otinterp.families import FAMILIES

    path = Path(spec).expanduser()
    if path.suffix in _CHECKPOINT_SUFFIXES:
        if not path.is_file():
            raise FileNotFoundError(f"model checkpoint {spec} does not exist")
        family = _family_of_folder(Path(config)) if config is not None else FAMILIES["sd"]
        options = {"torch_dtype": dtype, **family.load_options()}
        if config is not None:
            options |= {"config": str(config), "local_files_only": True}
        try:
            return family.pipeline_class.from_single_file(str(path), **options)
        except (OSError, ValueError, SingleFileComponentError) as err:
            hub_id = next(h for h, f in KNOWN_HUB_IDS.items() if f == family.name)
            raise OSError(
                f"could not load the checkpoint file {spec} with {family.pipeline_class.__name__}.from_single_file "
                f"({family.title}): {err}. Loading a single file needs the model's diffusers configuration: give a "
                f"local folder in diffusers layout as `config` (`model_config` in the profile), or download the model "
                f"in diffusers layout instead ({_how_to_download(hub_id)})"
            ) from err
    if path.is_dir():
        family = _family_of_folder(path)
        try:
            return family.pipeline_class.from_pretrained(path, dtype=dtype, **family.load_options())
        except (OSError, ValueError) as err:
            raise OSError(f"could not load a {family.title} pipeline from the folder {spec}: {err}") from err
    if path.is_absolute() or spec.startswith((".", "~")) or spec.count("/") != 1:
        raise FileNotFoundError(
            f"model folder {spec} does not exist (a model spec is one of {', '.join(OFFLINE_SPECS)}, an existing "
            f"folder in diffusers layout, a .safetensors/.ckpt file, or a Hugging Face model id 'owner/name')"
        )
    guessed = FAMILIES[_guess_family(spec)]
    try:
        class_name = DiffusionPipeline.load_config(spec)["_class_name"]
    except (OSError, ValueError) as err:
        raise OSError(
            f"could not load model {spec!r} (by its name a {guessed.title} model, {guessed.pipeline_class.__name__}): "
            f"it is not a local folder, and the Hugging Face Hub could not provide it ({type(err).__name__}: {err}). "
            f"{_how_to_download(spec)}"
        ) from err
    family = _family_of_class(class_name, spec)
    try:
        return family.pipeline_class.from_pretrained(spec, dtype=dtype, **family.load_options())
    except (OSError, ValueError) as err:
        raise OSError(
            f"could not load the {family.title} model {spec!r} from the Hugging Face Hub "
            f"({type(err).__name__}: {err}). {_how_to_download(spec)}"
        ) from err


def _family_of_folder(folder: Path) -> Any:
    index = folder / "model_index.json"
    if not index.is_file():
        raise FileNotFoundError(f"{folder} is not a diffusers model folder: it has no model_index.json")
    return _family_of_class(json.loads(index.read_text())["_class_name"], str(folder))


def _family_of_class(class_name: str, spec: str) -> Any:
    from otinterp.families import family_for_class_name

    try:
        return family_for_class_name(class_name)
    except ValueError as err:
        raise ValueError(f"model {spec}: {err}") from None


def _guess_family(hub_id: str) -> str:
    """The family a hub id names, for messages only (the loaded pipeline's class decides)."""
    if hub_id in KNOWN_HUB_IDS:
        return KNOWN_HUB_IDS[hub_id]
    name = hub_id.lower()
    for marker, family in (("flux", "flux"), ("stable-diffusion-3", "sd3"), ("sd3", "sd3"), ("xl", "sdxl")):
        if marker in name:
            return family
    return "sd"


def _how_to_download(hub_id: str) -> str:
    return (
        f"To get the weights, on a machine with network access run `hf download {hub_id} "
        f"--local-dir models/{hub_id.split('/')[-1]}` (older huggingface_hub: `huggingface-cli download`), "
        f"then set `model: models/{hub_id.split('/')[-1]}` in the profile (params/*.yaml)"
    )
