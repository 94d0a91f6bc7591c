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

The offline specs are built from :mod:`otinterp.offline` (configurations, seeded weights, the real
CLIP BPE tokenizer from ``open-clip-torch``'s vocabulary, a stand-in T5 tokenizer trained on the
fly). Images from random weights mean nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from diffusers import DDIMScheduler, DiffusionPipeline, DPMSolverMultistepScheduler, EulerDiscreteScheduler
from diffusers.loaders.single_file_utils import SingleFileComponentError

from otinterp.families import FAMILIES, Family, family_for_class_name, family_of, flux, sd, sd3, sdxl
from otinterp.offline import SD15_CONFIGS, TINY_CONFIGS, build_pipeline
from otinterp.params import RANDOM_WEIGHTS_NOTE

__all__ = [
    "load_pipeline", "set_scheduler", "prepare_for_speed", "weights_note", "OFFLINE_SPECS", "SCHEDULERS",
]

#: The hub id of SD 1.5 (the paper profile's model), used in error messages.
SD15_HUB_ID = "stable-diffusion-v1-5/stable-diffusion-v1-5"

#: The specs built offline with seeded random weights, and how each is built.
OFFLINE_SPECS: dict[str, Callable[[], Any]] = {
    "tiny": lambda: build_pipeline(TINY_CONFIGS),
    "sd15-random": lambda: build_pipeline(SD15_CONFIGS),
    "sd21-tiny": sd.build_tiny_sd21,
    "sdxl-tiny": sdxl.build_tiny,
    "sd3-tiny": sd3.build_tiny,
    "flux-tiny": flux.build_tiny,
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


def _as_dtype(dtype: torch.dtype | str) -> torch.dtype:
    resolved = getattr(torch, dtype, None) if isinstance(dtype, str) else dtype
    if not (isinstance(resolved, torch.dtype) and resolved.is_floating_point):
        raise ValueError(f"unknown floating-point dtype {dtype!r}; use e.g. 'float32', 'float16' or 'bfloat16'")
    return resolved


def _load_weights(spec: str, dtype: torch.dtype, config: str | Path | None) -> Any:
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


def _family_of_folder(folder: Path) -> Family:
    index = folder / "model_index.json"
    if not index.is_file():
        raise FileNotFoundError(f"{folder} is not a diffusers model folder: it has no model_index.json")
    return _family_of_class(json.loads(index.read_text())["_class_name"], str(folder))


def _family_of_class(class_name: str, spec: str) -> Family:
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
