"""Checks that need a CUDA GPU (skipped elsewhere); `bench/gpu_check.sh` runs them on a lent GPU."""

import pytest
import torch

from otinterp.invariance import check_unet
from otinterp.models import load_pipeline, prepare_for_speed
from otinterp.ppl import load_lpips
from otinterp.render import render
from otinterp.text import encode

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

PROMPTS = ["a photo of a cat", "a red bus on a street", "two giraffes next to a building"]
KW = dict(seed=0, steps=6, guidance=7.5, height=64, width=64, disable=True)


@pytest.fixture(scope="module")
def cpu_reference():
    pipe = load_pipeline("tiny")
    return render(pipe, encode(pipe, PROMPTS), batch_size=3, **KW)


@pytest.fixture(scope="module")
def sd15():
    return load_pipeline("sd15-random", device="cuda", dtype="float16")


@pytest.mark.parametrize("dtype, pixel_tol", [("float32", 1e-3), ("float16", 0.01), ("bfloat16", 0.05)])
def test_gpu_images_match_the_cpu_float32_reference(cpu_reference, dtype, pixel_tol):
    pipe = prepare_for_speed(load_pipeline("tiny", device="cuda", dtype=dtype), channels_last=True)
    images = render(pipe, encode(pipe, PROMPTS), batch_size=3, **KW)
    assert (images - cpu_reference).abs().max() <= pixel_tol
    lp = load_lpips("alex", "random", device="cuda")
    assert lp(images.cuda() * 2 - 1, cpu_reference.cuda() * 2 - 1).max() < 1e-3


def test_compiled_unet_matches_the_cpu_float32_reference(cpu_reference):
    pipe = prepare_for_speed(load_pipeline("tiny", device="cuda", dtype="float16"), compile_unet=True)
    images = render(pipe, encode(pipe, PROMPTS), batch_size=3, **KW)  # first call compiles
    assert (images - cpu_reference).abs().max() <= 0.01


def test_gpu_render_is_batch_independent_and_deterministic():
    pipe = load_pipeline("tiny", device="cuda", dtype="float16")
    e = encode(pipe, PROMPTS)
    a = render(pipe, e, batch_size=3, **KW)
    b = render(pipe, e, batch_size=1, **KW)
    torch.testing.assert_close(render(pipe, e, batch_size=3, **KW), a, rtol=0, atol=0)
    assert (a - b).abs().max() < 0.01  # fp16 kernels may pick other tilings per batch size


def test_sd15_unet_is_invariant_in_half_precision_at_full_size(sd15):
    pipe = sd15
    e = torch.randn(1, 77, 768, generator=torch.Generator().manual_seed(0))
    table = check_unet(pipe, e, n_perms=2, timesteps=[999, 500, 1], seed=0, height=512, width=512)
    # fp16 attention sums 77 keys in another order: ~1e-3 relative, against O(1) for other rows.
    assert table["rel_max_diff"].max() < 1e-2


def test_auto_batch_size_fills_the_gpu(sd15):
    from otinterp.render import largest_batch_size

    size = largest_batch_size(sd15, height=512, width=512)
    assert 1 <= size <= 64
