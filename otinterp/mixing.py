"""Mixing three prompts: images over a triangle of barycentric weights, by W2 barycenter and by row-wise mean.

For prompts ``A, B, C`` and a resolution ``r``, the weights ``λ = (a, b, c) / r`` with
non-negative integers ``a + b + c = r`` form a triangular lattice on the simplex
(:func:`weight_grid`, ``(r + 1)(r + 2) / 2`` cells). Each cell's conditioning mixes the three
prompts' with its weights (:func:`otinterp.barycenter.mix_conditioning`): the token sets by their
W2 barycenter (``"ot"``) or row-wise mean (``"mean"``), the global vector linearly. Every cell of a
method is rendered in one call of :func:`otinterp.render.render` from one fixed initial latent, so
images differ only through their conditioning. The corners are the prompts themselves, and
along an edge of the triangle the OT barycenter is the OT path between its two prompts (the
geodesic point, docs/definitions.md §13).

The smoothness of a grid (:func:`grid_steps`) is read from its lattice edges, each joining two
cells whose weights differ by ``1/r`` in two prompts: the step ``√LPIPS(I_u, I_v)`` per edge,
their mean and their largest. :func:`mix_prompts` does all of it for three prompts;
:func:`triangles_figure` draws the methods' triangles side by side, labelled with the model and
the caveat like every figure of the package.
"""

from __future__ import annotations

import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from otinterp import plots
from otinterp.barycenter import METHODS, barycenter_objective, mix_conditioning
from otinterp.families import Conditioning
from otinterp.params import Params

__all__ = [
    "METHOD_LABELS", "weight_grid", "grid_edges", "grid_positions", "mix_grid", "grid_steps",
    "Mixing", "mix_prompts", "measure_rows", "triangles_figure", "grid_to_file",
]

#: Display names of the mixing methods.
METHOD_LABELS = {"ot": "W2 barycenter (OT)", "mean": "row-wise mean (CLIP)"}


def _check_resolution(r: int) -> int:
    if isinstance(r, bool) or not isinstance(r, (int, np.integer)) or r < 1:
        raise ValueError(f"the grid resolution r must be an integer >= 1, got {r!r}")
    return int(r)


def _cells(r: int) -> list[tuple[int, int]]:
    """Lattice coordinates ``(i, j)``, ``0 <= j <= i <= r``: row ``i`` from the top, cell ``j`` in it."""
    return [(i, j) for i in range(r + 1) for j in range(i + 1)]


def weight_grid(r: int) -> np.ndarray:
    """Barycentric weights of the triangular lattice of resolution ``r``, in a fixed order.

    Cell ``(i, j)`` (row ``i = 0..r`` from the top, ``j = 0..i`` from the left) has weights
    ``((r − i) / r, (i − j) / r, j / r)`` on ``(A, B, C)``: ``A`` at the top, ``B`` bottom left,
    ``C`` bottom right. Cells are listed row by row.

    Parameters
    ----------
    r : int, >= 1

    Returns
    -------
    weights : ((r + 1)(r + 2) / 2, 3) float64 array
        Non-negative rows summing to 1 (exactly, as the three are multiples of ``1/r``).
    """
    r = _check_resolution(r)
    return np.array([(r - i, i - j, j) for i, j in _cells(r)], dtype=np.float64) / r


def grid_edges(r: int) -> np.ndarray:
    """The lattice's edges: index pairs into :func:`weight_grid` of neighbouring cells.

    Each cell ``(i, j)`` is joined to its right neighbour ``(i, j + 1)`` and to the two cells
    below it, ``(i + 1, j)`` and ``(i + 1, j + 1)``: ``3 r (r + 1) / 2`` edges, along which two
    weights change by ``1/r``.

    Returns
    -------
    edges : (3 r (r + 1) / 2, 2) int64 array, ``edges[e] = (u, v)`` with ``u < v``
    """
    r = _check_resolution(r)
    index = {cell: k for k, cell in enumerate(_cells(r))}
    edges = []
    for (i, j), k in index.items():
        for neighbour in ((i, j + 1), (i + 1, j), (i + 1, j + 1)):
            if neighbour in index:
                edges.append((k, index[neighbour]))
    return np.array(edges, dtype=np.int64)


def grid_positions(r: int) -> np.ndarray:
    """Centres of the cells in the plane, an equilateral triangle of side ``r``: ``(j − i/2, −i √3/2)``.

    Returns
    -------
    xy : ((r + 1)(r + 2) / 2, 2) float64 array, in :func:`weight_grid`'s order
    """
    r = _check_resolution(r)
    return np.array([(j - i / 2, -i * np.sqrt(3) / 2) for i, j in _cells(r)], dtype=np.float64)


