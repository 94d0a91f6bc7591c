"""Permutation invariance: the UNet is invariant to the embedding's row order, the text encoder is not."""

import re
from pathlib import Path

import matplotlib
import numpy as np
import papermill
import pytest
import torch

from otinterp.families import family_of
from otinterp.invariance import (
    ENCODER_COMPARISON,
    check_images,
    check_text_encoder,
    check_unet,
    differences,
    plot_pair,
    random_permutations,
    verdict,
)
from otinterp.models import load_pipeline
from otinterp.params import RANDOM_WEIGHTS_NOTE
from otinterp.stats import read_table_csv

matplotlib.use("Agg")

#: float32 attention sums its 77 keys in another order under a permutation: measured relative
#: differences are at most ~1e-6 (UNet 8.5e-7 tiny / 6.9e-7 SD 1.5 architecture, images 1.3e-6).
RTOL = 1e-5

PROMPTS = ["a photo of a cat", "a red double decker bus on a city street"]
ROOT = Path(__file__).resolve().parents[1]
DIFF_COLUMNS = ["max_abs_diff", "mean_abs_diff", "scale", "rel_max_diff"]


@pytest.fixture(scope="module")
def sd15():
    return load_pipeline("sd15-random")


@pytest.fixture(scope="module")
def tables(pipe):
    unet = check_unet(pipe, family_of(pipe).encode(pipe, PROMPTS).tokens, n_perms=3, timesteps=[999, 500, 1], seed=0)
    images, pictures = check_images(pipe, PROMPTS, n_perms=2, seed=0, steps=4, guidance=7.5, height=64, width=64)
    encoder = check_text_encoder(pipe, PROMPTS[1], seed=0)
    return unet, images, pictures, encoder


def test_random_permutations_are_seeded_permutations():
    perms = random_permutations(77, 5, seed=3)
    assert perms.shape == (5, 77)
    assert all(sorted(p) == list(range(77)) for p in perms)
    assert len({tuple(p) for p in perms}) == 5
    np.testing.assert_array_equal(random_permutations(77, 5, seed=3), perms)
    assert not np.array_equal(random_permutations(77, 5, seed=4), perms)


def test_differences_by_hand():
    reference = torch.tensor([[1.0, -4.0], [2.0, 0.0]])
    other = torch.tensor([[1.0, -3.0], [2.0, 2.0]])
    assert differences(reference, other) == {
        "max_abs_diff": 2.0, "mean_abs_diff": 0.75, "scale": 4.0, "rel_max_diff": 0.5
    }
    with pytest.raises(ValueError, match=r"cannot compare shapes \(2, 2\) and \(4,\)"):
        differences(reference, other.flatten())


def test_unet_is_row_permutation_invariant(tables):
    unet = tables[0]
    assert list(unet.columns) == ["prompt", "perm", "timestep", *DIFF_COLUMNS]
    assert len(unet) == 2 * 3 * 3
    assert set(unet.timestep) == {999, 500, 1} and set(unet.prompt) == {0, 1} and set(unet.perm) == {0, 1, 2}
    assert (unet.scale > 0.1).all()  # outputs are not trivially zero
    assert unet.rel_max_diff.max() < RTOL


def test_images_are_row_permutation_invariant(pipe, tables):
    images, pictures = tables[1], tables[2]
    assert list(images.columns) == ["prompt", "perm", *DIFF_COLUMNS]
    assert images.prompt.tolist() == [PROMPTS[0]] * 2 + [PROMPTS[1]] * 2
    assert pictures.shape == (2, 3, 3, 64, 64)
    assert images.rel_max_diff.max() < RTOL
    # Not vacuous: the two prompts render different images.
    assert (pictures[0, 0] - pictures[1, 0]).abs().max() > 1e-2


def test_text_encoder_is_not_token_permutation_equivariant(tables):
    assert list(tables[3].columns) == ["prompt", "comparison", "block", *DIFF_COLUMNS]
    assert (tables[3].prompt == PROMPTS[1]).all()
    encoder = tables[3].set_index("comparison").rel_max_diff
    assert encoder[ENCODER_COMPARISON] > 1e4 * RTOL  # measured 0.57 on the tiny model
    assert encoder["UNet: E[π] vs E"] < RTOL
    assert encoder["UNet: E(tokens[π]) vs E"] > 100 * RTOL  # token order reaches the UNet


