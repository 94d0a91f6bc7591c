"""Finished runs side by side: Table 1, PPL gains and hypothesis verdicts per model.

The paper (Karris, Durell, Flores and Emerson, "Which Way from B to A: The role of embedding
geometry in image interpolation for Stable Diffusion", arXiv:2511.12757, 2025) measures one model,
SD 1.5. This module puts the results of several finished runs (for example SD 1.5, SDXL and the
random-weight control ``sd15-random``) next to each other, each analysed on its own exactly as
notebook 03 does, so that a model's rows can be read against the others'.

A run is a run folder: ``pairs.parquet`` (the pair table) and ``results/`` (the experiment's
results folder with its ``manifest.json``). Every function takes the table of
:func:`load_runs`, one row per (run, pair, latent seed, coupling).

The random-weight control
-------------------------
A denoiser with random weights is still a smooth function of its conditioning, so the OT path,
shorter in embedding space, tends to give a lower PPL with it too. The control's gains are what
any smooth denoiser shows; a trained model's advantage is to be read against them. Every table
labels the control's rows ``"random weights (control)"`` (:data:`CONTROL_LABEL`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from otinterp import stats
from otinterp.data import read_pairs
from otinterp.params import RANDOM_WEIGHT_MODELS
from otinterp.plots import styled, title_lines
from otinterp.store import load_results, manifest_params

__all__ = [
    "CONTROL_LABEL", "TRAINED_LABEL", "CONTROL_NOTE", "GAIN_MEASURES", "is_random_weight", "model_label",
    "find_runs", "load_runs", "notes", "table1_by_model", "ppl_gains", "verdicts_by_model", "ppl_gain_figure",
]

#: How tables and figures name a model with random weights, and one with trained weights.
CONTROL_LABEL = "random weights (control)"
TRAINED_LABEL = "trained weights"

#: What the random-weight control means, written under every comparison table.
CONTROL_NOTE = ("Random weights (control): a smooth random denoiser also gives the OT path, shorter in "
                "embedding space, a lower PPL; a trained model's advantage is to be read against the control's.")

#: Columns of :func:`ppl_gains` a figure can show, and their axis labels.
GAIN_MEASURES = {
    "median_gain": "median PPL gain of OT (other − OT)",
    "median_relative_gain": "median relative PPL gain of OT ((other − OT) / other)",
    "rank_biserial": "rank-biserial r of the gains (> 0: OT lower)",
}

#: The paths OT is compared with, in display order.
_OTHERS = ("clip", "random")
#: Columns :func:`load_runs` adds to every row.
_RUN_COLUMNS = ("run", "model", "family", "weights", "model_label", "caveat")


def is_random_weight(model: str) -> bool:
    """Whether ``model`` (a model spec, ``Params.model``) is one with seeded random weights.

    These are the offline specs of :data:`otinterp.params.RANDOM_WEIGHT_MODELS` (``"tiny"`` and
    the control ``"sd15-random"``); hub ids and local folders are trained models.
    """
    return model in RANDOM_WEIGHT_MODELS


def model_label(run: str, model: str) -> str:
    """The name of a run in tables and figures: its model, the run's label when it differs, and
    :data:`CONTROL_LABEL` for a random-weight model.

    >>> model_label("sd15-random", "sd15-random")
    'sd15-random, random weights (control)'
    >>> model_label("sdxl", "stabilityai/stable-diffusion-xl-base-1.0")
    'sdxl (stabilityai/stable-diffusion-xl-base-1.0)'
    """
    name = model if run == model else f"{run} ({model})"
    return f"{name}, {CONTROL_LABEL}" if is_random_weight(model) else name


def find_runs(folder: str | Path) -> dict[str, Path]:
    """The finished runs under ``folder``: ``{folder name: run folder}`` for every sub-folder with
    ``results/manifest.json``, sorted by name (an empty dict when ``folder`` does not exist)."""
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    return {d.name: d for d in sorted(folder.iterdir()) if (d / "results" / "manifest.json").is_file()}


def _load_run(label: str, run_dir: Path) -> pd.DataFrame:
    """The result rows of one run folder with the columns :data:`_RUN_COLUMNS`."""
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run {label!r}: folder {run_dir} does not exist")
    results_dir = run_dir / "results"
    if not (results_dir / "manifest.json").is_file():
        raise FileNotFoundError(f"run {label!r}: {run_dir} has no finished results ({results_dir / 'manifest.json'} "
                                "is missing); run the experiment (notebook 02) for it first")
    params = manifest_params(results_dir)
    # Every seed and path on disk for the run's current pairs: the first run's params may be a
    # pilot's (max_pairs) or predate seeds and paths added later.
    rows = load_results(results_dir, read_pairs(run_dir / "pairs.parquet"))
    model = rows["model"].iloc[0] if "model" in rows.columns and len(rows) else params.model
    family = rows["family"].iloc[0] if "family" in rows.columns and len(rows) else "unknown"
    return rows.assign(run=label, model=model, family=family,
                       weights=CONTROL_LABEL if is_random_weight(model) else TRAINED_LABEL,
                       model_label=model_label(label, model), caveat=params.caveat or "")


def load_runs(run_dirs: Mapping[str, str | Path]) -> pd.DataFrame:
    """The results of several finished runs in one table.

    Each run's rows are :func:`otinterp.store.load_results` of ``<run_dir>/results`` for the
    pairs of ``<run_dir>/pairs.parquet`` and the latent seeds and couplings of the parameters
    recorded in its manifest.

    Parameters
    ----------
    run_dirs : mapping of str to path
        ``{label: run folder}``, in the order the runs are shown.

    Returns
    -------
    results : DataFrame
        One row per (run, pair, latent seed, coupling): the experiment's columns and ``run`` (the
        label), ``model`` (the model spec), ``family``, ``weights`` (:data:`CONTROL_LABEL` or
        :data:`TRAINED_LABEL`), ``model_label`` (:func:`model_label`) and ``caveat`` (the run's
        ``Params.caveat``, ``""`` for none).

    Raises
    ------
    ValueError
        For no runs or an empty label.
    FileNotFoundError
        Naming a run whose folder, manifest or pair table is missing.
    """
    if not run_dirs:
        raise ValueError("load_runs needs at least one run folder ({label: path})")
    empty = [repr(label) for label in run_dirs if not str(label).strip()]
    if empty:
        raise ValueError(f"run labels must be non-empty, got {', '.join(empty)}")
    return pd.concat([_load_run(str(label), Path(path)) for label, path in run_dirs.items()], ignore_index=True)


def _runs(results: pd.DataFrame):
    """``(run, rows)`` for each run of ``results``, in the order of first appearance."""
    missing = [c for c in _RUN_COLUMNS if c not in results.columns]
    if missing:
        raise ValueError(f"results lack column(s) {', '.join(map(repr, missing))}: pass the table of load_runs")
    for run in pd.unique(results["run"]):
        yield run, results[results["run"] == run]


def _others(rows: pd.DataFrame) -> list[str]:
    """The paths of :data:`_OTHERS` that a run has, at least one."""
    others = [c for c in _OTHERS if c in set(rows["path"])]
    if not others:
        raise ValueError(f"run {rows['run'].iloc[0]!r} has neither CLIP nor random paths to compare OT with")
    return others


def notes(results: pd.DataFrame) -> list[str]:
    """The notes every comparison table carries: each run's caveat, seed averaging and the K of its
    PPL, and :data:`CONTROL_NOTE` when a random-weight run is present."""
    lines = []
    for run, rows in _runs(results):
        label = rows["model_label"].iloc[0]
        lines += [f"{label}: {rows['caveat'].iloc[0]}"] if rows["caveat"].iloc[0] else []
        seeds = stats.seeds_note(rows)
        lines += [f"{label}: {seeds}"] if seeds else []
        ks = sorted({len(d) for d in rows["distances"]}) if "distances" in rows.columns else []
        lines += [f"{label}: PPL at K = {', '.join(map(str, ks))} (PPL scales like 1/K²: compare runs at one K)"] if ks else []
    if (results["weights"] == CONTROL_LABEL).any():
        lines.append(CONTROL_NOTE)
    return lines


def table1_by_model(results: pd.DataFrame, *, alpha: float = 0.05) -> pd.DataFrame:
    """The paper's Table 1 for each run, stacked: OT vs CLIP and OT vs random PPL per group.

    Parameters
    ----------
    results : DataFrame
        The table of :func:`load_runs`.
    alpha : float
        Significance level of the marks.

    Returns
    -------
    table : (n_runs × n_comparisons, n_groups) DataFrame of str
        Index levels ``model`` (:func:`model_label`, so the control's rows say
        :data:`CONTROL_LABEL`) and ``comparison`` (``"OT vs. CLIP PPL"``); columns the groups of
        every run (``"0.5"`` …), ``"n/a"`` where a run has no pairs of a group. The marks are
        those of :func:`otinterp.stats.table1` (directed by the test; legend
        :func:`otinterp.stats.mark_legend`).
    """
    tables = {rows["model_label"].iloc[0]: stats.table1(stats.paired_tests(rows, "ppl", others=_others(rows),
                                                                            alpha=alpha))
              for _, rows in _runs(results)}
    table = pd.concat(tables, names=["model", "comparison"])
    columns = sorted(table.columns, key=float)
    table = table.reindex(columns=columns).fillna("n/a")
    table.columns.name = "Similarity Group"
    return table


def ppl_gains(results: pd.DataFrame) -> pd.DataFrame:
    """The PPL gain of OT over CLIP and over random, per run and similarity group.

    A pair's gain is ``PPL_other − PPL_OT`` (each its mean over the latent seeds,
    :func:`otinterp.stats.per_pair`): positive when OT's image path is smoother.

    Parameters
    ----------
    results : DataFrame
        The table of :func:`load_runs`.

    Returns
    -------
    gains : DataFrame
        One row per (run, comparison, group): ``run``, ``model``, ``family``, ``weights``,
        ``model_label``, ``comparison`` (``"ot vs clip"``, ``"ot vs random"``), ``group``, ``n``
        (pairs), ``median_gain``, ``median_relative_gain`` (of ``(PPL_other − PPL_OT) /
        PPL_other``, a gain of 0 when both are 0) and ``rank_biserial``, the matched-pairs
        rank-biserial correlation of the gains (> 0: OT's PPL tends to be lower; the negative of
        :func:`otinterp.stats.paired_tests`' r).
    """
    rows_out = []
    for run, rows in _runs(results):
        others = _others(rows)
        wide = stats.per_pair(rows, "ppl", ["ot", *others])
        first = rows.iloc[0]
        for other in others:
            for group, block in wide.groupby("group", sort=True):
                gain = block[other] - block["ot"]
                relative = (gain / block[other]).fillna(0.0)
                rows_out.append({
                    "run": run, "model": first["model"], "family": first["family"], "weights": first["weights"],
                    "model_label": first["model_label"], "comparison": f"ot vs {other}", "group": group,
                    "n": len(block), "median_gain": float(gain.median()),
                    "median_relative_gain": float(relative.median()), "rank_biserial": stats.rank_biserial(gain),
                })
    return pd.DataFrame(rows_out)


def verdicts_by_model(results: pd.DataFrame, alpha: float = 0.05, min_effect: float = 0.1, *,
                      n_resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """The verdicts on the four hypotheses for each run, side by side.

    Each run is tested on its own by :func:`otinterp.stats.hypothesis_tests` (the caption-disjoint
    subset taken round-robin in the run's sampled order) and :func:`otinterp.stats.verdicts`.

    Parameters
    ----------
    results : DataFrame
        The table of :func:`load_runs`.
    alpha : float
        Significance level.
    min_effect : float
        Smallest ``|ρ|`` or ``|r|`` worth the name.
    n_resamples : int
        Bootstrap resamples of each interval.
    seed : int
        Seed of the bootstrap.

    Returns
    -------
    verdicts : (4, 3 + 2 n_runs) DataFrame
        Indexed by the hypothesis id (``"H1"`` …): ``hypothesis`` (the statement), then for each
        run ``"<model label>: all pairs"`` and ``"<model label>: caption-disjoint"`` (one of
        :data:`otinterp.stats.VERDICTS`), ``alpha``, ``min_effect`` and ``disagreement`` (a line
        per run whose two verdicts differ, else "").
    """
    columns, disagreement = {}, {}
    for _, rows in _runs(results):
        label = rows["model_label"].iloc[0]
        tests = stats.hypothesis_tests(rows, alpha=alpha, min_effect=min_effect, n_resamples=n_resamples, seed=seed)
        verdicts = stats.verdicts(tests).set_index("id")
        columns[f"{label}: all pairs"] = verdicts["verdict_all"]
        columns[f"{label}: caption-disjoint"] = verdicts["verdict_disjoint"]
        disagreement[label] = verdicts["disagreement"]
    table = pd.DataFrame(columns)
    table.insert(0, "hypothesis", pd.Series(stats.STATEMENTS).reindex(table.index))
    lines = pd.DataFrame(disagreement).apply(lambda row: "; ".join(f"{k}: {v}" for k, v in row.items() if v), axis=1)
    return table.assign(alpha=alpha, min_effect=min_effect, disagreement=lines)


def _line_styles(gains: pd.DataFrame) -> dict[str, dict]:
    """Matplotlib line styles per model label: solid colours for trained models, dashed greys for
    random-weight controls."""
    labels = pd.unique(gains["model_label"])
    control = {label for label in labels if (gains.loc[gains["model_label"] == label, "weights"] == CONTROL_LABEL).any()}
    colours = iter(sns.color_palette("colorblind", max(1, len(labels) - len(control))))
    greys = iter(np.linspace(0.15, 0.6, max(1, len(control))))
    return {label: ({"color": str(next(greys)), "linestyle": "--", "marker": "s"} if label in control
                    else {"color": next(colours), "linestyle": "-", "marker": "o"}) for label in labels}


@styled
def ppl_gain_figure(gains: pd.DataFrame, *,
                    measure: Literal["median_gain", "median_relative_gain", "rank_biserial"] = "median_gain",
                    note: str | None = None) -> Figure:
    """The PPL gain of OT per similarity group, one line per model, one panel per comparison.

    Random-weight controls are dashed grey lines labelled :data:`CONTROL_LABEL`; the title names
    the models.

    Parameters
    ----------
    gains : DataFrame
        The table of :func:`ppl_gains`.
    measure : {"median_gain", "median_relative_gain", "rank_biserial"}
        The column drawn (:data:`GAIN_MEASURES`).
    note : str, optional
        A line appended to the title.

    Returns
    -------
    fig : Figure
        One axes per comparison.
    """
    if measure not in GAIN_MEASURES:
        raise ValueError(f"unknown measure {measure!r}; expected one of {', '.join(map(repr, GAIN_MEASURES))}")
    if gains.empty:
        raise ValueError("no PPL gains to draw: pass the table of ppl_gains for at least one run")
    comparisons = [c for c in (f"ot vs {o}" for o in _OTHERS) if c in set(gains["comparison"])]
    styles = _line_styles(gains)
    fig = plt.figure(figsize=(5.5 * len(comparisons), 4.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(comparisons), sharey=True))
    for ax, comparison in zip(axes, comparisons):
        block = gains[gains["comparison"] == comparison]
        for label, style in styles.items():
            line = block[block["model_label"] == label].sort_values("group")
            ax.plot(line["group"], line[measure], label=label, **style)
        ax.axhline(0.0, color="black", linewidth=0.8)
        groups = sorted(block["group"].unique())
        ax.set_xticks(groups, [f"{g:.1f}" for g in groups])
        other = comparison.removeprefix("ot vs ")
        ax.set(title=f"OT vs. {stats.LABELS[other]}", xlabel="similarity group", ylabel=GAIN_MEASURES[measure])
    axes[0].legend(title="model", fontsize="small")
    models = ", ".join(pd.unique(gains["model"]))
    fig.suptitle(title_lines(f"PPL gain of OT by similarity group: {models}", note))
    return fig
