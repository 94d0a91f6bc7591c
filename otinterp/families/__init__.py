"""Model families: what the denoiser sees of a prompt, per diffusers pipeline class.

=========  ===========================  ===================================  ====================  ===================
family     pipeline class               token set (the point cloud)          global vector         guidance
=========  ===========================  ===================================  ====================  ===================
``sd``     StableDiffusionPipeline      CLIP last hidden state, 77 x D       none                  ``E("")``, fixed
``sdxl``   StableDiffusionXLPipeline    CLIP-L + bigG penultimate, 77 x 2048 bigG pooled (1280)    zeros, fixed
``sd3``    StableDiffusion3Pipeline     CLIP (77, zero-padded) + T5 (256)    CLIP-L + G pooled     ``E("")``, fixed
``flux``   FluxPipeline                 T5 tokens, 256 / 512 x 4096          CLIP-L pooled (768)   none (distilled)
=========  ===========================  ===================================  ====================  ===================

The family is detected from the pipeline's class (:func:`family_of`), never given separately.
"""

from __future__ import annotations

from typing import Any

from otinterp.families.base import Conditioning, Family
from otinterp.families.flux import FluxFamily
from otinterp.families.sd import SDFamily
from otinterp.families.sd3 import SD3Family
from otinterp.families.sdxl import SDXLFamily

__all__ = ["Conditioning", "Family", "FAMILIES", "family_of", "family_for_class_name"]

#: Every supported family, by name.
FAMILIES: dict[str, Family] = {f.name: f for f in (SDFamily(), SDXLFamily(), SD3Family(), FluxFamily())}


def family_for_class_name(class_name: str) -> Family:
    """The family whose pipeline class is called ``class_name`` (``model_index.json``'s ``_class_name``).

    Raises
    ------
    ValueError
        For a pipeline class no family handles, listing those that are.
    """
    for family in FAMILIES.values():
        if family.pipeline_class.__name__ == class_name:
            return family
    known = ", ".join(f"{f.pipeline_class.__name__} ({f.name})" for f in FAMILIES.values())
    raise ValueError(f"unsupported diffusers pipeline {class_name!r}; otinterp handles {known}")


def family_of(pipe: Any) -> Family:
    """The family of a loaded diffusers pipeline, from its class."""
    return family_for_class_name(type(pipe).__name__)
