"""Fixtures the test files share: the tiny offline pipelines and LPIPS with a random backbone.

They are built once per session (a pipeline takes about a second). Library calls leave a pipeline
as they found it; a test that changes one (its dtype, scheduler, memory format or denoiser) loads
its own with ``load_pipeline``.
"""

import pytest

from otinterp.models import load_pipeline
from otinterp.ppl import load_lpips


@pytest.fixture(scope="session")
def tiny_pipe():
    """``tiny_pipe(spec)``: the offline pipeline ``spec`` (``"tiny"``, ``"sdxl-tiny"``, …), one per spec."""
    pipes = {}

    def get(spec):
        if spec not in pipes:
            pipes[spec] = load_pipeline(spec)
        return pipes[spec]

    return get


@pytest.fixture(scope="session")
def pipe(tiny_pipe):
    """The ``tiny`` pipeline (SD 1.x architecture, random weights)."""
    return tiny_pipe("tiny")


@pytest.fixture(scope="session")
def lpips_model():
    """LPIPS on AlexNet with random weights (seed 0): offline, not perceptual."""
    return load_lpips("alex", "random")
