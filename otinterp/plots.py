"""Figures of the paper's section 4: box plots by similarity group, image strips, cost against similarity.

Every function returns a pyplot :class:`~matplotlib.figure.Figure`, so a notebook shows it at the
end of the cell; scripts that draw many should ``plt.close(fig)`` after :func:`save_figure`.
Without a display and without a backend chosen (Jupyter chooses its inline one through
``MPLBACKEND``), the module selects ``Agg``. Figures are drawn in seaborn's ``whitegrid`` style
inside a context, leaving the global rcParams alone. Every function takes ``note``, a line
appended to the title, used to say for example that images from random-weight models mean nothing.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from otinterp.couplings import COUPLINGS
from otinterp.io import atomic_write
from otinterp.stats import LABELS, per_pair

__all__ = [
    "PALETTE", "ppl_cost_boxplots", "image_strips", "w2_vs_similarity", "excess_cost_vs_similarity",
    "save_figure",
]

#: One colour per coupling, shared by every figure.
PALETTE = dict(zip(COUPLINGS, sns.color_palette("colorblind", len(COUPLINGS))))

_GROUP_LABEL = "similarity group"


def _agg_when_headless() -> None:
    """Select ``Agg`` when no backend was asked for and there is no display to open windows on."""
    display = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    if sys.platform.startswith("linux") and not display and not os.environ.get("MPLBACKEND"):
        matplotlib.use("Agg")


_agg_when_headless()


def _styled(draw: Callable[..., Figure]) -> Callable[..., Figure]:
    """Run ``draw`` in the package's seaborn style without changing the global rcParams."""
    @functools.wraps(draw)
    def wrapper(*args: Any, **kwargs: Any) -> Figure:
        with sns.axes_style("whitegrid"), sns.plotting_context("paper"):
            return draw(*args, **kwargs)
    return wrapper


def _title(text: str, note: str | None) -> str:
    return text if note is None else f"{text}\n{note}"


def _long(results: pd.DataFrame, metric: str, couplings: Sequence[str]) -> pd.DataFrame:
    """``metric`` in long form (``group``, ``coupling``, value), checked by :func:`per_pair`."""
    wide = per_pair(results, metric, couplings)
    return wide.melt(id_vars="group", var_name="coupling", value_name=metric)


def _boxes(ax, data: pd.DataFrame, y: str, ylabel: str) -> None:
    """Box plots of ``y`` by similarity group, one box per coupling in the data."""
    hue_order = [c for c in COUPLINGS if c in set(data["coupling"])]
    sns.boxplot(data=data, x="group", y=y, hue="coupling", order=sorted(data["group"].unique()),
                hue_order=hue_order, palette=PALETTE, fliersize=2, linewidth=0.8, ax=ax)
    ax.set(xlabel=_GROUP_LABEL, ylabel=ylabel)
    handles, names = ax.get_legend_handles_labels()
    ax.legend(handles, [LABELS[n] for n in names], title="coupling")


@_styled
def ppl_cost_boxplots(results: pd.DataFrame, *, note: str | None = None) -> Figure:
    """The paper's Figure 3: PPL (left) and coupling cost (right) by similarity group and coupling.

    Parameters
    ----------
    results : DataFrame
        The experiment's results, one row per (pair, coupling).
    note : str, optional
        A line appended to the title.

    Returns
    -------
    fig : Figure
        Two axes.
    """
    fig = plt.figure(figsize=(12, 4.2), layout="constrained")
    axes = fig.subplots(1, 2)
    _boxes(axes[0], _long(results, "ppl", COUPLINGS), "ppl", "PPL (mean LPIPS between steps)")
    _boxes(axes[1], _long(results, "cost", COUPLINGS), "cost", "coupling cost C(σ)")
    axes[1].get_legend().remove()
    fig.suptitle(_title("PPL and coupling cost by similarity group", note))
    return fig


def _strip_array(images: Any, coupling: str) -> np.ndarray:
    """``images`` as a float32 ``(K + 1, 3, H, W)`` array in ``[0, 1]``."""
    if hasattr(images, "detach"):  # a torch tensor, maybe on a GPU or in bfloat16 (which numpy lacks)
        images = images.detach().float().cpu()
    arr = np.asarray(images, dtype=np.float32)
    if arr.ndim != 4 or arr.shape[1] != 3 or arr.shape[0] < 2:
        raise ValueError(f"strip {coupling!r} must have shape (K + 1, 3, H, W) with K >= 1, got {arr.shape}")
    if arr.min() < 0 or arr.max() > 1:
        raise ValueError(f"strip {coupling!r} must hold values in [0, 1], got [{arr.min():.3g}, {arr.max():.3g}]")
    return arr


