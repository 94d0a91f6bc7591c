import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

from otinterp import plots
from otinterp.plots import (
    FEW_PAIRS, coupling_tokens, excess_cost_vs_similarity, image_strips, measures_boxplots, path_strips_with_steps,
    ppl_cost_boxplots, save_figure, w2_vs_similarity,
)
from test_stats import synthetic_results

NOTE = "random weights: images mean nothing"
LONG_NOTE = "random weights: images and numbers mean nothing; LPIPS with a random backbone"


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def results():
    return synthetic_results(3, groups=(0.5, 2.0, 5.0))


@pytest.fixture(scope="module")
def results4():
    """Four paths (slerp added as a copy of CLIP) with the measures beyond PPL."""
    base = synthetic_results(3, groups=(0.5, 2.0, 5.0))
    slerp = base[base["path"] == "clip"].assign(path="slerp")
    out = pd.concat([base, slerp], ignore_index=True)
    rng = np.random.default_rng(0)
    return out.assign(path_efficiency=rng.uniform(0.2, 1.0, len(out)), excursion=rng.uniform(0.3, 1.5, len(out)),
                      perceptual_length=rng.uniform(1, 2, len(out)))


def title_inside_figure(fig):
    """Whether the drawn title's bounding box lies within the figure's."""
    fig.canvas.draw()
    box = fig._suptitle.get_window_extent()
    whole = fig.bbox
    return box.x0 >= whole.x0 - 0.5 and box.x1 <= whole.x1 + 0.5 and box.y0 >= whole.y0 - 0.5 and box.y1 <= whole.y1 + 0.5


def strips(k=4, size=8, seed=0):
    rng = np.random.default_rng(seed)
    return {c: rng.uniform(0, 1, (k + 1, 3, size, size)).astype(np.float32) for c in ("ot", "clip", "random")}


def test_ppl_cost_boxplots_has_two_panels_by_group_and_coupling(results):
    fig = ppl_cost_boxplots(results, note=NOTE)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2
    ppl_ax, cost_ax = fig.axes
    assert [t.get_text() for t in ppl_ax.get_xticklabels()] == ["0.5", "2.0", "5.0"]
    assert [t.get_text() for t in ppl_ax.get_legend().get_texts()] == ["OT", "CLIP", "Random"]
    assert cost_ax.get_legend() is None
    assert len(ppl_ax.patches) >= 9  # one box per (group, coupling)
    assert fig.get_suptitle().endswith("\n" + NOTE)


def test_similarity_figures(results):
    w2 = w2_vs_similarity(results)
    assert len(w2.axes) == 1 and "\n" not in w2.get_suptitle()
    excess = excess_cost_vs_similarity(results, note=NOTE)
    assert [ax.get_title() for ax in excess.axes] == ["CLIP", "Random"]  # panels: CLIP is not squashed
    assert excess.axes[0].get_ylim() != excess.axes[1].get_ylim()
    assert NOTE in excess.get_suptitle()


def test_image_strips_rows_are_couplings_and_columns_steps():
    data = strips(k=4)
    data["clip"] = torch.from_numpy(data["clip"])  # tensors are accepted, bfloat16 too
    data["random"] = torch.from_numpy(data["random"]).bfloat16()
    fig = image_strips({c: data[c] for c in ("random", "clip", "ot")}, prompts=("a cat", "a dog"),
                       title="pair p1", note=NOTE)
    assert len(fig.axes) == 3 * 5
    assert [fig.axes[5 * r].get_ylabel() for r in range(3)] == ["OT", "CLIP", "Random"]
    subscripts = "₀₁₂₃₄"
    assert [ax.get_title() for ax in fig.axes[:5]] == [f"t{subscripts[k]} = {k / 4:.2g}" for k in range(5)]
    np.testing.assert_array_equal(fig.axes[0].get_images()[0].get_array(), data["ot"][0].transpose(1, 2, 0))
    assert fig.get_suptitle() == f"pair p1\nA: a cat\nB: a dog\n{NOTE}"


