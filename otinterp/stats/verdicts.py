"""Verdicts on the four hypotheses of the paper's section 3, with effect sizes and intervals.

Each hypothesis is a set of one-sided tests over pairs, each with a predicted sign:

- H1: Spearman ρ of ``W2`` and of the OT PPL with the similarity group (both negative).
- H2: ρ of the relative excess cost ``C(σ)/W2 − 1`` of CLIP and of random with the group
  (positive).
- H3: "for a fixed pair, a shorter path gives a better image path", within each pair: OT vs
  CLIP and OT vs random (``PPL_OT − PPL_other``), and the cheaper of CLIP/random (by the pair's
  coupling costs) vs the dearer (``PPL_cheaper − PPL_dearer``); Wilcoxon signed-rank tests with
  the matched-pairs rank-biserial r (all negative).
- H4: ρ of the relative PPL gain ``(PPL_other − PPL_OT) / PPL_other`` with the group, for CLIP
  and random (positive).

A test *passes* when its one-sided p-value is below ``alpha``, its estimate has the predicted
sign, and ``|estimate| >= min_effect``: over thousands of pairs a trend that explains 0.1 % of
the variance is significant and means nothing. A hypothesis is supported when every one of its
tests passes (an intersection–union test). Each estimate has a 95 % percentile bootstrap interval
over pairs (seeded). Pairs that share a caption are not independent, so every test and verdict is
also computed on the caption-disjoint subset of the pairs
(:func:`otinterp.data.caption_disjoint_subset`, greedy in the results' order) and shown beside
the all-pairs one.
"""

from __future__ import annotations

from typing import Callable, Iterator, Sequence

import numpy as np
import pandas as pd
from scipy import stats as st

from otinterp.data.dependence import caption_disjoint_subset
from otinterp.stats.paired import LABELS, per_pair, present_paths, rank_biserial

__all__ = ["MIN_PAIRS", "MIN_GROUPS", "SUBSETS", "STATEMENTS", "bootstrap_ci", "spearman_rows",
           "rank_biserial_rows", "hypothesis_tests", "verdicts"]

#: Smallest sizes at which a test counts: pairs, and for trend tests similarity groups.
MIN_PAIRS = 5
MIN_GROUPS = 3
#: The sets of pairs every test is computed on: all pairs, and a caption-disjoint subset.
SUBSETS = ("all", "disjoint")

#: The hypotheses, in the words of the paper's section 3.
STATEMENTS = {
    "H1": "The geodesic (OT) path is shorter, and its images have lower PPL, for more similar prompts "
          "(ρ with group < 0).",
    "H2": "Suboptimal couplings are relatively more costly for more similar prompts "
          "(ρ of C(σ)/W2 − 1 with group > 0).",
    "H3": "For a fixed pair, a shorter interpolating path gives a better image path: OT has lower PPL than "
          "CLIP and random, and the cheaper of CLIP/random lower PPL than the dearer (r < 0).",
    "H4": "The PPL advantage of OT grows for more similar prompts (ρ of the relative PPL gain with group > 0).",
}


def spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's ρ of each row of ``x`` with the same row of ``y`` (average ranks for ties).

    Parameters
    ----------
    x, y : (..., n) ndarray

    Returns
    -------
    rho : (...) ndarray
        NaN for a row in which ``x`` or ``y`` is constant.
    """
    rx, ry = (st.rankdata(v, axis=-1) for v in (x, y))
    rx -= rx.mean(axis=-1, keepdims=True)
    ry -= ry.mean(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rx * ry).sum(-1) / np.sqrt((rx * rx).sum(-1) * (ry * ry).sum(-1))


def rank_biserial_rows(d: np.ndarray) -> np.ndarray:
    """:func:`~otinterp.stats.paired.rank_biserial` of each row of ``d``.

    Zeros have the smallest ``|d|``, so ranking all of ``|d|`` and subtracting the number of zeros
    gives the ranks among the non-zero differences.

    Parameters
    ----------
    d : (..., n) ndarray

    Returns
    -------
    r : (...) ndarray
        NaN for a row of zeros.
    """
    zeros = (d == 0).sum(-1, keepdims=True)
    ranks = st.rankdata(np.abs(d), axis=-1) - zeros
    t_plus = np.where(d > 0, ranks, 0).sum(-1)
    t_minus = np.where(d < 0, ranks, 0).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (t_plus - t_minus) / (t_plus + t_minus)


def bootstrap_ci(statistic: Callable[..., np.ndarray], *samples: np.ndarray, n_resamples: int = 2000,
                 seed: int | tuple = 0, confidence: float = 0.95, chunk: int = 100) -> tuple[float, float]:
    """Percentile bootstrap interval of a statistic of paired samples, resampling their rows.

    Parameters
    ----------
    statistic : callable
        ``statistic(*resampled)`` of arrays of shape ``(k, n)`` gives ``(k,)`` values (row-wise).
    *samples : (n,) ndarray
        Aligned samples (one entry per pair); rows are resampled jointly.
    n_resamples : int
        Bootstrap resamples.
    seed : int or tuple of int
        Seed of ``numpy.random.default_rng``: the same seed gives the same interval.
    confidence : float
        Coverage of the interval.
    chunk : int
        Resamples computed at once (memory ``chunk × n``).

    Returns
    -------
    low, high : float
        NaN when every resample's statistic is NaN.
    """
    n = len(samples[0])
    rng = np.random.default_rng(seed)
    values = []
    for start in range(0, n_resamples, chunk):
        idx = rng.integers(0, n, size=(min(chunk, n_resamples - start), n))
        values.append(statistic(*(np.asarray(s)[idx] for s in samples)))
    values = np.concatenate(values)
    values = values[~np.isnan(values)]
    if not len(values):
        return float("nan"), float("nan")
    low, high = np.quantile(values, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)


def _trend(hid: str, name: str, values: pd.Series, group: pd.Series, predicted: int) -> dict:
    """A one-sided Spearman test of ``values`` with ``group``; ``predicted`` is the sign, ±1."""
    v, g = values.to_numpy(dtype=float), group.to_numpy(dtype=float)
    if np.ptp(v) == 0 or np.ptp(g) == 0:
        rho = p = float("nan")
    else:
        rho, p = st.spearmanr(v, g, alternative="less" if predicted < 0 else "greater")
    return {"id": hid, "test": f"ρ({name}, group)", "statistic": "Spearman ρ", "predicted": predicted,
            "estimate": float(rho), "p": float(p), "n_groups": int(group.nunique()),
            "resample": (spearman_rows, v, g)}


def _paired(hid: str, name: str, d: pd.Series, predicted: int) -> dict:
    """A one-sided Wilcoxon signed-rank test of the differences ``d``; ``predicted`` the sign."""
    d = d.to_numpy(dtype=float)
    alternative = "less" if predicted < 0 else "greater"
    p = (float("nan") if np.all(d == 0)
         else st.wilcoxon(d, zero_method="wilcox", method="auto", alternative=alternative).pvalue)
    return {"id": hid, "test": f"r({name})", "statistic": "rank-biserial r", "predicted": predicted,
            "estimate": rank_biserial(d), "p": float(p), "n_groups": None, "resample": (rank_biserial_rows, d)}


def _tests(results: pd.DataFrame) -> Iterator[dict]:
    """The tests of every hypothesis on ``results`` (without intervals)."""
    paths = present_paths(results)
    others = [c for c in ("clip", "random") if c in paths]
    ppl = per_pair(results, "ppl", ["ot", *others])
    group = ppl["group"]
    yield _trend("H1", "W2", per_pair(results, "w2", ["ot"])["ot"], group, -1)
    yield _trend("H1", "OT PPL", ppl["ot"], group, -1)
    ratio = per_pair(results, "cost_ratio", ["ot", *others])
    for c in others:
        yield _trend("H2", f"{LABELS[c]} C(σ)/W2 − 1", ratio[c] - 1, group, +1)
    for c in others:
        yield _paired("H3", f"PPL OT − {LABELS[c]}", ppl["ot"] - ppl[c], -1)
    if len(others) == 2:
        cost = per_pair(results, "cost", others)
        clip_cheaper = cost["clip"] < cost["random"]
        d = np.where(clip_cheaper, ppl["clip"] - ppl["random"], ppl["random"] - ppl["clip"])
        # equal costs: neither is cheaper, the pair counts as a zero difference (discarded)
        d = pd.Series(np.where(cost["clip"] == cost["random"], 0.0, d), index=ppl.index)
        yield _paired("H3", "PPL cheaper − dearer of CLIP/Random (by the pair's costs)", d, -1)
    for c in others:
        # 0 / 0 (both paths have zero length) is no gain, not a missing value.
        gain = ((ppl[c] - ppl["ot"]) / ppl[c]).fillna(0.0)
        yield _trend("H4", f"{LABELS[c]} relative PPL gain", gain, group, +1)


def _outcome(test: dict, n_pairs: int, alpha: float, min_effect: float) -> str:
    if n_pairs < MIN_PAIRS or (test["n_groups"] is not None and test["n_groups"] < MIN_GROUPS):
        return "not testable at this size"
    if not test["p"] < alpha:
        return "not significant"
    if not np.sign(test["estimate"]) == test["predicted"]:
        return "wrong direction"
    if abs(test["estimate"]) < min_effect:
        return "effect below min_effect"
    return "passes"


def hypothesis_tests(results: pd.DataFrame, *, alpha: float = 0.05, min_effect: float = 0.1,
                     n_resamples: int = 2000, seed: int = 0, order: Sequence[str] | None = None) -> pd.DataFrame:
    """Every test of the four hypotheses, on all pairs and on a caption-disjoint subset.

    Parameters
    ----------
    results : DataFrame
        The experiment's results (one row per pair and path, and per seed: values are per-pair
        means over seeds), with ``ot`` and ``clip`` and/or ``random`` (``slerp`` is ignored here).
    alpha : float
        Significance level.
    min_effect : float
        Smallest ``|ρ|`` or ``|r|`` that supports a hypothesis.
    n_resamples : int
        Bootstrap resamples of each interval.
    seed : int
        Seed of the bootstrap (test ``i`` uses ``(seed, i)``).
    order : sequence of str, optional
        The order of the greedy caption-disjoint pass (:func:`otinterp.data.caption_disjoint_subset`):
        the sampled pair table's ``pair_id`` column; default the results' order.

    Returns
    -------
    tests : DataFrame
        One row per test: ``id`` (``"H1"`` …), ``test`` (such as ``"ρ(W2, group)"`` or
        ``"r(PPL OT − CLIP)"``), ``statistic`` (``"Spearman ρ"`` or
        ``"rank-biserial r"``), ``predicted`` (``"< 0"`` or ``"> 0"``), ``alpha``,
        ``min_effect``, and for each subset ``s`` in :data:`SUBSETS`: ``n_pairs_s``,
        ``estimate_s``, ``ci_low_s``, ``ci_high_s`` (95 % bootstrap), ``p_s`` (one-sided, in
        the predicted direction) and ``outcome_s`` (``"passes"``, ``"not significant"``,
        ``"wrong direction"``, ``"effect below min_effect"`` or ``"not testable at this size"``:
        fewer than :data:`MIN_PAIRS` pairs, or for a trend fewer than :data:`MIN_GROUPS` groups).
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if not 0 <= min_effect <= 1:
        raise ValueError(f"min_effect must be in [0, 1], got {min_effect}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    tables = {"all": results, "disjoint": caption_disjoint_subset(results, order)}
    columns = {}
    for subset, table in tables.items():
        n_pairs = table["pair_id"].nunique()
        rows = []
        for i, test in enumerate(_tests(table)):
            statistic, *samples = test["resample"]
            low, high = bootstrap_ci(statistic, *samples, n_resamples=n_resamples, seed=(seed, i))
            rows.append({"id": test["id"], "test": test["test"], "statistic": test["statistic"],
                         "predicted": "< 0" if test["predicted"] < 0 else "> 0", "alpha": alpha,
                         "min_effect": min_effect, f"n_pairs_{subset}": n_pairs,
                         f"estimate_{subset}": test["estimate"], f"ci_low_{subset}": low,
                         f"ci_high_{subset}": high, f"p_{subset}": test["p"],
                         f"outcome_{subset}": _outcome(test, n_pairs, alpha, min_effect)})
        columns[subset] = pd.DataFrame(rows)
    keys = ["id", "test", "statistic", "predicted", "alpha", "min_effect"]
    return columns["all"].merge(columns["disjoint"], on=keys, how="left", validate="one_to_one")


def _verdict(outcomes: pd.Series) -> str:
    if (outcomes == "not testable at this size").any():
        return "not testable at this size"
    return "supported" if (outcomes == "passes").all() else "not supported"


def verdicts(tests: pd.DataFrame) -> pd.DataFrame:
    """One verdict per hypothesis, on all pairs and on the caption-disjoint subset.

    Parameters
    ----------
    tests : DataFrame
        Output of :func:`hypothesis_tests`.

    Returns
    -------
    verdicts : (4, 9) DataFrame
        ``id``, ``hypothesis`` (the statement), ``verdict_all``, ``verdict_disjoint``
        (``"supported"`` when every test of the hypothesis passes, ``"not testable at this
        size"`` when one cannot be made, else ``"not supported"``), ``n_pairs_all``,
        ``n_pairs_disjoint``, ``alpha``, ``min_effect`` and ``evidence`` (each test on all
        pairs: estimate, interval, p-value and outcome).
    """
    rows = []
    for hid, block in tests.groupby("id", sort=True):
        evidence = "; ".join(
            f"{t.test} = {t.estimate_all:+.3f} [{t.ci_low_all:+.3f}, {t.ci_high_all:+.3f}], "
            f"p = {t.p_all:.3g} ({t.outcome_all})" for t in block.itertuples())
        rows.append({"id": hid, "hypothesis": STATEMENTS[hid],
                     **{f"verdict_{s}": _verdict(block[f"outcome_{s}"]) for s in SUBSETS},
                     **{f"n_pairs_{s}": int(block[f"n_pairs_{s}"].iloc[0]) for s in SUBSETS},
                     "alpha": block["alpha"].iloc[0], "min_effect": block["min_effect"].iloc[0],
                     "evidence": evidence})
    return pd.DataFrame(rows)
