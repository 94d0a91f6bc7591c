"""The GPU fast path changes how images are computed, not what: each option against float32.

Tolerances, on [0, 1] pixels of the tiny model at 64 px (measured on this CPU: channels-last
1.6e-6, float16 2.6e-3, bfloat16 1.9e-2 max abs; LPIPS < 5e-5): channels-last is exact up to float
rounding (1e-5); half precision keeps 8 bits of mantissa for bfloat16 and 11 for float16, so the
images may move by a few 8-bit levels (0.05 and 0.01). LPIPS against the float32 image stays
below 1e-3. `bench/gpu_check.sh` repeats this at SD 1.5's size on a GPU.
"""

import pytest
import torch

from otinterp import experiment, params
from otinterp.models import load_pipeline, prepare_for_speed
from otinterp.ppl import load_lpips
from otinterp.render import render
from otinterp.text import encode

PROMPTS = ["a photo of a cat", "a red bus on a street", "two giraffes next to a building"]
KW = dict(seed=0, steps=6, guidance=7.5, height=64, width=64, batch_size=3, disable=True)


@pytest.fixture(scope="module")
def reference():
    pipe = load_pipeline("tiny")
    return render(pipe, encode(pipe, PROMPTS), **KW)


@pytest.fixture(scope="module")
def lpips_model():
    return load_lpips("alex", "random")


@pytest.mark.parametrize(
    "dtype, channels_last, pixel_tol",
    [("float32", True, 1e-5), ("bfloat16", False, 0.05), ("bfloat16", True, 0.05), ("float16", True, 0.01)],
)
def test_fast_path_images_match_float32(reference, lpips_model, dtype, channels_last, pixel_tol):
    pipe = prepare_for_speed(load_pipeline("tiny", dtype=dtype), channels_last=channels_last)
    if channels_last:
        assert pipe.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
        assert pipe.vae.decoder.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    images = render(pipe, encode(pipe, PROMPTS), **KW)
    assert images.dtype == torch.float32
    assert (images - reference).abs().max() <= pixel_tol
    assert lpips_model(images * 2 - 1, reference * 2 - 1).max() < 1e-3


def test_params_speed_options_reach_the_pipeline():
    pipe = experiment.pipeline_for(params.make(channels_last=True, dtype="bfloat16"))
    assert pipe.unet.dtype == torch.bfloat16
    assert pipe.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