def test_image_strips_reject_bad_input():
    good = strips()
    with pytest.raises(ValueError, match=r"strip 'clip' must have shape \(K \+ 1, 3, H, W\).*\(5, 8, 8\)"):
        image_strips({**good, "clip": good["clip"][:, 0]}, prompts=("a", "b"))
    with pytest.raises(ValueError, match=r"strip 'ot' must hold values in \[0, 1\], got \[-1"):
        image_strips({**good, "ot": good["ot"] * 2 - 1}, prompts=("a", "b"))
    with pytest.raises(ValueError, match="same shape"):
        image_strips({**good, "random": strips(k=3)["random"]}, prompts=("a", "b"))
    with pytest.raises(ValueError, match=r"got keys \['ot', 'clip', 'random', 'linear'\]"):
        image_strips({**good, "linear": good["ot"]}, prompts=("a", "b"))
    with pytest.raises(ValueError, match="two prompts"):
        image_strips(good, prompts=("a",))


def test_save_figure_writes_png_and_pdf(tmp_path, results):
    paths = save_figure(w2_vs_similarity(results), tmp_path / "figs", "w2")
    assert [p.name for p in paths] == ["w2.png", "w2.pdf"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert paths[1].read_bytes()[:5] == b"%PDF-"
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == ["w2.pdf", "w2.png"]  # no temp files
    with pytest.raises(ValueError, match="unknown figure format.*docx"):
        save_figure(Figure(), tmp_path, "x", formats=("png", "docx"))
    assert not (tmp_path / "x.png").exists()


def test_bad_results_are_errors_naming_the_pair(results):
    broken = results[~((results["pair_id"] == "g2.0-p001") & (results["path"] == "clip"))]
    with pytest.raises(ValueError, match=r"'g2\.0-p001' \(no clip\)"):
        ppl_cost_boxplots(broken)


@pytest.mark.parametrize("env, chosen", [
    ({}, ["Agg"]),
    ({"MPLBACKEND": "module://matplotlib_inline.backend_inline"}, []),  # a Jupyter kernel
    ({"DISPLAY": ":0"}, []),
])
def test_agg_only_when_headless_and_no_backend_chosen(monkeypatch, env, chosen):
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "MPLBACKEND"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(plots.sys, "platform", "linux")
    used = []
    monkeypatch.setattr(matplotlib, "use", used.append)
    plots._agg_when_headless()
    assert used == chosen


def figures_with_note(results4, note, model):
    data = strips(k=3)
    return {
        "figure3": ppl_cost_boxplots(results4, model=model, note=note),
        "measures": measures_boxplots(results4, model=model, note=note),
        "w2": w2_vs_similarity(results4, model=model, note=note),
        "excess": excess_cost_vs_similarity(results4, model=model, note=note),
        "strips": image_strips(data, prompts=("a cat", "a dog"), model=model, note=note),
        "steps": path_strips_with_steps(data, {c: [0.1, 0.2, 0.3] for c in data}, prompts=("a", "b"),
                                        model=model, note=note),
        "tokens": coupling_tokens(["a", "b", "c"], ["c", "b", "a"], {"ot": [2, 1, 0], "clip": [0, 1, 2]},
                                  prompts=("a", "b"), model=model, note=note),
    }


def test_titles_with_the_caveat_fit_inside_every_figure(results4):
    """The caveat used to be cut off at the right edge of the W2 and excess-cost figures."""
    for name, fig in figures_with_note(results4, LONG_NOTE, "stable-diffusion-v1-5/stable-diffusion-v1-5").items():
        title = fig.get_suptitle()
        assert "".join(title.split()).endswith("".join(LONG_NOTE.split())), name  # wrapped, never cut
        assert "model: stable-diffusion-v1-5/stable-diffusion-v1-5" in title, name
        assert title_inside_figure(fig), name
        plt.close(fig)


def test_figures_draw_four_paths_in_order(results4):
    fig = ppl_cost_boxplots(results4)
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["OT", "CLIP", "Random", "Slerp"]
    assert "model:" not in fig.get_suptitle()
    data = strips(k=2)
    data["slerp"] = data["ot"]
    fig = image_strips(data, prompts=("a", "b"))
    assert [fig.axes[3 * r].get_ylabel() for r in range(4)] == ["OT", "CLIP", "Random", "Slerp"]


def test_measures_boxplots_one_panel_per_measure(results4):
    fig = measures_boxplots(results4, note=NOTE)
    assert len(fig.axes) == 4
    assert [ax.get_ylabel().split("\n")[0] for ax in fig.axes] == [
        "perceptual length", "path efficiency", "excursion", "smoothness"]
    assert "Σ √d_k" in fig.axes[0].get_ylabel()
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["OT", "CLIP", "Random", "Slerp"]
    assert len(fig.axes[0].patches) >= 12
    with pytest.raises(ValueError, match="lack column"):
        measures_boxplots(results4.drop(columns="excursion"))


def test_few_pairs_are_drawn_as_points_over_the_boxes(results):
    few = ppl_cost_boxplots(results)  # 3 pairs per group
    assert len(few.axes[0].collections) > 0  # the points (seaborn draws them as scatter collections)
    assert "PPL at K = 4" in few.axes[0].get_ylabel()
    many = ppl_cost_boxplots(synthetic_results(FEW_PAIRS, groups=(0.5, 2.0)))
    assert len(many.axes[0].collections) == 0


def test_coupling_tokens_labels_and_rows_in_place():
    fig = coupling_tokens(["<bos>", "cat", "<eos>", "<eos>"], ["<bos>", "dog", "red", "<eos>"],
                          {"ot": [0, 2, 1, 3], "clip": [0, 1, 2, 3]}, prompts=("cat", "red dog"))
    ot_ax, clip_ax = fig.axes[:2]
    assert [t.get_text() for t in ot_ax.get_yticklabels()] == ["<bos>", "cat", "<eos>", "<eos>"]
    right = [ax for ax in fig.axes[2:] if ax.bbox.bounds == ot_ax.bbox.bounds][0]
    assert [t.get_text() for t in right.get_yticklabels()] == ["<bos>", "dog", "red", "<eos>"]
    assert ot_ax.get_title().splitlines()[0] == "OT: 2 of 4 rows in place"
    assert clip_ax.get_title().splitlines()[0] == "CLIP: 4 of 4 rows in place"
    lines = [line.get_ydata().tolist() for line in ot_ax.get_lines()]
    assert lines == [[0, 0], [1, 2], [2, 1], [3, 3]]
    with pytest.raises(ValueError, match=r"perms\['ot'\] must be a permutation of 0..3"):
        coupling_tokens(["a"] * 4, ["b"] * 4, {"ot": [0, 0, 1, 2]}, prompts=("a", "b"))


def sd3_tokens(words):
    """SD3-like labels: 77 CLIP rows (BOS, words, EOS padded with EOS), then 256 T5 rows (words, EOS, <pad>)."""
    clip = ["CLIP:<|startoftext|>"] + [f"CLIP:{w}</w>" for w in words] + ["CLIP:<|endoftext|>"] * (76 - len(words))
    return clip + [f"T5:▁{w}" for w in words] + ["T5:</s>"] + ["T5:<pad>"] * (255 - len(words))


def texts(ax):
    return [t.get_text() for t in ax.texts]


def test_coupling_tokens_collapses_padding_of_long_token_sets_exactly():
    a, b = sd3_tokens(["a", "photo", "of", "a", "cat"]), sd3_tokens(["a", "red", "dog"])
    ot = np.arange(333)
    for i, j in [(2, 40), (80, 200), (250, 300), (251, 252)]:  # word <-> padding, then padding <-> padding
        ot[[i, j]] = ot[[j, i]]
    fig = coupling_tokens(a, b, {"ot": ot, "clip": np.arange(333)}, prompts=("a photo of a cat", "a red dog"))
    assert fig.get_figheight() <= 0.16 * 100 + 1.8
    ot_ax, clip_ax = fig.axes[:2]
    assert ot_ax.get_title().splitlines()[0] == "OT: 325 of 333 rows in place"  # over all rows, not the drawn ones
    assert clip_ax.get_title().splitlines()[0] == "CLIP: 333 of 333 rows in place"
    left = [t.get_text() for t in ot_ax.get_yticklabels()]
    right = [t.get_text() for t in [ax for ax in fig.axes[2:] if ax.bbox.bounds == ot_ax.bbox.bounds][0].get_yticklabels()]
    # every word, BOS and EOS row is drawn, and so is each padding row a coupling links to one
    assert left[:7] == a[:7] and right[:7] == b[:7] and left[8] == a[40] and right[8] == b[40]
    assert [t for t in left if t.startswith("T5:▁")] == ["T5:▁a", "T5:▁photo", "T5:▁of", "T5:▁a", "T5:▁cat"]
    assert left.count("CLIP:<|endoftext|>") == 2  # EOS and the padding row 40 that "photo" goes to
    assert "T5:</s>" in left and "T5:</s>" in right and left.count("T5:<pad>") == 2  # first <pad>, row 200
    # rows 0..6, 40, 77..83 and 200 drawn; the bands: CLIP rows 7..39 and 41..76, T5 rows 84..199 and 201..332
    assert len(left) == 16 + 4
    assert [t for t in left if t.startswith("…")] == [
        "… 33 × CLIP:<|endoftext|>", "… 36 × CLIP:<|endoftext|>", "… 116 × T5:<pad>", "… 132 × T5:<pad>"]
    assert texts(ot_ax) == ["… 33 padding rows (33 kept in place) …", "… 36 padding rows (36 kept in place) …",
                            "… 116 padding rows (116 kept in place) …", "… 132 padding rows (128 kept in place) …"]
    assert texts(clip_ax)[-1] == "… 132 padding rows (132 kept in place) …"
    lines = {tuple(line.get_ydata()) for line in ot_ax.get_lines()}
    assert {(2, 8), (8, 2), (13, 18), (18, 13), (19, 19)} <= lines  # photo <-> row 40; T5 a <-> row 200


def test_coupling_tokens_caps_the_drawn_rows_by_banding_rows_kept_in_place():
    words = [f"w{i}</w>" for i in range(300)]
    perm = np.arange(300)
    perm[[10, 250]] = perm[[250, 10]]
    fig = coupling_tokens(words, words, {"ot": perm}, prompts=("a", "b"), max_rows=40)
    left = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert len(left) <= 40 and {"w10</w>", "w250</w>"} <= set(left)
    assert fig.axes[0].get_title().splitlines()[0] == "OT: 298 of 300 rows in place"
    bands = [int(t.split()[1]) for t in texts(fig.axes[0])]
    assert sum(bands) + len(left) - len(bands) == 300  # every row drawn or counted in one band
    assert all(t.endswith("kept in place) …") and "padding" not in t for t in texts(fig.axes[0]))
    assert len(coupling_tokens(words[:77], words[:77], {"ot": np.arange(77)}, prompts=("a", "b"))
               .axes[0].get_yticklabels()) == 77  # up to max_rows, every row is drawn
    with pytest.raises(ValueError, match="max_rows must be a positive integer"):
        coupling_tokens(words, words, {"ot": perm}, prompts=("a", "b"), max_rows=0)


def test_path_strips_with_steps_draws_each_path_curve():
    data = strips(k=4)
    d = {c: np.arange(4) / 10 + i for i, c in enumerate(data)}
    fig = path_strips_with_steps(data, d, prompts=("a", "b"), legends={"ot": "PPL 0.15"}, note=NOTE)
    curve_ax = fig.axes[-1]
    assert len(fig.axes) == 3 * 5 + 1
    assert [t.get_text() for t in curve_ax.get_legend().get_texts()] == ["OT: PPL 0.15", "CLIP", "Random"]
    np.testing.assert_allclose(curve_ax.get_lines()[1].get_ydata(), d["clip"])
    with pytest.raises(ValueError, match="K = 4 steps"):
        path_strips_with_steps(data, {**d, "ot": [0.1]}, prompts=("a", "b"))


def test_coupling_tokens_marks_content_and_padding_from_masks():
    tokens_a = ["<bos>", "cat", "<eos>", "<eos>"]
    tokens_b = ["<bos>", "dog", "red", "<eos>"]
    content = (np.array([1, 1, 1, 0], bool), np.array([1, 1, 1, 1], bool))
    fig = coupling_tokens(tokens_a, tokens_b, {"ot": [0, 3, 1, 2]}, prompts=("cat", "red dog"), content=content)
    ax = fig.axes[0]
    assert "2 content row(s) of A to padding of B" not in ax.get_title()
    assert "0 content row(s) of A to padding of B" in ax.get_title()  # B has no padding rows
    assert [t.get_color() for t in ax.get_yticklabels()] == ["black", "black", "black", "0.55"]
    fig = coupling_tokens(tokens_b, tokens_a, {"ot": [0, 3, 1, 2]}, prompts=("red dog", "cat"),
                          content=content[::-1])
    assert "1 content row(s) of A to padding of B" in fig.axes[0].get_title()  # "dog" goes to B's padding row
    with pytest.raises(ValueError, match="content must be two masks of 4 rows"):
        coupling_tokens(tokens_a, tokens_b, {"ot": [0, 1, 2, 3]}, prompts=("a", "b"), content=(content[0][:3], content[1]))
