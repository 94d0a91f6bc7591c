"""Verdicts on the four hypotheses of the paper's section 3: tests that can confirm *or* refute.

Each hypothesis is a set of tests over pairs, each with a predicted sign ``s``:

- H1: Spearman ρ of ``W2`` and of the OT PPL with the similarity group (``s = −1``).
- H2: ρ of the relative excess cost ``C(σ)/W2 − 1`` of CLIP and of random with the group
  (``s = +1``).
- H3: "for a fixed pair, a shorter path gives a better image path", within each pair: OT vs
  CLIP and OT vs random (``PPL_OT − PPL_other``), and the cheaper of CLIP/random (by the pair's
  coupling costs) vs the dearer (``PPL_cheaper − PPL_dearer``); Wilcoxon signed-rank tests with
  the matched-pairs rank-biserial r (``s = −1``).
- H4: ρ of the relative PPL gain ``(PPL_other − PPL_OT) / PPL_other`` with the group, for CLIP
  and random (``s = +1``).

Every test gets one of :data:`VERDICTS` (docs/definitions.md §9), with ``θ`` its estimate and
``[lo, hi]`` a percentile bootstrap interval at level ``1 − 2α`` (the level at which an interval
that excludes 0 on one side agrees with a one-sided test at ``α``, and at which an interval
inside ``(−min_effect, min_effect)`` is the two one-sided tests of equivalence), in this order:

1. ``not testable``: fewer pairs than the exact test needs to reach ``α`` at all, fewer than
   :data:`MIN_GROUPS` groups for a trend, no variation, or a path the test needs is absent;
2. ``supported``: one-sided p towards ``s`` below ``α``, ``s·θ ≥ min_effect`` and the interval
   excludes 0 on that side; ``contradicted``: the same towards ``−s``;
3. ``negligible``: the whole interval inside ``(−min_effect, min_effect)``;
4. ``inconclusive`` otherwise, with the reasons.

A hypothesis is ``contradicted`` when one of its tests is contradicted with its p-value Holm-adjusted
across the hypothesis' tests (this wins), ``not testable`` when one of its tests is, ``supported``
when all are, ``negligible`` when all are, else ``inconclusive``. Pairs that share a caption are
not independent, so every test and verdict is also computed on the caption-disjoint subset
(:func:`otinterp.data.caption_disjoint_subset`, round-robin across groups) and shown beside the
all-pairs one.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import pandas as pd
from scipy import stats as st

from otinterp.data.dependence import caption_disjoint_subset
from otinterp.stats.paired import LABELS, holm, min_pairs, per_pair, rank_biserial

__all__ = ["VERDICTS", "MIN_GROUPS", "SUBSETS", "STATEMENTS", "NEEDED_PATHS", "judge_test",
           "judge_hypothesis", "bootstrap_ci", "spearman_rows", "rank_biserial_rows", "hypothesis_tests",
           "verdicts", "verdict_rule", "disagreements"]

#: The five verdicts, for a test and for a hypothesis.
VERDICTS = ("supported", "contradicted", "negligible", "inconclusive", "not testable")
#: Smallest number of similarity groups for a trend test.
MIN_GROUPS = 3
#: The sets of pairs every test is computed on: all pairs, and a caption-disjoint subset.
SUBSETS = ("all", "disjoint")
#: The paths besides ``ot`` each hypothesis needs: H2–H4 compare OT with both other couplings.
NEEDED_PATHS = {"H1": (), "H2": ("clip", "random"), "H3": ("clip", "random"), "H4": ("clip", "random")}

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
                 seed: int | tuple = 0, confidence: float = 0.90, chunk: int = 100) -> tuple[float, float]:
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
        Coverage of the interval (the verdicts use ``1 − 2α``).
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


def judge_test(predicted: int, estimate: float, ci: tuple[float, float], p_towards: float, p_against: float,
                 *, alpha: float, min_effect: float, untestable: str | None = None) -> tuple[str, str]:
    """The verdict of one test, and the reason for it (docs/definitions.md §9).

    Parameters
    ----------
    predicted : {−1, +1}
        The sign ``s`` the hypothesis predicts.
    estimate : float
        ``θ``, Spearman's ρ or the rank-biserial r.
    ci : (float, float)
        ``[lo, hi]``, a two-sided interval at level ``1 − 2α``.
    p_towards, p_against : float
        One-sided p-values with the alternatives ``s·θ > 0`` and ``s·θ < 0``.
    alpha : float
        Significance level, in (0, 0.5): below 0.5 a test cannot be significant both ways.
    min_effect : float
        Smallest ``|θ|`` worth the name.
    untestable : str, optional
        Why the test cannot be made (too few pairs, a path absent); wins over everything.

    Returns
    -------
    verdict, reason : str
        ``verdict`` one of :data:`VERDICTS` (``"supported"`` meaning the test passes on the
        hypothesis' side).
    """
    if untestable:
        return "not testable", untestable
    low, high = ci
    for side, p, verdict in ((predicted, p_towards, "supported"), (-predicted, p_against, "contradicted")):
        excludes_zero = low > 0 if side > 0 else high < 0
        if p < alpha and side * estimate >= min_effect and excludes_zero:
            return verdict, f"p = {p:.3g} < {alpha:g} {'above' if side > 0 else 'below'} 0, |estimate| >= " \
                            f"{min_effect:g}, interval excludes 0"
    if -min_effect < low and high < min_effect:
        return "negligible", f"interval inside ±{min_effect:g}"
    side, p = (predicted, p_towards) if p_towards <= p_against else (-predicted, p_against)
    reasons = [f"not significant (p = {min(p_towards, p_against):.3g})" if not p < alpha else None,
               f"|estimate| below min_effect {min_effect:g}" if not side * estimate >= min_effect else None,
               "interval crosses 0" if not (low > 0 if side > 0 else high < 0) else None]
    return "inconclusive", "; ".join(r for r in reasons if r) or "interval undefined"


def judge_hypothesis(verdicts: pd.Series, p_against: pd.Series, tests: pd.Series, *,
                       alpha: float) -> tuple[str, str]:
    """The verdict of a hypothesis from the verdicts of its tests, and the reason.

    Parameters
    ----------
    verdicts : (m,) Series of str
        Each test's verdict (:func:`judge_test`).
    p_against : (m,) Series of float
        Each test's one-sided p-value against the prediction; Holm-adjusted here across the
        hypothesis' tests before a contradiction counts.
    tests : (m,) Series of str
        The tests' names, for the reason.
    alpha : float

    Returns
    -------
    verdict, reason : str
    """
    adjusted = holm(p_against.to_numpy(dtype=float))
    contradicted = (verdicts.to_numpy() == "contradicted") & (adjusted < alpha)
    if contradicted.any():
        named = ", ".join(f"{t} (Holm p = {p:.3g})" for t, p in zip(tests[contradicted], adjusted[contradicted]))
        return "contradicted", f"contradicted by {named}"
    for verdict, rule in (("not testable", any), ("supported", all), ("negligible", all)):
        if rule(verdicts == verdict):
            which = ", ".join(tests[verdicts == verdict])
            return verdict, (f"{which} not testable" if verdict == "not testable"
                             else f"every test {verdict}")
    open_ = ", ".join(f"{t}: {v}" for t, v in zip(tests, verdicts) if v != "supported")
    return "inconclusive", open_


def _trend(hid: str, name: str, values: pd.Series | None, group: pd.Series | None, predicted: int, alpha: float,
           missing: str | None) -> dict:
    """A Spearman test of ``values`` with ``group``; ``predicted`` is the sign, ±1."""
    test = {"id": hid, "test": f"ρ({name}, group)", "statistic": "Spearman ρ", "predicted": predicted}
    if missing:
        return {**test, "untestable": missing}
    v, g = values.to_numpy(dtype=float), group.to_numpy(dtype=float)
    n, n_groups, need = len(v), group.nunique(), min_pairs(alpha, "spearman")
    untestable = (f"n = {n} pairs < {need}" if n < need
                  else f"{n_groups} group(s) < {MIN_GROUPS}" if n_groups < MIN_GROUPS
                  else "no variation" if np.ptp(v) == 0 else None)
    if untestable:
        return {**test, "n": n, "untestable": untestable}
    rho = st.spearmanr(v, g).statistic
    p = {alt: st.spearmanr(v, g, alternative=alt).pvalue for alt in ("greater", "less")}
    return {**test, "n": n, "estimate": float(rho), **_directed(p, predicted), "resample": (spearman_rows, v, g)}


def _paired(hid: str, name: str, d: pd.Series | None, predicted: int, alpha: float, missing: str | None) -> dict:
    """A Wilcoxon signed-rank test of the differences ``d``; ``predicted`` is the sign, ±1."""
    test = {"id": hid, "test": f"r({name})", "statistic": "rank-biserial r", "predicted": predicted}
    if missing:
        return {**test, "untestable": missing}
    d = d.to_numpy(dtype=float)
    nonzero, need = int(np.sum(d != 0)), min_pairs(alpha, "wilcoxon")
    if nonzero < need:
        return {**test, "n": len(d), "untestable": f"n = {nonzero} non-zero differences < {need}"}
    p = {alt: st.wilcoxon(d, zero_method="wilcox", method="auto", alternative=alt).pvalue
         for alt in ("greater", "less")}
    return {**test, "n": len(d), "estimate": rank_biserial(d), **_directed(p, predicted),
            "resample": (rank_biserial_rows, d)}


def _directed(p: dict[str, float], predicted: int) -> dict[str, float]:
    """The one-sided p-values towards and against the predicted sign."""
    towards, against = ("greater", "less") if predicted > 0 else ("less", "greater")
    return {"p_towards": float(p[towards]), "p_against": float(p[against])}


def _tests(results: pd.DataFrame, alpha: float) -> Iterator[dict]:
    """Every test of every hypothesis on ``results`` (without intervals), testable or not."""
    present = set(results["path"])
    absent = [c for c in ("clip", "random") if c not in present]
    missing = f"needs path(s) {', '.join(absent)} (absent)" if absent else None
    others = [c for c in ("clip", "random") if c in present]
    ppl = per_pair(results, "ppl", ["ot", *others])
    group = ppl["group"]
    yield _trend("H1", "W2", per_pair(results, "w2", ["ot"])["ot"], group, -1, alpha, None)
    yield _trend("H1", "OT PPL", ppl["ot"], group, -1, alpha, None)
    ratio = per_pair(results, "cost_ratio", ["ot", *others])
    for c in ("clip", "random"):
        yield _trend("H2", f"{LABELS[c]} C(σ)/W2 − 1", None if missing else ratio[c] - 1, group, +1, alpha, missing)
    for c in ("clip", "random"):
        yield _paired("H3", f"PPL OT − {LABELS[c]}", None if missing else ppl["ot"] - ppl[c], -1, alpha, missing)
    d = None
    if not missing:
        cost = per_pair(results, "cost", others)
        clip_cheaper = cost["clip"] < cost["random"]
        d = np.where(clip_cheaper, ppl["clip"] - ppl["random"], ppl["random"] - ppl["clip"])
        # equal costs: neither is cheaper, the pair counts as a zero difference (discarded)
        d = pd.Series(np.where(cost["clip"] == cost["random"], 0.0, d), index=ppl.index)
    yield _paired("H3", "PPL cheaper − dearer of CLIP/Random (by the pair's costs)", d, -1, alpha, missing)
    for c in ("clip", "random"):
        # 0 / 0 (both paths have zero length) is no gain, not a missing value.
        gain = None if missing else ((ppl[c] - ppl["ot"]) / ppl[c]).fillna(0.0)
        yield _trend("H4", f"{LABELS[c]} relative PPL gain", gain, group, +1, alpha, missing)


def _subset_rows(table: pd.DataFrame, subset: str, *, alpha: float, min_effect: float, n_resamples: int,
                 seed: int) -> pd.DataFrame:
    """The tests of one subset of pairs, with intervals, p-values and verdicts."""
    rows = []
    for i, test in enumerate(_tests(table, alpha)):
        nan = float("nan")
        low = high = nan
        if "resample" in test:
            statistic, *samples = test["resample"]
            low, high = bootstrap_ci(statistic, *samples, n_resamples=n_resamples, seed=(seed, i),
                                     confidence=1 - 2 * alpha)
        estimate, p_towards, p_against = (test.get(k, nan) for k in ("estimate", "p_towards", "p_against"))
        verdict, reason = judge_test(test["predicted"], estimate, (low, high), p_towards, p_against, alpha=alpha,
                                       min_effect=min_effect, untestable=test.get("untestable"))
        rows.append({"id": test["id"], "test": test["test"], "statistic": test["statistic"],
                     "predicted": "< 0" if test["predicted"] < 0 else "> 0", "alpha": alpha, "min_effect": min_effect,
                     "ci_level": 1 - 2 * alpha, f"n_pairs_{subset}": table["pair_id"].nunique(),
                     f"estimate_{subset}": estimate, f"ci_low_{subset}": low, f"ci_high_{subset}": high,
                     f"p_{subset}": p_towards, f"p_against_{subset}": p_against,
                     f"verdict_{subset}": verdict, f"reason_{subset}": reason})
    return pd.DataFrame(rows)


def hypothesis_tests(results: pd.DataFrame, *, alpha: float = 0.05, min_effect: float = 0.1,
                     n_resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Every test of the four hypotheses, on all pairs and on a caption-disjoint subset.

    Parameters
    ----------
    results : DataFrame
        The experiment's results (one row per pair and path, and per seed: values are per-pair
        means over seeds), with ``ot`` and ideally ``clip`` and ``random`` (``slerp`` is ignored;
        a test whose path is absent is ``not testable``).
    alpha : float
        Significance level of the one-sided tests, in (0, 0.5); intervals are at ``1 − 2α``.
    min_effect : float
        Smallest ``|ρ|`` or ``|r|`` worth the name, in [0, 1].
    n_resamples : int
        Bootstrap resamples of each interval.
    seed : int
        Seed of the bootstrap (test ``i`` uses ``(seed, i)``).

    Returns
    -------
    tests : (9, ...) DataFrame
        One row per test: ``id`` (``"H1"`` …), ``test`` (such as ``"ρ(W2, group)"`` or
        ``"r(PPL OT − CLIP)"``), ``statistic``, ``predicted`` (``"< 0"`` or ``"> 0"``), ``alpha``,
        ``min_effect``, ``ci_level``, and for each subset ``s`` in :data:`SUBSETS`: ``n_pairs_s``,
        ``estimate_s``, ``ci_low_s``, ``ci_high_s``, ``p_s`` (one-sided, towards the prediction),
        ``p_against_s`` (one-sided, against it), ``verdict_s`` (one of :data:`VERDICTS`) and
        ``reason_s``.
    """
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5) (the intervals are at 1 − 2α), got {alpha}")
    if not 0 <= min_effect <= 1:
        raise ValueError(f"min_effect must be in [0, 1], got {min_effect}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    tables = {"all": results, "disjoint": caption_disjoint_subset(results)}
    frames = [_subset_rows(table, subset, alpha=alpha, min_effect=min_effect, n_resamples=n_resamples, seed=seed)
              for subset, table in tables.items()]
    keys = ["id", "test", "statistic", "predicted", "alpha", "min_effect", "ci_level"]
    return frames[0].merge(frames[1], on=keys, how="left", validate="one_to_one")


def _evidence(t) -> str:
    if t.verdict_all == "not testable":
        return f"{t.test}: not testable ({t.reason_all})"
    return (f"{t.test} = {t.estimate_all:+.3f} [{t.ci_low_all:+.3f}, {t.ci_high_all:+.3f}], "
            f"p = {t.p_all:.3g} ({t.verdict_all})")


def verdicts(tests: pd.DataFrame) -> pd.DataFrame:
    """One verdict per hypothesis, on all pairs and on the caption-disjoint subset.

    Parameters
    ----------
    tests : DataFrame
        Output of :func:`hypothesis_tests`.

    Returns
    -------
    verdicts : (4, 12) DataFrame
        ``id``, ``hypothesis`` (the statement), for each subset ``s`` ``verdict_s`` (one of
        :data:`VERDICTS`, :func:`judge_hypothesis`), ``reason_s`` and ``n_pairs_s``; ``alpha``,
        ``min_effect``, ``evidence`` (each test on all pairs: estimate, interval, p-value and
        verdict) and ``disagreement`` (one line when the two subsets' verdicts differ, else "").
    """
    rows = []
    for hid, block in tests.groupby("id", sort=True):
        row = {"id": hid, "hypothesis": STATEMENTS[hid]}
        for s in SUBSETS:
            verdict, reason = judge_hypothesis(block[f"verdict_{s}"], block[f"p_against_{s}"], block["test"],
                                                 alpha=float(block["alpha"].iloc[0]))
            row.update({f"verdict_{s}": verdict, f"reason_{s}": reason, f"n_pairs_{s}": int(block[f"n_pairs_{s}"].iloc[0])})
        row.update({"alpha": block["alpha"].iloc[0], "min_effect": block["min_effect"].iloc[0],
                    "evidence": "; ".join(_evidence(t) for t in block.itertuples())})
        row["disagreement"] = ("" if row["verdict_all"] == row["verdict_disjoint"] else
                               f"{hid}: {row['verdict_all']} on all {row['n_pairs_all']} pairs but "
                               f"{row['verdict_disjoint']} on the {row['n_pairs_disjoint']} caption-disjoint pairs")
        rows.append(row)
    return pd.DataFrame(rows)


def verdict_rule(alpha: float, min_effect: float) -> str:
    """The verdict rule in one paragraph, for the notes of every table of verdicts."""
    level = 1 - 2 * alpha
    return (f"Verdicts (docs/definitions.md §9): a test is supported when its one-sided p towards the predicted "
            f"sign is below {alpha:g}, |estimate| >= min_effect = {min_effect:g} and its {level:.0%} bootstrap "
            f"interval excludes 0 on that side; contradicted when the same holds towards the other sign; negligible "
            f"when the whole interval lies inside ±{min_effect:g}; inconclusive otherwise; not testable with too few "
            f"pairs or groups for the exact test to reach {alpha:g}, or a path absent. The interval level 1 − 2α = "
            f"{level:.0%} matches one-sided tests at {alpha:g} and the equivalence test. A hypothesis is contradicted "
            f"when a test is (Holm-adjusted across its tests), not testable when a test is, supported or negligible "
            f"when every test is, else inconclusive.")


def disagreements(verdicts: pd.DataFrame) -> list[str]:
    """The one-line notes of the hypotheses whose all-pairs and caption-disjoint verdicts differ."""
    return [line for line in verdicts["disagreement"] if line]
