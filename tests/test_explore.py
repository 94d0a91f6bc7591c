"""The explorer: one pair's four paths on the tiny models of every family, its files, figures and widget cache."""

import json
from pathlib import Path

import imageio.v2 as imageio
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from otinterp import cli, explore as E
from otinterp.run import Run
from otinterp.couplings import COUPLINGS, PATHS
from otinterp.families import family_of
from otinterp.ppl import MEASURES

A, B = "a photo of a cat", "a red double decker bus on a city street"
FAST = {"steps": 2}


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def params():
    return Run.open("smoke", **FAST).config


@pytest.fixture(scope="module")
def models(params):
    return E.load_models(params)


@pytest.fixture(scope="module")
def exploration(models, params):
    return E.explore(*models, A, B, params, frames=4)


def test_command_line_writes_strips_animations_coupling_and_measures(tmp_path):
    frames = 5
    cli.main(["explore", A, B, "--profile", "smoke", "--frames", str(frames), "--set", "steps=2",
                      "--set", "seeds=[0, 3]", "--seed-index", "all", "--out", str(tmp_path)])
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["coupling.png", "measures.json", "paths_seed0.gif", "paths_seed0.mp4", "paths_seed3.gif",
                     "paths_seed3.mp4", "strips_seed0.png", "strips_seed3.png"]
    gif = imageio.mimread(tmp_path / "paths_seed0.gif")
    assert len(gif) == frames
    assert gif[0].shape[0] % 16 == 0 and gif[0].shape[1] % 16 == 0
    with imageio.get_reader(tmp_path / "paths_seed3.mp4", format="FFMPEG") as reader:
        assert reader.count_frames() == frames
    for png in ("coupling.png", "strips_seed0.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    record = json.loads((tmp_path / "measures.json").read_text())
    assert (record["prompt_a"], record["prompt_b"], record["frames"]) == (A, B, frames)
    assert "random weights" in record["caveat"]
    rows = record["rows"]
    assert [(r["seed"], r["path"]) for r in rows] == [(s, p) for s in (0, 3) for p in PATHS]
    for row in rows:
        for name in ("ppl", "cost", "w2", "path_efficiency", "excursion", "max_step", "smoothness"):
            assert np.isfinite(row[name]), (row["path"], name)
        assert len(row["distances"]) == frames - 1
        assert row["ppl"] == pytest.approx(np.mean(row["distances"]))
    by = {(r["seed"], r["path"]): r for r in rows}
    assert by[0, "ot"]["cost"] == by[0, "ot"]["w2"] <= by[0, "random"]["cost"]
    assert by[0, "slerp"]["cost"] == by[0, "clip"]["cost"]  # slerp pairs rows as CLIP does
    assert by[0, "ot"]["distances"] != by[3, "ot"]["distances"]  # another initial latent


def test_command_line_writes_into_a_folder_named_after_the_prompts(params):
    folder = E.output_folder(params, A, "A red bus!")
    assert folder == Path(params.figures_dir) / "explore" / "a-photo-of-a-cat--a-red-bus"
    long_a, long_b = "a very long prompt " * 4 + "ending one way", "a very long prompt " * 4 + "ending another"
    names = {E.output_folder(params, p, B).name for p in (long_a, long_b)}
    assert len(names) == 2 and all(len(n.split("--")[0]) <= 47 for n in names)


def test_command_line_errors_are_one_line(capsys):
    with pytest.raises(SystemExit):
        cli.main(["explore", "only one prompt"])
    assert "give exactly two prompts" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["explore", A, B, "--profile", "nonexistent"])
    assert "unknown profile 'nonexistent'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["explore", A, B, "--seed-index", "x"])
    assert "--seed-index takes integers or 'all'" in capsys.readouterr().err


def test_coupling_plot_labels_are_the_tokenizers_strings(models, exploration):
    pipe = models[0]
    fig = E.coupling_figure(exploration)
    ot_ax, clip_ax = fig.axes[:2]
    right = [ax for ax in fig.axes[2:] if ax.bbox.bounds == ot_ax.bbox.bounds][0]
    ids = family_of(pipe).tokenize(pipe, [A, B])["tokenizer"]
    expected_a, expected_b = (pipe.tokenizer.convert_ids_to_tokens(row.tolist()) for row in ids)
    assert [t.get_text() for t in ot_ax.get_yticklabels()] == expected_a
    assert [t.get_text() for t in right.get_yticklabels()] == expected_b
    assert expected_a[:3] == ["<|startoftext|>", "a</w>", "photo</w>"] and expected_a[-1] == "<|endoftext|>"
    kept = int(np.sum(exploration.perms["ot"] == np.arange(77)))
    assert ot_ax.get_title().splitlines()[0] == f"OT: {kept} of 77 rows in place"
    assert clip_ax.get_title().splitlines()[0] == "CLIP: 77 of 77 rows in place"


