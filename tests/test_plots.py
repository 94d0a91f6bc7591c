import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from otinterp import plots
from otinterp.plots import (
    excess_cost_vs_similarity, image_strips, ppl_cost_boxplots, save_figure, w2_vs_similarity,
)
from test_stats import synthetic_results

NOTE = "random weights: images mean nothing"


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def results():
    return synthetic_results(3, groups=(0.5, 2.0, 5.0))


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
    assert len(excess.axes) == 1
    assert [t.get_text() for t in excess.axes[0].get_legend().get_texts()] == ["CLIP", "Random"]
    assert NOTE in excess.get_suptitle()


def test_image_strips_rows_are_couplings_and_columns_steps():
    data = strips(k=4)
    data["clip"] = torch.from_numpy(data["clip"])  # tensors are accepted, bfloat16 too
    data["random"] = torch.from_numpy(data["random"]).bfloat16()
    fig = image_strips({c: data[c] for c in ("random", "clip", "ot")}, prompts=("a cat", "a dog"),
                       title="pair p1", note=NOTE)
    assert len(fig.axes) == 3 * 5
    assert [fig.axes[5 * r].get_ylabel() for r in range(3)] == ["OT", "CLIP", "Random"]
    assert [ax.get_title() for ax in fig.axes[:5]] == [f"$t_{{{k}}}$ = {k / 4:.2g}" for k in range(5)]
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
    broken = results[~((results["pair_id"] == "g2.0-p001") & (results["coupling"] == "clip"))]
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
