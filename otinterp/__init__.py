"""otinterp: optimal-transport interpolation of diffusion-model prompt embeddings.

A reproduction and extension of Karris, Durell, Flores and Emerson, "Which Way from B to A: The
role of embedding geometry in image interpolation for Stable Diffusion", arXiv:2511.12757 (2025).

``import otinterp`` is light: the library calls and the submodules load on first use, so the
command line answers at once. For your own pipeline::

    frames = otinterp.interpolate(pipe, "a cat", "a bus", n=16).images   # the OT path, PIL images
    image = otinterp.mix(pipe, ["a cat", "a bus", "a tree"], [0.5, 0.25, 0.25])
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: Attributes loaded on first use: the library calls and their result type.
_LAZY = {"interpolate": "otinterp.api", "mix": "otinterp.api", "Interpolation": "otinterp.api"}

__all__ = ["interpolate", "mix", "Interpolation", "__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    try:
        return importlib.import_module(f"otinterp.{name}")
    except ModuleNotFoundError as err:
        if err.name != f"otinterp.{name}":
            raise
        raise AttributeError(f"module 'otinterp' has no attribute {name!r}") from None
