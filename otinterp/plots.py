"""Figures of the paper's section 4: box plots by similarity group, image strips, cost against similarity.

Every function returns a pyplot :class:`~matplotlib.figure.Figure`, so a notebook shows it at the
end of the cell; scripts that draw many should ``plt.close(fig)`` after :func:`save_figure`.
Without a display and without a backend chosen (Jupyter chooses its inline one through
``MPLBACKEND``), the module selects ``Agg``. Figures are drawn in seaborn's ``whitegrid`` style
inside a context, leaving the global rcParams alone. Every function takes ``note``, a line
appended to the title, used to say for example that images from random-weight models mean nothing;
titles are wrapped to the figure's width so the note is never cut off. Figures by coupling draw
whichever of the paths ``ot``, ``clip``, ``random`` and ``slerp`` the results hold.
"""

from __future__ import annotations

import functools
import os
import re
import sys
import textwrap
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from otinterp.names import BEYOND_PPL, MEASURE_LABELS, PATH_LABELS, PATHS
from otinterp.io import atomic_write
from otinterp.stats import LABELS, per_pair

__all__ = [
    "styled", "title_lines", "set_suptitle", "PALETTE", "PATH_LABELS", "MEASURE_LABELS", "MARKERS", "LINESTYLES",
    "FEW_PAIRS", "ppl_cost_boxplots", "measures_boxplots", "image_strips",
    "w2_vs_similarity", "excess_cost_vs_similarity", "path_strips_with_steps", "coupling_tokens",
    "save_figure",
]

#: One colour per path (the three couplings, then slerp), shared by every figure.
PALETTE = dict(zip(PATHS, sns.color_palette("colorblind", len(PATHS))))


_GROUP_LABEL = "similarity group"

_SUBSCRIPTS = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")

#: Below this many pairs per group and path, box plots also draw every pair as a point.
FEW_PAIRS = 20

#: One marker and line style per path, so paths stay apart without colour.
MARKERS = {"ot": "o", "clip": "s", "random": "^", "slerp": "D"}
LINESTYLES = {"ot": "-", "clip": "--", "random": ":", "slerp": "-."}


def _agg_when_headless() -> None:
    """Select ``Agg`` when no backend was asked for and there is no display to open windows on."""
    display = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    if sys.platform.startswith("linux") and not display and not os.environ.get("MPLBACKEND"):
        matplotlib.use("Agg")


_agg_when_headless()


def styled(draw: Callable[..., Figure]) -> Callable[..., Figure]:
    """Run ``draw`` in the package's seaborn style without changing the global rcParams."""
    @functools.wraps(draw)
    def wrapper(*args: Any, **kwargs: Any) -> Figure:
        with sns.axes_style("whitegrid"), sns.plotting_context("paper"):
            return draw(*args, **kwargs)
    return wrapper


def title_lines(text: str, note: str | None, model: str | None = None) -> str:
    """The title lines: ``text``, then ``model: <model>`` and ``note`` when given."""
    return "\n".join([text] + [f"model: {model}"] * (model is not None) + [note] * (note is not None))


def set_suptitle(fig: Figure, text: str) -> None:
    """Set ``text`` as the figure title, each line wrapped to the figure's width.

    Wrapping is by characters, from the title font's size: an average glyph is about 0.55 em wide,
    so a 6.5 in figure at 10 pt holds about 85 characters a line. Constrained layout then keeps
    every wrapped line inside the figure.
    """
    size = matplotlib.font_manager.FontProperties(size=plt.rcParams["figure.titlesize"]).get_size_in_points()
    width = max(20, int(fig.get_figwidth() * 72 / (0.55 * size)) - 4)
    fig.suptitle("\n".join(textwrap.fill(line, width) for line in text.split("\n")))


def _paths_in(results: pd.DataFrame, among: Sequence[str] = PATHS) -> list[str]:
    """The paths of ``among`` that ``results`` has rows for, in :data:`~otinterp.couplings.PATHS` order."""
    present = set(results["path"]) if "path" in results.columns else set()
    return [c for c in PATHS if c in among and c in present]