def mix_grid(conds: Sequence[Conditioning], weights: np.ndarray, method: str) -> Conditioning:
    """The conditioning of every cell: :func:`~otinterp.barycenter.mix_conditioning` per row of ``weights``.

    Parameters
    ----------
    conds : sequence of m Conditioning
        One prompt's each (``tokens (L, D)``, ``pooled (P,)`` or None).
    weights : (N, m) array
        One row of weights per cell (:func:`weight_grid` for three prompts).
    method : {"ot", "mean"}

    Returns
    -------
    Conditioning
        ``tokens (N, L, D)``, ``pooled (N, P)`` or None: a batch for :func:`otinterp.render.render`.
    """
    cells = [mix_conditioning(conds, w, method) for w in np.asarray(weights, dtype=np.float64)]
    pooled = None if cells[0].pooled is None else torch.stack([c.pooled for c in cells])
    return Conditioning(torch.stack([c.tokens for c in cells]), pooled)


def grid_steps(images: torch.Tensor, edges: np.ndarray, lpips_model: torch.nn.Module, *, batch_size: int = 32,
               resize: int | None = None) -> np.ndarray:
    """The steps ``√LPIPS(I_u, I_v)`` along the lattice's edges.

    Parameters
    ----------
    images : (N, 3, H, W) tensor in [0, 1]
        One grid's images, in :func:`weight_grid`'s order.
    edges : (E, 2) int array
        :func:`grid_edges`.
    lpips_model : LPIPS module (:func:`otinterp.ppl.load_lpips`)
    batch_size, resize
        As :func:`otinterp.ppl.pair_distances`.

    Returns
    -------
    steps : (E,) float64 array
        The grid's smoothness is read from their mean (lower: a smoother grid) and their maximum
        (its largest jump).
    """
    from otinterp.ppl import pair_distances

    edges = np.asarray(edges)
    d = pair_distances(images[edges[:, 0]], images[edges[:, 1]], lpips_model, batch_size=batch_size, resize=resize)
    return np.sqrt(np.maximum(d, 0.0))


@dataclass(frozen=True)
class Mixing:
    """Three prompts mixed over a triangle, by each method, from one initial latent.

    Attributes
    ----------
    prompts : (3,) tuple of str
        ``A`` (top corner), ``B`` (bottom left), ``C`` (bottom right).
    model : str
        The model spec the images come from.
    caveat : str or None
        What every figure of random-weight models must say (:attr:`Params.caveat`).
    seed : int
        Seed of the initial latent.
    r : int
        Grid resolution.
    weights : (N, 3) float array
        :func:`weight_grid` ``(r)``.
    images : dict of str to (N, 3, H, W) float32 tensor in [0, 1]
        Per method, in the order of ``weights``.
    steps : dict of str to (E,) float array
        Per method, ``√LPIPS`` along :func:`grid_edges` ``(r)``.
    objectives : dict of str to (N,) float array
        Per method, ``Σ_i λ_i W2²(Z, X_i)`` of each cell's token set (the barycenter's is the lowest found).
    """

    prompts: tuple[str, str, str]
    model: str
    caveat: str | None
    seed: int
    r: int
    weights: np.ndarray
    images: dict[str, torch.Tensor]
    steps: dict[str, np.ndarray]
    objectives: dict[str, np.ndarray]

    @property
    def methods(self) -> list[str]:
        """The method names, in the order they were rendered."""
        return list(self.images)


def mix_prompts(pipe: Any, lpips_model: torch.nn.Module, prompts: Sequence[str], params: Params, *, r: int = 3,
                seed: int | None = None, methods: Sequence[str] = METHODS, disable: bool = True) -> Mixing:
    """Encode three prompts, mix them over the triangle of resolution ``r`` by each method, render and score.

    Each method's cells (:func:`mix_grid`) are one call of :func:`otinterp.render.render` (in
    batches of ``params.batch_size``, which does not change the images) from the initial latent of
    ``seed``, with the family's fixed unconditional input, so the images differ only through
    their conditioning.

    Parameters
    ----------
    pipe, lpips_model
        As :func:`otinterp.explore.load_models` gives them.
    prompts : sequence of 3 str
    params : Params
        ``steps, guidance, height, width, batch_size, lpips_resize, model`` and ``caveat``.
    r : int
        Grid resolution: ``(r + 1)(r + 2) / 2`` images per method.
    seed : int, optional
        Seed of the initial latent; default the first of ``params.latent_seeds``.
    methods : sequence of str
        Any of ``"ot"``, ``"mean"``.
    disable : bool
        Hide the render progress bar.

    Returns
    -------
    Mixing
    """
    from otinterp.experiment import with_batch_size
    from otinterp.families import family_of
    from otinterp.render import render

    prompts = tuple(prompts)
    if len(prompts) != 3:
        raise ValueError(f"mix_prompts mixes exactly 3 prompts, got {len(prompts)}")
    if not methods or any(m not in METHODS for m in methods) or len(set(methods)) < len(methods):
        raise ValueError(f"methods must be distinct names of {', '.join(METHODS)}, got {list(methods)}")
    weights, edges = weight_grid(r), grid_edges(r)
    seed = params.latent_seeds[0] if seed is None else seed
    params = with_batch_size(params, pipe)
    family = family_of(pipe)
    encoded = family.encode(pipe, list(prompts)).to("cpu", torch.float32)
    conds = [encoded[k] for k in range(3)]
    uncond = family.unconditional(pipe)
    tokens = [c.tokens for c in conds]
    images, steps, objectives = {}, {}, {}
    for method in methods:
        cells = mix_grid(conds, weights, method)
        images[method] = render(pipe, cells.tokens, pooled=cells.pooled, seed=seed, steps=params.steps,
                                guidance=params.guidance, height=params.height, width=params.width,
                                batch_size=params.batch_size, uncond=uncond, disable=disable)
        steps[method] = grid_steps(images[method], edges, lpips_model, batch_size=params.batch_size,
                                   resize=params.lpips_resize)
        objectives[method] = np.array([barycenter_objective(z, tokens, w) for z, w in zip(cells.tokens, weights)])
    return Mixing(prompts, params.model, params.caveat, seed, int(r), weights, images, steps, objectives)