def test_every_figure_carries_the_caveat(exploration, params):
    assert params.caveat
    for fig in (E.strips_figure(exploration), E.coupling_figure(exploration)):
        assert "".join(params.caveat.split()) in "".join(fig.get_suptitle().split())
    frames = E.animation_frames(exploration)
    assert len(frames) == 4 and frames[0].dtype == np.uint8


def test_paths_share_their_endpoints_and_slerp_leaves_the_couplings_unchanged(models, params, exploration):
    ex = exploration
    assert ex.paths == list(PATHS)
    for p in PATHS:
        assert torch.equal(ex.images[p][0], ex.images["ot"][0]) and torch.equal(ex.images[p][-1], ex.images["ot"][-1])
        assert set(ex.measures[p]) == {"distances", "intervals", *MEASURES}
    without = E.explore(*models, A, B, params, frames=4, paths=COUPLINGS)
    assert without.paths == list(COUPLINGS)
    for p in COUPLINGS:
        np.testing.assert_array_equal(without.perms[p], ex.perms[p])
        assert without.costs[p] == ex.costs[p]
        assert torch.equal(without.images[p], ex.images[p])  # each path is rendered in a batch of its own


def test_explorer_renders_each_prompt_pair_once(exploration, params):
    calls = []

    def fake_explore(pipe, lpips_model, a, b, params, **kwargs):
        calls.append((a, b, kwargs["seed"]))
        return exploration

    explorer = E.Explorer(None, None, params, frames=4, render=fake_explore)
    box = explorer.widget(A, B)
    box_a, box_b, row, slider, image, info = box.children
    path = row.children[0]
    assert calls == [(A, B, 0)] and image.value[:4] == b"\x89PNG"
    for k in range(4):
        slider.value = k
    path.value = "slerp"
    assert calls == [(A, B, 0)] and "t = 1.000" in info.value and "random weights" in info.value
    box_b.value = "a dog"
    box_b.value = B
    assert calls == [(A, B, 0), (A, "a dog", 0)]
    assert explorer.renders == 2
    with pytest.raises(ValueError, match="unknown path 'linear'"):
        explorer.frame_png(A, B, "linear", 0)
    preloaded = E.Explorer(None, None, params, frames=4, render=fake_explore, known=[exploration])
    preloaded.frame_png(A, B, "ot", 3)
    assert preloaded.renders == 1 and len(calls) == 2
    with pytest.raises(ValueError, match="a known exploration has 4 frames"):
        E.Explorer(None, None, params, frames=24, known=[exploration])


def test_bad_arguments(models, params):
    with pytest.raises(ValueError, match="frames must be an integer >= 2"):
        E.explore(*models, A, B, params, frames=1)
    with pytest.raises(ValueError, match="paths must be distinct names"):
        E.explore(*models, A, B, params, paths=("ot", "lerp"))
    with pytest.raises(ValueError, match=r"seed indices must be in 0..0 \(the run's seeds are \[0\]\)"):
        E.explore_seeds(*models, A, B, params, seed_indices=[1])


def test_pair_id_takes_the_run_pairs_prompts_and_random_coupling(tmp_path, models):
    from otinterp.couplings import pair_rng, random_coupling
    from otinterp.data import bundled_pairs, write_pairs

    pairs = bundled_pairs().head(3)
    write_pairs(pairs, tmp_path / "run" / "pairs.parquet")
    pid, a, b = pairs.iloc[1][["pair_id", "prompt_a", "prompt_b"]]
    cli.main(["explore", "--pair-id", pid, "--frames", "3", "--paths", "clip", "random", "--set", "steps=1",
            "--set", f"run_dir={tmp_path / 'run'}", "--out", str(tmp_path / "out")])
    record = json.loads((tmp_path / "out" / "measures.json").read_text())
    assert (record["prompt_a"], record["prompt_b"], record["pair_id"]) == (a, b, pid)
    assert [r["path"] for r in record["rows"]] == ["clip", "random"]
    assert not (tmp_path / "out" / "coupling.png").exists()  # drawn when OT and CLIP are both there
    params = Run.open("smoke", steps=1).config
    ex = E.explore(*models, a, b, params, frames=2, paths=["random"], pair_id=pid)
    np.testing.assert_array_equal(ex.perms["random"], random_coupling(77, pair_rng(params.seed, pid)))
    with pytest.raises(SystemExit):
        cli.main(["explore", "--pair-id", "no-such-pair", "--set", f"run_dir={tmp_path / 'run'}"])