def _long(results: pd.DataFrame, metric: str, paths: Sequence[str]) -> pd.DataFrame:
    """``metric`` in long form (``group``, ``coupling``, value), checked by :func:`per_pair`."""
    wide = per_pair(results, metric, paths)
    return wide.melt(id_vars="group", var_name="path", value_name=metric)


def _at_k(results: pd.DataFrame) -> str:
    """`` at K = k`` for results whose paths have ``k`` intervals (a PPL is comparable only at one K)."""
    ks = {len(d) for d in results["distances"]} if "distances" in results.columns else set()
    return f" at K = {ks.pop()}" if len(ks) == 1 else ""


def _boxes(ax, data: pd.DataFrame, y: str, ylabel: str) -> None:
    """Box plots of ``y`` by similarity group, one box per coupling in the data; with fewer than
    :data:`FEW_PAIRS` pairs in a box, every pair is drawn as a point over it."""
    hue_order = [c for c in PATHS if c in set(data["path"])]
    layout = {"data": data, "x": "group", "y": y, "hue": "path", "order": sorted(data["group"].unique()),
              "hue_order": hue_order, "palette": PALETTE, "ax": ax}
    few = data.groupby(["group", "path"]).size().max() < FEW_PAIRS
    sns.boxplot(**layout, fliersize=0 if few else 2, linewidth=0.8)
    if few:
        sns.stripplot(**layout, dodge=True, size=3.5, edgecolor="0.2", linewidth=0.5, legend=False)
    ax.set(xlabel=_GROUP_LABEL, ylabel=ylabel)
    handles, names = ax.get_legend_handles_labels()
    ax.legend(handles, [PATH_LABELS[n] for n in names], title="path")


@styled
def ppl_cost_boxplots(results: pd.DataFrame, *, model: str | None = None, note: str | None = None) -> Figure:
    """The paper's Figure 3: PPL (left) and coupling cost (right) by similarity group and coupling.

    Parameters
    ----------
    results : DataFrame
        The experiment's results, one row per (pair, coupling); every coupling present (any of
        ``ot``, ``clip``, ``random``, ``slerp``) gets a box.
    model : str, optional
        The model, named in the title.
    note : str, optional
        A line appended to the title.

    Returns
    -------
    fig : Figure
        Two axes.
    """
    paths = _paths_in(results)
    fig = plt.figure(figsize=(12, 4.2), layout="constrained")
    axes = fig.subplots(1, 2)
    _boxes(axes[0], _long(results, "ppl", paths), "ppl", f"PPL{_at_k(results)} (mean LPIPS between steps)")
    _boxes(axes[1], _long(results, "cost", paths), "cost", "coupling cost C(σ)")
    axes[1].get_legend().remove()
    set_suptitle(fig, title_lines("PPL and coupling cost by similarity group", note, model))
    return fig


@styled
def measures_boxplots(results: pd.DataFrame, *, measures: Sequence[str] = BEYOND_PPL,
                      model: str | None = None, note: str | None = None) -> Figure:
    """The measures beyond PPL by similarity group and coupling, one panel each (beside Figure 3).

    Parameters
    ----------
    results : DataFrame
        The experiment's results, one row per (pair, coupling), with a column per measure.
    measures : sequence of str
        Columns to draw; by default :data:`otinterp.names.BEYOND_PPL`: the perceptual length
        ``Σ √d_k``, the path efficiency (1: no detour), the excursion (how far the path strays
        from both ends) and the smoothness (``1 − Gini`` of the steps).
    model : str, optional
        The model, named in the title.
    note : str, optional
        A line appended to the title.

    Returns
    -------
    fig : Figure
        ``len(measures)`` axes, the legend on the first.
    """
    if not measures:
        raise ValueError("measures must name at least one column")
    paths = _paths_in(results)
    fig = plt.figure(figsize=(5 * len(measures), 4.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(measures)))
    for i, (ax, measure) in enumerate(zip(axes, measures)):
        _boxes(ax, _long(results, measure, paths), measure, MEASURE_LABELS.get(measure, measure))
        if i:
            ax.get_legend().remove()
    set_suptitle(fig, title_lines("Measures beyond PPL by similarity group (√LPIPS lengths: comparable at any K)", note,
                          model))
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