def measure_rows(mixing: Mixing) -> list[dict[str, Any]]:
    """One row per method: mean and largest ``√LPIPS`` step, and the mean W2² objective over the cells."""
    return [{"method": m, "mean_step": float(mixing.steps[m].mean()), "max_step": float(mixing.steps[m].max()),
             "objective": float(mixing.objectives[m].mean())} for m in mixing.methods]


def triangles_figure(mixing: Mixing, *, cell: float = 0.72):
    """The methods' triangles side by side: each cell's image, the lattice edges coloured by their step.

    Parameters
    ----------
    mixing : Mixing
    cell : float
        Image side, in units of the lattice spacing (below 1 leaves the edges visible between images).

    Returns
    -------
    fig : Figure
        One panel per method, titled with its mean and largest step; the prompts, the model and the
        caveat in the figure's title.
    """
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    mx = mixing
    xy, edges = grid_positions(mx.r), grid_edges(mx.r)
    top = max(float(s.max()) for s in mx.steps.values()) or 1.0
    norm = plt.Normalize(0.0, top)
    fig = plt.figure(figsize=(4.2 * len(mx.methods) + 0.8, 5.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(mx.methods)))
    half = cell / 2
    for ax, method in zip(axes, mx.methods):
        lines = LineCollection(xy[edges], array=mx.steps[method], cmap="magma_r", norm=norm, linewidths=4, zorder=1)
        ax.add_collection(lines)
        for (x, y), image in zip(xy, mx.images[method]):
            ax.imshow(image.clamp(0, 1).permute(1, 2, 0).numpy(), extent=(x - half, x + half, y - half, y + half),
                      zorder=2, interpolation="nearest")
        for label, k in zip("ABC", (0, len(xy) - mx.r - 1, len(xy) - 1)):
            above = label == "A"
            x, y = xy[k]
            ax.text(x, y + (half + 0.05) * (1 if above else -1), label, ha="center", va="bottom" if above else "top",
                    fontweight="bold")
        ax.set(xlim=(-mx.r / 2 - 0.6, mx.r / 2 + 0.6), ylim=(xy[:, 1].min() - 0.8, 0.8), aspect="equal")
        ax.axis("off")
        ax.set_title(f"{METHOD_LABELS[method]}\nmean step {mx.steps[method].mean():.3g}, "
                     f"largest {mx.steps[method].max():.3g}")
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap="magma_r"), ax=axes, shrink=0.6,
                 label="√LPIPS between neighbouring cells")
    lines = [f"{label}: {textwrap.shorten(p, 80)}" for label, p in zip("ABC", mx.prompts)]
    text = f"Three prompts mixed with weights on a triangle (r = {mx.r}); latent seed {mx.seed}\n" + "\n".join(lines)
    plots.set_suptitle(fig, plots.title_lines(text, mx.caveat, mx.model))
    return fig


def grid_to_file(params: Params, prompts: Sequence[str], out: str | Path, *, r: int = 3) -> list[Path]:
    """``otinterp mix``: the triangles of three prompts (:func:`triangles_figure`) as ``out`` (PNG),
    with the grids' smoothness printed; returns the files written."""
    from otinterp.explore import load_models

    out = Path(out)
    if out.suffix.lower() != ".png":
        raise ValueError(f"the grid is written as PNG: give a .png file, got {out}")
    pipe, lpips_model = load_models(params)
    mixing = mix_prompts(pipe, lpips_model, prompts, params, r=r)
    if params.caveat:
        print("NOTE:", params.caveat, file=sys.stderr)
    for row in measure_rows(mixing):
        print(", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
    return plots.save_figure(triangles_figure(mixing), out.parent, out.stem, formats=("png",))