@pytest.mark.parametrize("model, rows", [("sdxl-tiny", 77), ("flux-tiny", 256)])
def test_command_line_runs_on_families_with_a_global_vector(tmp_path, model, rows):
    cli.main(["explore", A, B, "--frames", "3", "--set", f"model={model}", "--set", "steps=1", "--out", str(tmp_path)])
    record = json.loads((tmp_path / "measures.json").read_text())
    assert record["model"] == model
    assert [r["path"] for r in record["rows"]] == list(PATHS)
    assert len(record["tokens_a"]) == len(record["tokens_b"]) == rows
    for row in record["rows"]:
        assert len(row["distances"]) == 2
        assert all(np.isfinite(row[name]) for name in ("ppl", "cost", "w2", "path_efficiency"))
    assert {"coupling.png", "paths_seed0.gif", "paths_seed0.mp4", "strips_seed0.png"} <= {
        p.name for p in tmp_path.iterdir()}
    height = imageio.imread(tmp_path / "coupling.png").shape[0]
    assert height <= (0.16 * 100 + 1.8) * 150  # 256 T5 rows: padding banded, at most 100 rows drawn


def test_token_labels_follow_the_family_blocks(tiny_pipe):
    sd3 = tiny_pipe("sd3-tiny")
    ids = family_of(sd3).tokenize(sd3, [A])
    clip = sd3.tokenizer.convert_ids_to_tokens(ids["tokenizer"][0].tolist())
    t5 = sd3.tokenizer_3.convert_ids_to_tokens(ids["tokenizer_3"][0].tolist())
    labels = E.prompt_tokens(sd3, A)
    assert labels == [f"CLIP:{t}" for t in clip] + [f"T5:{t}" for t in t5]
    assert len(clip) == 77 and len(labels) == family_of(sd3).encode(sd3, [A]).tokens.shape[1]
    flux = tiny_pipe("flux-tiny")  # one block, T5's: no prefix
    t5_ids = family_of(flux).tokenize(flux, [A])["tokenizer_2"][0].tolist()
    assert E.prompt_tokens(flux, A) == flux.tokenizer_2.convert_ids_to_tokens(t5_ids)


def test_paths_are_the_experiments_on_a_family_with_a_global_vector():
    """Same points (global vector interpolated alike for every path), unconditional input and batches:
    with ``frames = n_intervals + 1`` the explorer's images are the experiment's, bit for bit."""
    from otinterp.experiment import render_unit

    params = Run.open("smoke", model="sdxl-tiny", steps=1, n_intervals=3).config
    pipe, lpips_model = E.load_models(params)
    ex = E.explore(pipe, lpips_model, A, B, params, frames=4, paths=COUPLINGS, pair_id="p1")
    cond = family_of(pipe).encode(pipe, [A, B])
    unit = render_unit(pipe, cond[0], cond[1], "p1", params, seed=0, paths=COUPLINGS,
                       uncond=family_of(pipe).unconditional(pipe))
    for p in COUPLINGS:
        np.testing.assert_array_equal(ex.perms[p], unit[p]["perm"])
        assert ex.costs[p] == unit[p]["cost"] and ex.w2 == unit[p]["w2"]
        assert torch.equal(ex.images[p], unit[p]["images"])
    assert not torch.equal(ex.images["ot"][1], ex.images["clip"][1])


def test_random_lpips_backbone_is_the_experiments_for_the_runs_seed():
    """The explorer's LPIPS is built as the experiment builds it: a random backbone seeded with ``seed``."""
    from otinterp.ppl import load_lpips

    params = Run.open("smoke", seed=7).config
    _, lpips_model = E.load_models(params)
    same = load_lpips(params.lpips_net, params.lpips_backbone, device=params.device, seed=7)
    other = load_lpips(params.lpips_net, params.lpips_backbone, device=params.device, seed=0)
    weights = lpips_model.state_dict()
    assert all(torch.equal(weights[k], v) for k, v in same.state_dict().items())
    assert not all(torch.equal(weights[k], v) for k, v in other.state_dict().items())