def test_token_permutation_needs_two_distinct_tokens(pipe):
    with pytest.raises(ValueError, match="prompt 'cat cat cat' has fewer than two distinct tokens"):
        check_text_encoder(pipe, "cat cat cat", seed=0)


@pytest.mark.slow
def test_sd15_architecture_unet_is_invariant_and_encoder_is_not(sd15):
    embeds = family_of(sd15).encode(sd15, PROMPTS[:1]).tokens
    unet = check_unet(sd15, embeds, n_perms=1, timesteps=[500], seed=0, height=64, width=64)
    assert unet.rel_max_diff.max() < RTOL  # measured 6.9e-7
    encoder = check_text_encoder(sd15, PROMPTS[0], seed=0, height=64, width=64).set_index("comparison")
    assert encoder.at[ENCODER_COMPARISON, "rel_max_diff"] > 1e4 * RTOL


@pytest.mark.slow
def test_sd15_architecture_renders_invariant_images(sd15):
    # The whole pipeline at SD 1.5's configuration (scheduler, guidance, 4-level VAE), tiny size.
    table, images = check_images(sd15, PROMPTS[:1], n_perms=1, seed=0, steps=2, guidance=7.5, height=64, width=64)
    assert images.shape == (1, 2, 3, 64, 64) and images.min() >= 0 and images.max() <= 1
    assert table["max_abs_diff"].max() < 1e-4


def test_check_unet_rejects_bad_input(pipe):
    embeds = family_of(pipe).encode(pipe, PROMPTS[:1]).tokens
    with pytest.raises(ValueError, match=r"timesteps must be a non-empty list of integers in \[0, 1000\), got \[1000\]"):
        check_unet(pipe, embeds, n_perms=1, timesteps=[1000], seed=0)
    with pytest.raises(ValueError, match="n_perms must be >= 1, got 0"):
        check_unet(pipe, embeds, n_perms=0, timesteps=[1], seed=0)
    with pytest.raises(ValueError, match="embeddings have width 768 but the pipeline's UNet expects 32"):
        check_unet(pipe, torch.zeros(1, 77, 768), n_perms=1, timesteps=[1], seed=0)


def test_verdict(tables):
    unet, images, _, encoder = tables
    assert verdict(unet, images, encoder, rtol=1e-4).startswith("PASS: UNet is row-permutation invariant at rtol 1e-04")
    assert verdict(unet, images, encoder, rtol=1e-12).startswith("FAIL: UNet is NOT row-permutation invariant")


def test_plot_pair(tables):
    pictures = tables[2]
    fig = plot_pair(pictures[0, 0], pictures[0, 1], title="random weights: images mean nothing")
    assert fig._suptitle.get_text() == "random weights: images mean nothing"
    assert len(fig.axes) == 4  # two images, the difference, its colour bar


@pytest.mark.slow
def test_notebook_runs_on_a_family_with_a_global_vector_and_writes_the_caveat(tmp_path, monkeypatch):
    """Notebook 00 on SDXL's tiny pipeline: one pipeline, the family's encoder, a CSV that says random weights."""
    monkeypatch.setenv("OTINTERP_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("OTINTERP_FIGURES", str(tmp_path / "figures"))
    profile = (ROOT / "params" / "smoke.yaml").read_text()
    for key, value in {"model": "sdxl-tiny", "steps": 2, "n_perms": 1, "height": 32, "width": 32}.items():
        profile, n = re.subn(rf"^{key}: .*$", f"{key}: {value}", profile, flags=re.MULTILINE)
        assert n == 1, key
    yaml = tmp_path / "sdxl00.yaml"
    yaml.write_text(profile)
    out = tmp_path / "00.ipynb"
    papermill.execute_notebook(str(ROOT / "notebooks" / "00_permutation_invariance.ipynb"), str(out),
                               cwd=str(ROOT / "notebooks"), parameters={"profile": str(yaml)},
                               kernel_name="python3", progress_bar=False)
    csv = tmp_path / "runs" / "sdxl00" / "tables" / "invariance.csv"
    model, note = csv.read_text().splitlines()[:2]
    assert model == "# model: sdxl-tiny (sdxl family)" and note.startswith("# ") and RANDOM_WEIGHTS_NOTE in note
    table = read_table_csv(csv)
    assert set(table.check) == {"unet", "images", "text_encoder"}
    assert "StableDiffusionXLPipeline" in out.read_text()
