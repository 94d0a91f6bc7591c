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
from otinterp.families import family_of
from otinterp.models import load_pipeline, prepare_for_speed
from otinterp.render import render

PROMPTS = ["a photo of a cat", "a red bus on a street", "two giraffes next to a building"]
KW = dict(seed=0, steps=6, guidance=7.5, height=64, width=64, batch_size=3, disable=True)


def encode(pipe):
    return family_of(pipe).encode(pipe, PROMPTS).tokens


@pytest.fixture(scope="module")
def reference(pipe):
    return render(pipe, encode(pipe), **KW)


@pytest.mark.parametrize(
    "dtype, channels_last, pixel_tol",
    [("float32", True, 1e-5), ("bfloat16", False, 0.05), ("bfloat16", True, 0.05), ("float16", True, 0.01)],
)
def test_fast_path_images_match_float32(reference, lpips_model, dtype, channels_last, pixel_tol):
    pipe = prepare_for_speed(load_pipeline("tiny", dtype=dtype), channels_last=channels_last)
    if channels_last:
        assert pipe.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
        assert pipe.vae.decoder.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    images = render(pipe, encode(pipe), **KW)
    assert images.dtype == torch.float32
    assert (images - reference).abs().max() <= pixel_tol
    assert lpips_model(images * 2 - 1, reference * 2 - 1).max() < 1e-3


def test_params_speed_options_reach_the_pipeline():
    pipe = experiment.pipeline_for(params.make(channels_last=True, dtype="bfloat16"))
    assert pipe.unet.dtype == torch.bfloat16
    assert pipe.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)


def test_halve_until_fits_finds_the_largest_size_that_fits():
    from otinterp.render import halve_until_fits

    tried = []

    def try_batch(size):
        tried.append(size)
        if size > 12:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    assert halve_until_fits(try_batch, 64) == 8
    assert tried == [64, 32, 16, 8]


def test_halve_until_fits_gives_up_at_one_and_passes_other_errors():
    from otinterp.render import halve_until_fits

    def never(size):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(torch.cuda.OutOfMemoryError):
        halve_until_fits(never, 4)

    def broken(size):
        raise ValueError("not a memory problem")

    with pytest.raises(ValueError, match="not a memory problem"):
        halve_until_fits(broken, 4)


def test_auto_batch_size_on_cpu_keeps_the_start_and_runs(tmp_path, pipe):
    from otinterp.render import largest_batch_size

    assert largest_batch_size(pipe, height=64, width=64, start=48) == 48
    p = params.make(batch_size="auto", n_intervals=10, steps=1, height=32, width=32)
    assert experiment.with_batch_size(p, pipe).batch_size == 9  # a unit's largest call: K - 1 images
    assert experiment.with_batch_size(p.replace(n_intervals=2), pipe).batch_size == 2  # the two endpoints
    with pytest.raises(TypeError, match=r"'batch_size' must be int or one of 'auto'"):
        params.make(batch_size="max")