@_styled
def image_strips(strips: Mapping[str, Any], *, prompts: Sequence[str], title: str | None = None,
                 note: str | None = None) -> Figure:
    """The paper's Figure 2 for one pair: the images along each coupling's path.

    Parameters
    ----------
    strips : mapping of str to (K + 1, 3, H, W) array or tensor (any device and float dtype)
        Images ``I_0..I_K`` in ``[0, 1]`` per coupling (``"ot"``, ``"clip"``, ``"random"``).
    prompts : (2,) sequence of str
        The pair's prompts A and B, shown in the title.
    title : str, optional
        A first title line (e.g. the pair id and PPLs).
    note : str, optional
        A line appended to the title.

    Returns
    -------
    fig : Figure
        ``len(strips) × (K + 1)`` axes: rows in the order OT, CLIP, random; columns ``t_0..t_K``.
    """
    unknown = [c for c in strips if c not in COUPLINGS]
    if unknown or not strips:
        raise ValueError(f"strips must map couplings {', '.join(COUPLINGS)} to images, got keys {list(strips)}")
    if len(prompts) != 2:
        raise ValueError(f"prompts must be the pair's two prompts (A, B), got {len(prompts)}")
    rows = {c: _strip_array(strips[c], c) for c in COUPLINGS if c in strips}
    shapes = {c: a.shape for c, a in rows.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"strips must all have the same shape, got {shapes}")
    n_cols = next(iter(shapes.values()))[0]
    fig = plt.figure(figsize=(1.5 * n_cols + 0.6, 1.5 * len(rows) + 1.0), layout="constrained")
    axes = fig.subplots(len(rows), n_cols, squeeze=False)
    for ax_row, (coupling, images) in zip(axes, rows.items()):
        for ax, image in zip(ax_row, images):
            ax.imshow(image.transpose(1, 2, 0))
            ax.set(xticks=[], yticks=[])
            ax.grid(False)
        ax_row[0].set_ylabel(LABELS[coupling])
    for k, ax in enumerate(axes[0]):
        ax.set_title(f"$t_{{{k}}}$ = {k / (n_cols - 1):.2g}")
    lines = ([title] if title else []) + [f"A: {prompts[0]}", f"B: {prompts[1]}"]
    fig.suptitle(_title("\n".join(lines), note))
    return fig


@_styled
def w2_vs_similarity(results: pd.DataFrame, *, note: str | None = None) -> Figure:
    """``W2`` between the two prompt embeddings of each pair, by similarity group.

    Parameters
    ----------
    results : DataFrame
        The experiment's results, one row per (pair, coupling).
    note : str, optional
        A line appended to the title.

    Returns
    -------
    fig : Figure
        One axes.
    """
    fig = plt.figure(figsize=(6.5, 4.2), layout="constrained")
    ax = fig.subplots()
    _boxes(ax, _long(results, "w2", ["ot"]), "w2", "W2 (cost of the OT coupling)")
    ax.get_legend().remove()
    fig.suptitle(_title("Wasserstein distance of the prompt embeddings against similarity", note))
    return fig


@_styled
def excess_cost_vs_similarity(results: pd.DataFrame, *, note: str | None = None) -> Figure:
    """Relative excess cost ``C(σ)/W2 − 1`` of the CLIP and random couplings, by similarity group.

    Parameters
    ----------
    results : DataFrame
        The experiment's results, one row per (pair, coupling).
    note : str, optional
        A line appended to the title.

    Returns
    -------
    fig : Figure
        One axes.
    """
    data = _long(results, "cost_ratio", [c for c in COUPLINGS if c != "ot"])
    data["excess"] = data["cost_ratio"] - 1
    fig = plt.figure(figsize=(6.5, 4.2), layout="constrained")
    ax = fig.subplots()
    _boxes(ax, data, "excess", "relative excess cost C(σ)/W2 − 1")
    fig.suptitle(_title("Relative excess path length of suboptimal couplings against similarity", note))
    return fig


def save_figure(fig: Figure, directory: str | Path, name: str, *, formats: Sequence[str] = ("png", "pdf"),
                dpi: int = 150) -> list[Path]:
    """Write ``fig`` as ``directory/name.<format>`` for each format, atomically.

    Parameters
    ----------
    fig : Figure
        The figure.
    directory : str or Path
        Created if missing.
    name : str
        File name without extension.
    formats : sequence of str
        Any format matplotlib writes (``"png"``, ``"pdf"``, ``"svg"``…).
    dpi : int
        Resolution of raster formats.

    Returns
    -------
    paths : list of Path
        The files written, in the order of ``formats``.
    """
    supported = fig.canvas.get_supported_filetypes()
    unknown = [f for f in formats if f not in supported]
    if unknown:
        raise ValueError(f"unknown figure format(s) {', '.join(unknown)}; supported: {', '.join(sorted(supported))}")
    return [atomic_write(lambda tmp, f=f: fig.savefig(tmp, format=f, dpi=dpi), Path(directory) / f"{name}.{f}")
            for f in formats]
