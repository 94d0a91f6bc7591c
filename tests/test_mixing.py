"""Mixing three prompts: the weight lattice, its cells rendered on tiny models of each kind of family, the figure."""

import itertools

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from otinterp import explore as E
from otinterp import mixing as M
from otinterp.run import Run
from otinterp.experiment import path_embeddings
from otinterp.families import family_of
from otinterp.plots import save_figure

#: Bundled captions whose OT couplings move rows on every tiny model (on ``tiny`` short prompts often do not).
PROMPTS = ("A red stop sign on the corner of a street.", "Two zebras grazing in a grassy field.",
           "A bowl of fruit sitting on a kitchen counter.")


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.mark.parametrize("r", [1, 2, 3, 5])
def test_weight_grid_is_the_lattice_on_the_simplex_in_a_fixed_order(r):
    w = M.weight_grid(r)
    assert w.shape == ((r + 1) * (r + 2) // 2, 3)
    assert (w >= 0).all() and np.array_equal(w.sum(axis=1), np.ones(len(w)))
    assert len({tuple(row) for row in np.round(w * r).astype(int)}) == len(w)  # every lattice point once
    np.testing.assert_array_equal(w[[0, -r - 1, -1]], np.eye(3))  # A top, B bottom left, C bottom right
    np.testing.assert_array_equal(M.weight_grid(r), w)


@pytest.mark.parametrize("r", [1, 2, 3, 4])
def test_edges_join_exactly_the_neighbouring_cells(r):
    w, edges, xy = M.weight_grid(r), M.grid_edges(r), M.grid_positions(r)
    assert edges.shape == (3 * r * (r + 1) // 2, 2) and (edges[:, 0] < edges[:, 1]).all()
    for u, v in edges:  # two weights move by 1/r, the cells are one spacing apart
        assert np.count_nonzero(np.abs(w[u] - w[v]) > 1e-12) == 2
        np.testing.assert_allclose(np.abs(w[u] - w[v]).max(), 1 / r)
    neighbours = {(u, v) for u, v in itertools.combinations(range(len(w)), 2)
                  if np.isclose(np.linalg.norm(xy[u] - xy[v]), 1.0)}
    assert neighbours == {tuple(e) for e in edges.tolist()}


def test_bad_resolution():
    for r in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="resolution r must be an integer >= 1"):
            M.weight_grid(r)


@pytest.fixture(scope="module", params=["tiny", "sdxl-tiny", "flux-tiny"])
def mixed(request):
    params = Run.open("smoke", model=request.param, steps=1).config
    pipe, lpips_model = E.load_models(params)
    return pipe, params, M.mix_prompts(pipe, lpips_model, PROMPTS, params, r=2)


def test_grids_render_from_one_latent_and_share_their_corners(mixed):
    _, params, mx = mixed
    assert mx.methods == ["ot", "mean"] and mx.r == 2 and mx.model == params.model
    for method in mx.methods:
        images = mx.images[method]
        assert images.shape == (6, 3, 64, 64) and torch.isfinite(images).all()
        assert mx.steps[method].shape == (9,) and np.isfinite(mx.steps[method]).all()
        assert mx.objectives[method].shape == (6,)
    corners = [0, 3, 5]
    torch.testing.assert_close(mx.images["ot"][corners], mx.images["mean"][corners], rtol=0, atol=1e-5)
    assert (mx.objectives["ot"][corners] == 0).all() and (mx.objectives["mean"][corners] == 0).all()
    assert (mx.objectives["ot"] <= mx.objectives["mean"] + 1e-9).all()
    lower = np.flatnonzero(mx.objectives["ot"] < mx.objectives["mean"] - 1e-9)
    assert len(lower) and all(not torch.equal(mx.images["ot"][k], mx.images["mean"][k]) for k in lower)
    rows = M.measure_rows(mx)
    assert [r["method"] for r in rows] == ["ot", "mean"] and all(np.isfinite(r["max_step"]) for r in rows)


def test_an_edge_of_the_ot_triangle_is_the_experiment_s_ot_path(mixed):
    """Between A and B (C's weight 0) the barycenter is the OT geodesic's point and the global vector
    is the experiment's straight line."""
    pipe, _, _ = mixed
    cond = family_of(pipe).encode(pipe, list(PROMPTS)).to("cpu", torch.float32)
    conds = [cond[k] for k in range(3)]
    r = 4
    grid = M.mix_grid(conds, M.weight_grid(r), "ot")
    edge = [i * (i + 1) // 2 for i in range(1, r)]  # cells (i, 0): weights ((r - i) / r, i / r, 0)
    pooled = None if conds[0].pooled is None else (conds[0].pooled, conds[1].pooled)
    path = path_embeddings(conds[0].tokens, conds[1].tokens, "p", seed=0, n_intervals=r, paths=["ot"],
                           pooled=pooled, fixed_rows=family_of(pipe).fixed_rows)["ot"]
    for k, cell in enumerate(edge):
        got, want = (np.asarray(z, dtype=np.float64) for z in (grid.tokens[cell], path["interior"][k]))
        np.testing.assert_allclose(got[np.lexsort(got.T[::-1])], want[np.lexsort(want.T[::-1])], rtol=0, atol=1e-6)
    if pooled is None:
        assert grid.pooled is None
    else:
        torch.testing.assert_close(grid.pooled[edge], path["pooled"], rtol=0, atol=1e-6)


def test_figure_names_model_and_caveat_and_saves(mixed, tmp_path):
    _, params, mx = mixed
    fig = M.triangles_figure(mx)
    title = fig._suptitle.get_text().replace("\n", " ")
    assert f"model: {params.model}" in title and "random weights" in title and "A: A red stop sign" in title
    assert len(fig.axes) == 3  # two triangles and the colour bar
    (png,) = save_figure(fig, tmp_path, "triangle", formats=("png",))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_arguments(mixed):
    pipe, params, _ = mixed
    with pytest.raises(ValueError, match="exactly 3 prompts"):
        M.mix_prompts(pipe, None, PROMPTS[:2], params)
    with pytest.raises(ValueError, match="methods must be distinct names of ot, mean"):
        M.mix_prompts(pipe, None, PROMPTS, params, methods=["ot", "slerp"])
