"""Checks that need a CUDA GPU (skipped elsewhere); `bench/gpu_check.sh` runs them on a lent GPU.

The references are the same renders in float32 on the CPU. cuDNN may convolve float32 in TF32 on
recent GPUs (PyTorch's default), so even float32 on the GPU is compared with a tolerance.
"""

import pytest
import torch

from otinterp import experiment, params
from otinterp.families import family_of
from otinterp.invariance import check_unet
from otinterp.models import OFFLINE_SPECS, load_pipeline, prepare_for_speed
from otinterp.ppl import load_lpips
from otinterp.render import largest_batch_size, render

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

PROMPTS = ["a photo of a cat", "a red bus on a street", "two giraffes next to a building"]
KW = dict(seed=0, steps=6, guidance=7.5, height=64, width=64, disable=True)
TINY_FAMILIES = [spec for spec in OFFLINE_SPECS if spec.endswith("-tiny")]


def draw(pipe, batch_size=3, prompts=PROMPTS, **kw):
    cond = family_of(pipe).encode(pipe, prompts)
    return render(pipe, cond.tokens, pooled=cond.pooled, batch_size=batch_size, **{**KW, **kw})


@pytest.fixture(scope="module")
def cpu_reference():
    return draw(load_pipeline("tiny"))


@pytest.fixture(scope="module")
def sd15():
    return load_pipeline("sd15-random", device="cuda", dtype="float16")


@pytest.mark.parametrize("dtype, pixel_tol", [("float32", 1e-3), ("float16", 0.01), ("bfloat16", 0.05)])
def test_gpu_images_match_the_cpu_float32_reference(cpu_reference, dtype, pixel_tol):
    pipe = prepare_for_speed(load_pipeline("tiny", device="cuda", dtype=dtype), channels_last=True)
    images = draw(pipe)
    assert (images - cpu_reference).abs().max() <= pixel_tol
    lp = load_lpips("alex", "random", device="cuda")
    assert lp(images.cuda() * 2 - 1, cpu_reference.cuda() * 2 - 1).max() < 1e-3


def test_compiled_unet_matches_the_cpu_float32_reference(cpu_reference):
    pipe = prepare_for_speed(load_pipeline("tiny", device="cuda", dtype="float16"), compile_unet=True)
    assert (draw(pipe) - cpu_reference).abs().max() <= 0.01  # the first call compiles


def test_gpu_render_is_batch_independent_and_deterministic():
    pipe = load_pipeline("tiny", device="cuda", dtype="float16")
    a = draw(pipe, batch_size=3)
    torch.testing.assert_close(draw(pipe, batch_size=3), a, rtol=0, atol=0)
    assert (a - draw(pipe, batch_size=1)).abs().max() < 0.01  # fp16 kernels may tile per batch size


def test_a_unit_renders_on_the_gpu_as_on_the_cpu():
    p = params.make(n_intervals=3, steps=4, height=64, width=64, batch_size=4)

    def unit(pipe):
        family = family_of(pipe)
        cond = family.encode(pipe, PROMPTS[:2])
        return experiment.render_unit(pipe, cond[0], cond[1], "pair-0", p, seed=0, paths=p.paths,
                                      uncond=family.unconditional(pipe))

    cpu, gpu = unit(load_pipeline("tiny")), unit(load_pipeline("tiny", device="cuda", dtype="float16"))
    for name in p.paths:
        assert (cpu[name]["perm"] == gpu[name]["perm"]).all()
        assert (cpu[name]["images"] - gpu[name]["images"]).abs().max() <= 0.01


@pytest.mark.parametrize("spec", TINY_FAMILIES)
def test_every_tiny_family_renders_on_the_gpu_as_on_the_cpu(spec):
    prompts = PROMPTS[:2]
    reference = draw(load_pipeline(spec), batch_size=2, prompts=prompts, steps=3)
    images = draw(load_pipeline(spec, device="cuda"), batch_size=2, prompts=prompts, steps=3)
    assert (images - reference).abs().max() <= 0.01
    half = draw(load_pipeline(spec, device="cuda", dtype="bfloat16"), batch_size=2, prompts=prompts, steps=3)
    assert torch.isfinite(half).all() and (half - reference).abs().mean() < 0.05


def test_sd15_unet_is_invariant_in_half_precision_at_full_size(sd15):
    cond = family_of(sd15).encode(sd15, PROMPTS[:1])
    table = check_unet(sd15, cond.tokens, n_perms=2, timesteps=[999, 500, 1], seed=0, height=512, width=512)
    # fp16 attention sums 77 keys in another order: ~1e-3 relative, against O(1) for other rows.
    assert table["rel_max_diff"].max() < 1e-2


def test_auto_batch_size_fills_the_gpu_and_fits(sd15):
    size = largest_batch_size(sd15, height=512, width=512, start=16)
    assert 1 <= size <= 16
    p = experiment.with_batch_size(params.make(batch_size="auto", n_intervals=10, height=64, width=64), sd15)
    assert p.batch_size == largest_batch_size(sd15, height=64, width=64, start=9)
    cond = family_of(sd15).encode(sd15, [""]).expand(size)
    render(sd15, cond.tokens, seed=0, steps=1, guidance=7.5, height=512, width=512, batch_size=size, disable=True)
