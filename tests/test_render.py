"""Rendering from embeddings: fixed latent, determinism, batch independence, row-permutation invariance."""

import pytest
import torch

from otinterp.families import family_of
from otinterp.render import initial_latent, render

#: Batch shape changes CPU kernel blocking, so batched images may differ from single ones in the
#: last float32 bits (measured: at most 1.3e-6 on [0, 1]); 1e-5 is far below one 8-bit level.
ATOL = 1e-5

OPTIONS = dict(seed=0, steps=4, guidance=7.5, height=64, width=64, disable=True)
PROMPTS = ["a photo of a cat", "a red double decker bus on a city street", ""]


@pytest.fixture(scope="module")
def embeds(pipe):
    return family_of(pipe).encode(pipe, PROMPTS).tokens


@pytest.fixture(scope="module")
def images(pipe, embeds):
    return render(pipe, embeds, batch_size=3, **OPTIONS)


def test_initial_latent_is_seeded_on_the_cpu(pipe):
    latent = initial_latent(pipe, 7, 64, 32)
    assert latent.shape == (1, 4, 8, 4) and latent.dtype == torch.float32 and latent.device.type == "cpu"
    expected = torch.randn((1, 4, 8, 4), generator=torch.Generator("cpu").manual_seed(7))
    assert torch.equal(latent, expected)
    assert not torch.equal(initial_latent(pipe, 8, 64, 32), latent)


def test_initial_latent_rejects_bad_sizes(pipe):
    with pytest.raises(ValueError, match="height must be a positive multiple of 8 .* got 60"):
        initial_latent(pipe, 0, 60, 64)


def test_images_are_in_unit_range_on_cpu(images):
    assert images.shape == (3, 3, 64, 64)
    assert images.dtype == torch.float32 and images.device.type == "cpu"
    assert images.min() >= 0 and images.max() <= 1


def test_rendering_is_deterministic_and_leaves_global_rng_alone(pipe, embeds, images):
    state = torch.get_rng_state()
    again = render(pipe, embeds, batch_size=3, **OPTIONS)
    assert torch.equal(again, images)
    assert torch.equal(torch.get_rng_state(), state)


def test_image_does_not_depend_on_its_batch(pipe, embeds, images):
    singles = torch.cat([render(pipe, embeds[i : i + 1], batch_size=1, **OPTIONS) for i in range(3)])
    pairs = render(pipe, embeds, batch_size=2, **OPTIONS)
    torch.testing.assert_close(singles, images, rtol=0, atol=ATOL)
    torch.testing.assert_close(pairs, images, rtol=0, atol=ATOL)
    # The images differ between prompts by far more than the tolerance: the check is not vacuous.
    assert (images[0] - images[1]).abs().max() > 1000 * ATOL


def test_image_is_invariant_to_row_permutations(pipe, embeds, images):
    perm = torch.randperm(77, generator=torch.Generator().manual_seed(0))
    permuted = render(pipe, embeds[:, perm], batch_size=3, **OPTIONS)
    torch.testing.assert_close(permuted, images, rtol=0, atol=ATOL)


def test_default_uncond_is_the_empty_prompt(pipe, embeds, images):
    explicit = render(pipe, embeds, batch_size=3, uncond=family_of(pipe).unconditional(pipe).tokens, **OPTIONS)
    assert torch.equal(explicit, images)
    other = render(pipe, embeds, batch_size=3, uncond=family_of(pipe).encode(pipe, ["a dog"]).tokens, **OPTIONS)
    assert (other - images).abs().max() > 1000 * ATOL


def test_callback_reports_progress(pipe, embeds):
    calls = []
    render(pipe, embeds, batch_size=2, callback=lambda done, total: calls.append((done, total)), **OPTIONS)
    assert calls == [(2, 3), (3, 3)]


def test_bad_embeddings_are_clear_errors(pipe, embeds):
    def render_(x, **kw):
        return render(pipe, x, batch_size=2, **{**OPTIONS, **kw})

    with pytest.raises(ValueError, match="embeddings have width 1024 but the pipeline's UNet expects 32"):
        render_(torch.zeros(1, 77, 1024))
    with pytest.raises(ValueError, match=r"must be a 3-D \(batch, rows, width\) tensor, got shape \(77, 32\)"):
        render_(embeds[0])
    with pytest.raises(ValueError, match="no embeddings given"):
        render_(embeds[:0])
    with pytest.raises(TypeError, match="embeddings must be a torch.Tensor, got ndarray"):
        render_(embeds.numpy())
    broken = embeds.clone()
    broken[2, 5, 3] = float("nan")
    with pytest.raises(ValueError, match=r"NaN or infinite values \(batch index 2\)"):
        render_(broken)
    with pytest.raises(ValueError, match=r"unconditional embedding must have shape \(1, 77, D\), got \(2, 77, 32\)"):
        render_(embeds, uncond=embeds[:2])
    with pytest.raises(ValueError, match="batch_size and steps must be >= 1"):
        render(pipe, embeds, batch_size=0, **OPTIONS)