def _strip_rows(strips: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """``strips`` checked and as float32 arrays, in :data:`~otinterp.couplings.PATHS` order."""
    unknown = [c for c in strips if c not in PATHS]
    if unknown or not strips:
        raise ValueError(f"strips must map paths {', '.join(PATHS)} to images, got keys {list(strips)}")
    rows = {c: _strip_array(strips[c], c) for c in PATHS if c in strips}
    shapes = {c: a.shape for c, a in rows.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"strips must all have the same shape, got {shapes}")
    return rows


def _check_prompts(prompts: Sequence[str]) -> None:
    if len(prompts) != 2:
        raise ValueError(f"prompts must be the pair's two prompts (A, B), got {len(prompts)}")


def _draw_strip(ax_row: Sequence[Any], images: np.ndarray, label: str) -> None:
    for ax, image in zip(ax_row, images):
        ax.imshow(image.transpose(1, 2, 0))
        ax.set(xticks=[], yticks=[])
        ax.grid(False)
    ax_row[0].set_ylabel(label)


@styled
def image_strips(strips: Mapping[str, Any], *, prompts: Sequence[str], title: str | None = None,
                 model: str | None = None, note: str | None = None) -> Figure:
    """The paper's Figure 2 for one pair: the images along each path.

    Parameters
    ----------
    strips : mapping of str to (K + 1, 3, H, W) array or tensor (any device and float dtype)
        Images ``I_0..I_K`` in ``[0, 1]`` per path (any of ``"ot"``, ``"clip"``, ``"random"``,
        ``"slerp"``).
    prompts : (2,) sequence of str
        The pair's prompts A and B, shown in the title.
    title : str, optional
        A first title line (e.g. the pair id and PPLs).
    model : str, optional
        The model, named in the title.
    note : str, optional
        A line appended to the title.

    Returns
    -------
    fig : Figure
        ``len(strips) × (K + 1)`` axes: rows in the order OT, CLIP, random, slerp; columns
        ``t_0..t_K``.
    """
    rows = _strip_rows(strips)
    _check_prompts(prompts)
    n_cols = next(iter(rows.values())).shape[0]
    fig = plt.figure(figsize=(1.5 * n_cols + 0.6, 1.5 * len(rows) + 1.0), layout="constrained")
    axes = fig.subplots(len(rows), n_cols, squeeze=False)
    for ax_row, (coupling, images) in zip(axes, rows.items()):
        _draw_strip(ax_row, images, PATH_LABELS[coupling])
    for k, ax in enumerate(axes[0]):
        ax.set_title(f"t{str(k).translate(_SUBSCRIPTS)} = {k / (n_cols - 1):.2g}")  # no mathtext: no font search
    lines = ([title] if title else []) + [f"A: {prompts[0]}", f"B: {prompts[1]}"]
    set_suptitle(fig, title_lines("\n".join(lines), note, model))
    return fig


@styled
def path_strips_with_steps(strips: Mapping[str, Any], distances: Mapping[str, Sequence[float]], *,
                           prompts: Sequence[str], legends: Mapping[str, str] | None = None,
                           title: str | None = None, model: str | None = None,
                           note: str | None = None) -> Figure:
    """One pair's paths side by side with their LPIPS steps ``d_k``, for the explorer.

    Parameters
    ----------
    strips : mapping of str to (K + 1, 3, H, W) array or tensor
        Images ``I_0..I_K`` in ``[0, 1]`` per path (any of ``"ot"``, ``"clip"``, ``"random"``,
        ``"slerp"``).
    distances : mapping of str to (K,) sequence of float
        ``d_k = LPIPS(I_k, I_{k+1})`` per path, the same keys as ``strips``.
    prompts : (2,) sequence of str
        The prompts A and B, shown in the title.
    legends : mapping of str to str, optional
        Text after each path's name in the legend of the ``d_k`` axes (e.g. its PPL and cost).
    title : str, optional
        A first title line.
    model : str, optional
        The model, named in the title.
    note : str, optional
        A line appended to the title.

    Returns
    -------
    fig : Figure
        Left: a ``len(strips) × (K + 1)`` grid of images (rows OT, CLIP, random, slerp); right:
        one axes with every path's ``d_k`` against the step's midpoint ``(k + ½) / K``.
    """
    rows = _strip_rows(strips)
    _check_prompts(prompts)
    if set(distances) != set(rows):
        raise ValueError(f"distances must have the strips' keys {list(rows)}, got {list(distances)}")
    n_cols = next(iter(rows.values())).shape[0]
    steps = {c: np.asarray(distances[c], dtype=np.float64) for c in rows}
    bad = {c: d.shape for c, d in steps.items() if d.shape != (n_cols - 1,)}
    if bad:
        raise ValueError(f"distances must each have K = {n_cols - 1} steps, got shapes {bad}")
    cell = min(1.2, 16 / n_cols)
    fig = plt.figure(figsize=(cell * n_cols + 5.5, max(cell * len(rows), 2.5) + 1.6), layout="constrained")
    left, right = fig.subfigures(1, 2, width_ratios=[cell * n_cols + 0.4, 5])
    axes = left.subplots(len(rows), n_cols, squeeze=False, gridspec_kw={"wspace": 0.02, "hspace": 0.02})
    for ax_row, (coupling, images) in zip(axes, rows.items()):
        _draw_strip(ax_row, images, PATH_LABELS[coupling])
    for k in (0, n_cols - 1):
        axes[0, k].set_title(f"t = {k / (n_cols - 1):.2g}")
    ax = right.subplots()
    mid = (np.arange(n_cols - 1) + 0.5) / (n_cols - 1)
    for coupling, d in steps.items():
        extra = f": {legends[coupling]}" if legends and coupling in legends else ""
        ax.plot(mid, d, marker=MARKERS[coupling], markersize=4, linestyle=LINESTYLES[coupling], linewidth=1.2,
                color=PALETTE[coupling], label=PATH_LABELS[coupling] + extra, alpha=0.9)
    ax.set(xlabel="t (midpoint of the step)", ylabel="LPIPS step d_k", xlim=(0, 1))
    ax.set_ylim(bottom=0)
    ax.legend(fontsize="small")
    lines = ([title] if title else []) + [f"A: {prompts[0]}", f"B: {prompts[1]}"]
    set_suptitle(fig, title_lines("\n".join(lines), note, model))
    return fig


_BLOCK_PREFIX = re.compile(r"([^:\s]+):.")


def _token_blocks(tokens: Sequence[str]) -> list[range]:
    """The blocks of a token set: runs of rows sharing a ``NAME:`` prefix when every string has one
    (SD3's ``CLIP:…`` then ``T5:…`` rows), else the whole set."""
    matches = [_BLOCK_PREFIX.match(t) for t in tokens]
    if not all(matches):
        return [range(len(tokens))]
    names = [m.group(1) for m in matches]
    starts = [i for i in range(len(names)) if i == 0 or names[i] != names[i - 1]]
    return [range(a, b) for a, b in zip(starts, starts[1:] + [len(names)])]


def _padding_rows(tokens: Sequence[str]) -> np.ndarray:
    """Which rows are padding: in each block (:func:`_token_blocks`), the trailing run of one repeated
    string except its first row (CLIP's EOS, which pads with EOS after it; T5's first ``<pad>``).

    Returns
    -------
    padding : (n,) bool array
    """
    padding = np.zeros(len(tokens), dtype=bool)
    for block in _token_blocks(tokens):
        first = block.stop - 1
        while first > block.start and tokens[first - 1] == tokens[block.stop - 1]:
            first -= 1
        padding[first + 1:block.stop] = True
    return padding


def _runs(rows: np.ndarray, keys: Sequence[Any]) -> list[range]:
    """Maximal runs of at least two consecutive selected ``rows`` (a bool mask) with equal ``keys``."""
    runs, start = [], None
    for i in range(len(rows) + 1):
        if start is not None and (i == len(rows) or not rows[i] or keys[i] != keys[start]):
            if i - start >= 2:
                runs.append(range(start, i))
            start = None
        if start is None and i < len(rows) and rows[i]:
            start = i
    return runs


def _slots(bands: list[range], n: int) -> list[range]:
    """Every row in order, each as its own slot, except the rows of ``bands``, one slot per band."""
    slots, i = [], 0
    for band in sorted(bands, key=lambda r: r.start):
        slots += [range(j, j + 1) for j in range(i, band.start)] + [band]
        i = band.stop
    return slots + [range(j, j + 1) for j in range(i, n)]


def _token_slots(tokens_a: Sequence[str], tokens_b: Sequence[str], perms: Mapping[str, np.ndarray],
                 max_rows: int, padding_a: np.ndarray, padding_b: np.ndarray) -> list[range]:
    """The drawn rows of :func:`coupling_tokens`: one slot per row, or, beyond ``max_rows`` rows,
    bands of rows collapsed.

    First collapsed are runs of padding rows (padding on both sides, the same strings) that no
    coupling links to a row carrying a word, BOS or EOS on either side; then, while more than
    ``max_rows`` slots remain, the longest runs of single rows every coupling keeps in place.

    Returns
    -------
    slots : list of range
        Consecutive runs of rows covering ``0..n-1`` in order; a run longer than one is a band.
    """
    n = len(tokens_a)
    if n <= max_rows:
        return _slots([], n)
    marked = ~(padding_a & padding_b)
    collapsible = ~marked
    for perm in perms.values():
        collapsible &= ~marked[perm]  # row i goes to a marked row
        collapsible[perm[marked]] = False  # a marked row goes to row i
    bands = _runs(collapsible, list(zip(tokens_a, tokens_b)))
    kept_everywhere = np.logical_and.reduce([perm == np.arange(n) for perm in perms.values()])
    slots = _slots(bands, n)
    while len(slots) > max_rows:
        single = np.zeros(n, dtype=bool)
        single[[s.start for s in slots if len(s) == 1]] = True
        runs = _runs(single & kept_everywhere, [0] * n)
        if not runs:
            break
        bands.append(max(runs, key=len))
        slots = _slots(bands, n)
    return slots


def _band_tick(band: range, tokens: Sequence[str]) -> str:
    """A band's tick label on one side: ``… 180 × T5:<pad>`` when its rows share a string, else ``… 12 rows``."""
    strings = {tokens[i] for i in band}
    return f"… {len(band)} × {strings.pop()}" if len(strings) == 1 else f"… {len(band)} rows"


def _band_note(band: range, kept: np.ndarray, padding: np.ndarray) -> str:
    """A band's label inside a coupling's axes: ``… 180 padding rows (170 kept in place) …``."""
    kind = "padding rows" if padding[band.start:band.stop].all() else "rows"
    return f"… {len(band)} {kind} ({int(kept[band.start:band.stop].sum())} kept in place) …"


@styled
def coupling_tokens(tokens_a: Sequence[str], tokens_b: Sequence[str], perms: Mapping[str, Any], *,
                    prompts: Sequence[str], model: str | None = None, note: str | None = None,
                    max_rows: int = 100, content: tuple[Any, Any] | None = None) -> Figure:
    """Which token of A each coupling sends to which token of B, drawn with the token strings.

    Parameters
    ----------
    tokens_a, tokens_b : (n,) sequence of str
        The tokenizer's strings of the two prompts, position by position (BOS, words, EOS, padding).
        Strings that all carry a block prefix (``"CLIP:…"``, ``"T5:…"``) split the rows into
        blocks; in each, the trailing run of one repeated string, past its first row, is padding.
    perms : mapping of str to (n,) int array
        Couplings by name (e.g. ``{"ot": σ_ot, "clip": identity}``): row ``i`` of A goes to row
        ``perms[c][i]`` of B.
    prompts : (2,) sequence of str
        The prompts A and B, shown in the title.
    model : str, optional
        The model, named in the title.
    note : str, optional
        A line appended to the title.
    max_rows : int
        Up to this many rows, every row is drawn. Beyond, runs of padding rows that no coupling
        links to a word, BOS or EOS row are drawn as one band each, labelled with their count, their
        string and how many the coupling keeps in place; then, while more than ``max_rows`` drawn
        rows remain, the longest runs of rows every coupling keeps in place are banded too (so only
        couplings that move more rows than ``max_rows`` draw more).
    content : pair of (n,) bool arrays, optional
        Which rows of A and of B are content (the tokenizer's attention mask,
        :meth:`otinterp.families.Family.content_rows`); by default read from the strings as above.
        Padding rows' labels are grey, and each title counts the content rows of A sent to padding
        rows of B.

    Returns
    -------
    fig : Figure
        One axes per coupling: A's tokens as the left tick labels, B's as the right ones (top row
        first), a line from each ``i`` to ``σ[i]`` (from or to a band's row when ``i`` or ``σ[i]`` is
        in one); rows kept in place are grey, moved rows in the coupling's colour. Each axes' title
        says how many of all ``n`` rows stay in place.
    """
    n = len(tokens_a)
    if len(tokens_b) != n or n == 0:
        raise ValueError(f"tokens_a and tokens_b must have the same non-zero length, got {n} and {len(tokens_b)}")
    unknown = [c for c in perms if c not in PATHS]
    if unknown or not perms:
        raise ValueError(f"perms must map paths {', '.join(PATHS)} to permutations, got keys {list(perms)}")
    if not isinstance(max_rows, int) or max_rows < 1:
        raise ValueError(f"max_rows must be a positive integer, got {max_rows!r}")
    _check_prompts(prompts)
    checked = {}
    for name, perm in perms.items():
        perm = np.asarray(perm)
        if perm.shape != (n,) or not np.array_equal(np.sort(perm), np.arange(n)):
            raise ValueError(f"perms[{name!r}] must be a permutation of 0..{n - 1}")
        checked[name] = perm
    if content is None:
        padding_a, padding_b = _padding_rows(tokens_a), _padding_rows(tokens_b)
    else:
        padding_a, padding_b = (~np.asarray(c, dtype=bool).reshape(-1) for c in content)
        if padding_a.shape != (n,) or padding_b.shape != (n,):
            raise ValueError(f"content must be two masks of {n} rows, got {padding_a.shape} and {padding_b.shape}")
    slots = _token_slots(tokens_a, tokens_b, checked, max_rows, padding_a, padding_b)
    slot_of = np.concatenate([np.full(len(s), k) for k, s in enumerate(slots)])
    padding = padding_a & padding_b
    ticks_a, ticks_b = ([t[s.start] if len(s) == 1 else _band_tick(s, t) for s in slots] for t in (tokens_a, tokens_b))
    fig = plt.figure(figsize=(4.2 * len(checked) + 0.8, 0.16 * len(slots) + 1.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(checked)))
    rows, ys = np.arange(n), np.arange(len(slots))
    for ax, (name, perm) in zip(axes, checked.items()):
        kept = perm == rows
        drawn = set()
        for i in rows:
            line = (slot_of[i], slot_of[perm[i]], kept[i])
            if line not in drawn:
                drawn.add(line)
                ax.plot([0, 1], line[:2], lw=0.8 if kept[i] else 1.2, alpha=0.5 if kept[i] else 0.9,
                        color="0.6" if kept[i] else PALETTE[name])
        for k, s in enumerate(slots):
            if len(s) > 1:
                ax.axhspan(k - 0.45, k + 0.45, color="0.92", zorder=0)
                ax.text(0.5, k, _band_note(s, kept, padding), ha="center", va="center", fontsize=6,
                        bbox={"boxstyle": "square,pad=0.1", "facecolor": "0.92", "edgecolor": "none"})
        ax.set(xlim=(0, 1), ylim=(len(slots) - 0.5, -0.5), xticks=[], yticks=ys)
        ax.set_yticklabels(ticks_a, fontsize=6)
        twin = ax.twinx()
        twin.set(ylim=ax.get_ylim(), yticks=ys)
        twin.set_yticklabels(ticks_b, fontsize=6)
        for a, pad in ((ax, padding_a), (twin, padding_b)):
            a.grid(False)
            for label, slot in zip(a.get_yticklabels(), slots):
                label.set_color("0.55" if pad[slot.start:slot.stop].all() else "black")
        crossing = int(np.sum(~padding_a & padding_b[perm]))
        ax.set_title(f"{PATH_LABELS[name]}: {int(kept.sum())} of {n} rows in place\n"
                     f"{crossing} content row(s) of A to padding of B", fontsize=9)
        ax.set_xlabel("A → B")
    set_suptitle(fig, title_lines(f"Token coupling\nA: {prompts[0]}\nB: {prompts[1]}", note, model))
    return fig


@styled
def w2_vs_similarity(results: pd.DataFrame, *, model: str | None = None, note: str | None = None) -> Figure:
    """``W2`` between the two prompt embeddings of each pair, by similarity group.

    Parameters
    ----------
    results : DataFrame
        The experiment's results, one row per (pair, coupling).
    model : str, optional
        The model, named in the title.
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
    set_suptitle(fig, title_lines("Wasserstein distance of the prompt embeddings against similarity", note, model))
    return fig


@styled
def excess_cost_vs_similarity(results: pd.DataFrame, *, model: str | None = None,
                              note: str | None = None) -> Figure:
    """Relative excess cost ``C(σ)/W2 − 1`` of the CLIP and random couplings, by similarity group.

    One panel per coupling, each with its own y axis: the random coupling's excess is typically
    an order of magnitude above CLIP's, and a shared axis would flatten CLIP's boxes. (Slerp pairs
    rows as CLIP does, so its excess is CLIP's and it gets no panel.)

    Parameters
    ----------
    results : DataFrame
        The experiment's results, one row per (pair, coupling).
    model : str, optional
        The model, named in the title.
    note : str, optional
        A line appended to the title.

    Returns
    -------
    fig : Figure
        One axes per coupling present among CLIP and random.
    """
    paths = _paths_in(results, ("clip", "random"))
    if not paths:
        raise ValueError("results have no rows for the clip or random coupling: no excess cost to draw")
    data = _long(results, "cost_ratio", paths)
    data["excess"] = data["cost_ratio"] - 1
    fig = plt.figure(figsize=(4.5 * len(paths) + 1, 4.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(paths)))
    for ax, path in zip(axes, paths):
        _boxes(ax, data[data["path"] == path], "excess", "relative excess cost C(σ)/W2 − 1")
        ax.get_legend().remove()
        ax.set_title(PATH_LABELS[path])
    set_suptitle(fig, title_lines("Relative excess coupling cost C(σ)/W2 − 1 of suboptimal couplings against similarity",
                                  note, model))
    return fig


def save_figure(fig: Figure, directory: str | Path, name: str, *, formats: Sequence[str] = ("png", "pdf"),
                dpi: int = 150, trace: str | None = None) -> list[Path]:
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
    trace : str, optional
        Where the figure's numbers come from (:func:`otinterp.store.trace_note`), stored in the
        file's metadata (PNG ``Description``, PDF ``Subject``).

    Returns
    -------
    paths : list of Path
        The files written, in the order of ``formats``.
    """
    supported = fig.canvas.get_supported_filetypes()
    unknown = [f for f in formats if f not in supported]
    if unknown:
        raise ValueError(f"unknown figure format(s) {', '.join(unknown)}; supported: {', '.join(sorted(supported))}")
    keys = {"png": "Description", "pdf": "Subject"}
    meta = {f: {keys[f]: trace} if trace and f in keys else None for f in formats}
    return [atomic_write(lambda tmp, f=f: fig.savefig(tmp, format=f, dpi=dpi, metadata=meta[f]),
                         Path(directory) / f"{name}.{f}") for f in formats]
