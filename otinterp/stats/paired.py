"""Paired comparisons of OT with the other paths, per similarity group: the paper's Table 1.

The input is the experiment's results table: one row per (pair, coupling), and per latent seed
when there is a ``seed`` column, with at least ``pair_id``, ``group``, ``coupling`` and the
metrics (``ppl``, ``cost``, ``w2``, ``cost_ratio``). Pairs are matched across paths by
``pair_id``; with several seeds a pair's value is its mean over the seeds (:func:`per_pair`).
A pair without a row for a coupling, a duplicated row or a NaN value is an error that names the
pair, never a silent drop. Couplings are any of :data:`PATHS` present, ``"ot"`` the reference.

Choices the paper leaves open (docs/definitions.md §8–§9)
---------------------------------------------------------------
- Wilcoxon: :func:`scipy.stats.wilcoxon` with ``zero_method="wilcox"`` (zero differences are
  discarded) and ``method="auto"``. ``statistic`` is the two-sided statistic ``min(T+, T−)``.
- Differences are ``reference − other`` (OT minus the other path), so the one-sided alternative
  ``"less"`` is "OT is smaller" and a negative rank-biserial correlation favours OT.
- Marks use the unadjusted two-sided p-value, as the paper's Table 1 does. Their direction is
  the test's: the side it rejects towards, the sign of ``T+ − T−`` (of the rank-biserial r),
  never the sign of the median difference, which can disagree on skewed data. A difference
  significant against OT (OT larger) gets ``†`` after its stars. Holm adjustments across groups
  (within one comparison and metric) are reported beside the marks.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats as st

from otinterp.names import PATH_LABELS, PATHS

__all__ = [
    "PATHS", "LABELS", "TEST_COLUMNS", "AGAINST_OT", "N_ROW", "COST_NOTE", "per_pair", "present_paths", "holm",
    "min_pairs", "rank_biserial", "significance_mark", "paired_tests", "table1", "mark_legend", "seeds_note",
    "largest_gaps",
]

#: Display names of paths and metrics in tables and figures.
LABELS = {**PATH_LABELS, "ppl": "PPL", "cost": "cost"}

#: Columns of :func:`paired_tests`, in order.
TEST_COLUMNS = (
    "metric", "comparison", "reference", "other", "group", "n", "median_reference", "median_other",
    "median_difference", "statistic", "p_two_sided", "p_less", "p_two_sided_holm", "p_less_holm",
    "rank_biserial", "mark", "note",
)

#: The last row of :func:`table1`: each group's number of pairs.
N_ROW = "n (pairs)"

#: Appended to the stars of a difference significant against the reference (OT larger).
AGAINST_OT = "†"

#: What the coupling-cost tests mean.
COST_NOTE = ("Coupling cost: OT's cost is W2, the least cost of any coupling, so OT <= every other coupling "
             "by construction; the p-values of the cost tests measure only the number of pairs.")

_STARS = ((0.001, "***"), (0.01, "**"))


def _listing(names: Sequence, limit: int = 5) -> str:
    names = list(names)
    shown = ", ".join(map(repr, names[:limit]))
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def present_paths(results: pd.DataFrame) -> list[str]:
    """The paths of :data:`PATHS` that ``results`` has rows for, in display order.

    Raises
    ------
    ValueError
        For a coupling that is not one of :data:`PATHS`, or results without ``"ot"`` rows.
    """
    present = set(results["path"])
    unknown = sorted(present - set(PATHS))
    if unknown:
        raise ValueError(f"results have unknown coupling(s) {_listing(unknown)}; expected some of {_listing(PATHS)}")
    if "ot" not in present:
        raise ValueError("results have no rows for the reference coupling 'ot'")
    return [p for p in PATHS if p in present]


def _seed_means(rows: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Rows averaged over the ``seed`` column: one per (pair, coupling), every seed required."""
    dup = rows.loc[rows.duplicated(["pair_id", "path", "seed"]), "pair_id"]
    if len(dup):
        raise ValueError(f"results have duplicate (pair, coupling, seed) rows for pair(s) {_listing(dup.unique())}")
    seeds = rows["seed"].nunique()
    count = rows.groupby(["pair_id", "path"])["seed"].nunique()
    short = count[count < seeds]
    if len(short):
        named = [f"{pid!r} ({c}: {n} of {seeds} seeds)" for (pid, c), n in short.head(5).items()]
        raise ValueError(f"pair(s) lack a seed: {', '.join(named)}")
    nan = rows.loc[rows[metric].isna(), "pair_id"]
    if len(nan):
        raise ValueError(f"{metric!r} is NaN for pair(s) {_listing(nan.unique())}")
    return rows.groupby(["pair_id", "path"], as_index=False)[metric].mean()


def per_pair(results: pd.DataFrame, metric: str, paths: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per pair: ``metric`` for each coupling (its mean over seeds), and the pair's group.

    Parameters
    ----------
    results : DataFrame
        The experiment's results, one row per (pair, coupling[, seed]).
    metric : str
        The column to spread, e.g. ``"ppl"`` or ``"cost"``.
    paths : sequence of str, optional
        The paths every pair must have; default :func:`present_paths`.

    Returns
    -------
    wide : (n_pairs, len(paths) + 1) DataFrame
        Indexed by ``pair_id`` (sorted), one column per coupling and ``group``. With a ``seed``
        column, each value is the mean over the seeds (every seed required).

    Raises
    ------
    ValueError
        For a missing column, a coupling with no rows, a duplicated (pair, coupling[, seed]) row,
        a pair missing a coupling or a seed, a NaN value, or a pair whose rows disagree on its
        group.
    """
    paths = present_paths(results) if paths is None else list(paths)
    missing = [c for c in ("pair_id", "group", "path", metric) if c not in results.columns]
    if missing:
        raise ValueError(f"results lack column(s) {_listing(missing)}")
    absent = [c for c in paths if c not in set(results["path"])]
    if absent:
        raise ValueError(f"results have no rows for coupling(s) {_listing(absent)}; "
                         f"present: {_listing(sorted(set(results['path'])))}")
    rows = results[results["path"].isin(paths)]
    if "seed" in rows.columns:
        rows = _seed_means(rows, metric)
    dup = rows.loc[rows.duplicated(["pair_id", "path"]), "pair_id"]
    if len(dup):
        raise ValueError(f"results have duplicate (pair, coupling) rows for pair(s) {_listing(dup.unique())}")
    wide = rows.pivot(index="pair_id", columns="path", values=metric)
    wide = wide.reindex(index=sorted(results["pair_id"].unique()), columns=paths)
    present = pd.crosstab(rows["pair_id"], rows["path"]).reindex_like(wide).fillna(0).astype(bool)
    lacking = present[~present.all(axis=1)]
    if len(lacking):
        named = [f"{pid!r} (no {', '.join(has.index[~has])})" for pid, has in lacking.head(5).iterrows()]
        more = f" and {len(lacking) - 5} more" if len(lacking) > 5 else ""
        raise ValueError(f"pair(s) lack a result for a coupling: {', '.join(named)}{more}")
    nan = wide.index[wide.isna().any(axis=1)]
    if len(nan):
        raise ValueError(f"{metric!r} is NaN for pair(s) {_listing(nan)}")
    groups = results.groupby("pair_id")["group"].agg(["nunique", "first"])
    bad = groups.index[(groups["nunique"] != 1)]
    if len(bad):
        raise ValueError(f"pair(s) {_listing(bad)} have no single similarity group")
    wide["group"] = groups["first"]
    wide.columns.name = None
    return wide


def seeds_note(results: pd.DataFrame) -> str | None:
    """The sentence tables carry when the results hold several latent seeds, else None."""
    if "seed" not in results.columns or results["seed"].nunique() < 2:
        return None
    return (f"Each pair's value is its mean over {results['seed'].nunique()} latent seeds; "
            "the tests and estimates are over pairs.")


def min_pairs(alpha: float, statistic: str = "wilcoxon", sides: int = 1) -> int:
    """The fewest pairs with which an exact test can reach ``p < alpha`` at all.

    The most extreme outcome of an exact signed-rank test of ``n`` non-zero differences has
    probability ``2^−n`` per side; the most extreme ordering of ``n`` distinct values in an exact
    Spearman permutation test ``1/n!``. Below these sizes no data can be significant.

    Parameters
    ----------
    alpha : float
        Significance level, in (0, 1).
    statistic : {"wilcoxon", "spearman"}
    sides : {1, 2}
        One- or two-sided test.

    Returns
    -------
    n : int
        For the Wilcoxon test: 5 one-sided and 6 two-sided at 0.05, 8 two-sided at 0.01, 11 at 0.001.
    """
    if statistic not in ("wilcoxon", "spearman") or sides not in (1, 2):
        raise ValueError(f"unknown test {statistic!r} with {sides} side(s)")
    smallest_p = (lambda n: 0.5 ** n) if statistic == "wilcoxon" else (lambda n: 1 / math.factorial(n))
    n = 1
    while not sides * smallest_p(n) < alpha:
        n += 1
    return n


def holm(p: ArrayLike) -> np.ndarray:
    """Holm's step-down adjustment of p-values for multiple testing.

    Parameters
    ----------
    p : (m,) array_like
        p-values; NaN entries are left out of the family and stay NaN.

    Returns
    -------
    adjusted : (m,) ndarray
        ``max_{j <= i} min(1, (m − j + 1) p_(j))`` for the ``i``-th smallest p-value, in the input's
        order.
    """
    p = np.asarray(p, dtype=float)
    adjusted = np.full_like(p, np.nan)
    idx = np.flatnonzero(~np.isnan(p))
    order = idx[np.argsort(p[idx], kind="stable")]
    m = len(order)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    return adjusted


def rank_biserial(d: ArrayLike) -> float:
    """Matched-pairs rank-biserial correlation of paired differences.

    ``r = (T+ − T−) / (T+ + T−)`` where ``T±`` are the sums of the ranks of ``|d|`` (average ranks
    for ties) over the positive and negative non-zero differences; zeros are discarded, as in
    the Wilcoxon test with ``zero_method="wilcox"``.

    Parameters
    ----------
    d : (n,) array_like
        Paired differences ``reference − other``; ``r < 0`` when the reference tends to be smaller.

    Returns
    -------
    r : float
        In ``[-1, 1]``; NaN when every difference is zero.
    """
    d = np.asarray(d, dtype=float)
    d = d[d != 0]
    if not len(d):
        return float("nan")
    ranks = st.rankdata(np.abs(d))
    t_plus, t_minus = ranks[d > 0].sum(), ranks[d < 0].sum()
    return float((t_plus - t_minus) / (t_plus + t_minus))


def significance_mark(p: float, alpha: float = 0.05) -> str:
    """The mark of a p-value: ``"-"`` when ``p >= alpha``, else ``"***"`` (p < 0.001),
    ``"**"`` (p < 0.01) or ``"*"``; ``"n/a"`` for NaN (no test). :func:`paired_tests` appends
    :data:`AGAINST_OT` when the test rejects towards the reference being larger."""
    if np.isnan(p):
        return "n/a"
    if p >= alpha:
        return "-"
    return next((mark for level, mark in _STARS if p < level), "*")


def _wilcoxon(ref: np.ndarray, other: np.ndarray, alpha: float) -> dict:
    """The test columns of one (group, comparison) cell."""
    d = ref - other
    row = {"n": len(d), "median_reference": np.median(ref), "median_other": np.median(other),
           "median_difference": np.median(d)}
    zeros = int(np.sum(d == 0))
    if len(d) < 2 or zeros == len(d):
        note = f"too few pairs for a test (n={len(d)})" if len(d) < 2 else "all differences are zero"
        nan = float("nan")
        return {**row, "statistic": nan, "p_two_sided": nan, "p_less": nan, "rank_biserial": nan,
                "mark": "n/a", "note": note}
    two_sided = st.wilcoxon(d, zero_method="wilcox", method="auto")
    less = st.wilcoxon(d, zero_method="wilcox", method="auto", alternative="less")
    r = rank_biserial(d)
    mark = significance_mark(two_sided.pvalue, alpha)
    need = min_pairs(alpha, "wilcoxon", sides=2)
    notes = [f"{zeros} zero difference(s) discarded" if zeros else "",
             f"{len(d) - zeros} non-zero difference(s) cannot reach p < {alpha:g} (two-sided exact test needs {need})"
             if len(d) - zeros < need else ""]
    return {**row, "statistic": float(two_sided.statistic), "p_two_sided": float(two_sided.pvalue),
            "p_less": float(less.pvalue), "rank_biserial": r,
            "mark": (f"n = {len(d) - zeros} < {need}" if len(d) - zeros < need
                     else mark + AGAINST_OT if mark.startswith("*") and r > 0 else mark),
            "note": "; ".join(n for n in notes if n)}


def paired_tests(results: pd.DataFrame, metric: str, *, reference: str = "ot",
                 others: Sequence[str] | None = None, alpha: float = 0.05) -> pd.DataFrame:
    """Wilcoxon signed-rank tests of ``reference`` against each other path, per similarity group.

    Parameters
    ----------
    results : DataFrame
        The experiment's results, one row per (pair, coupling[, seed]).
    metric : str
        The compared column, e.g. ``"ppl"`` or ``"cost"``.
    reference : str
        The path every other one is compared with.
    others : sequence of str, optional
        The paths compared with ``reference``; default every other path present
        (:func:`present_paths`; for ``"cost"``, every other one but ``"slerp"``, which is no
        coupling).
    alpha : float
        Significance level of the marks.

    Returns
    -------
    tests : DataFrame
        One row per (comparison, group), columns :data:`TEST_COLUMNS`: ``comparison`` such as
        ``"ot vs clip"``; ``n`` pairs; medians of each path and of the per-pair differences
        ``reference − other``; the two-sided ``statistic`` and ``p_two_sided``; ``p_less``
        (alternative: the reference is smaller); their Holm adjustments across the groups of the
        comparison; ``rank_biserial``; ``mark`` (stars, with :data:`AGAINST_OT` when the test
        rejects towards the reference being larger: ``rank_biserial > 0``); ``note``. A group
        with fewer than 2 pairs or only zero differences gets NaN statistics, mark ``"n/a"``
        and a note saying why.

    Raises
    ------
    ValueError
        As :func:`per_pair` (a pair missing a path is named), or for ``alpha`` outside (0, 1).
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if others is None:
        others = [p for p in present_paths(results) if p != reference and not (metric == "cost" and p == "slerp")]
    wide = per_pair(results, metric, [reference, *others])
    rows = [
        {"metric": metric, "comparison": f"{reference} vs {other}", "reference": reference, "other": other,
         "group": group, **_wilcoxon(block[reference].to_numpy(), block[other].to_numpy(), alpha)}
        for other in others for group, block in wide.groupby("group", sort=True)
    ]
    tests = pd.DataFrame(rows, columns=[c for c in TEST_COLUMNS if not c.endswith("_holm")])
    for column in ("p_two_sided", "p_less"):
        tests[f"{column}_holm"] = tests.groupby("comparison")[column].transform(holm)
    return tests[list(TEST_COLUMNS)]


def _label(key: str) -> str:
    return LABELS.get(key, key)


def table1(tests: pd.DataFrame) -> pd.DataFrame:
    """The paper's Table 1: significance marks by comparison (rows) and similarity group (columns).

    Parameters
    ----------
    tests : DataFrame
        Output of :func:`paired_tests`, or several of them concatenated (one row of the table per
        comparison and metric, in order of appearance).

    Returns
    -------
    table : (n_comparisons, n_groups) DataFrame of str
        Rows such as ``"OT vs. CLIP PPL"``, and a last row :data:`N_ROW` with each group's
        number of pairs; columns the groups present, ``"0.5"`` … ``"5.0"``.
        :func:`mark_legend` explains the marks.
    """
    missing = [c for c in ("metric", "reference", "other", "group", "mark") if c not in tests.columns]
    if missing:
        raise ValueError(f"tests lack column(s) {_listing(missing)}: pass the output of paired_tests")
    rows = tests.assign(
        row=[f"{_label(r)} vs. {_label(o)} {_label(m)}"
             for r, o, m in zip(tests["reference"], tests["other"], tests["metric"])],
        column=tests["group"].map("{:.1f}".format),
    )
    table = rows.pivot(index="row", columns="column", values="mark")
    columns = [f"{g:.1f}" for g in sorted(tests["group"].unique())]
    table = table.reindex(index=pd.unique(rows["row"]), columns=columns)
    n = tests.groupby(tests["group"].map("{:.1f}".format))["n"].max()
    table.loc[N_ROW] = n.reindex(columns).map(lambda v: f"{v:.0f}" if pd.notna(v) else "0")
    table.index.name, table.columns.name = None, "Similarity Group"
    return table


def mark_legend(alpha: float = 0.05) -> str:
    """What the marks of :func:`table1` mean (written under Table 1 in every format)."""
    return (f"Wilcoxon signed-rank test per group, two-sided: - not significant at {alpha:g}; *, **, *** "
            f"significant at {alpha:g}, 0.01, 0.001 with OT smaller; {AGAINST_OT} after the stars: significant "
            "with OT larger (OT worse). The direction is the test's (the sign of T+ - T-), not the median's. "
            f"n = k < m: only k non-zero differences, and the exact test needs m to reach {alpha:g} at all "
            f"(m = {min_pairs(alpha, sides=2)} here); n/a: no test (fewer than 2 pairs, or every difference zero). "
            f"The last row gives each group's pairs.")


def largest_gaps(results: pd.DataFrame, n: int, *, metric: str = "ppl", reference: str = "ot",
                 other: str = "clip") -> list[str]:
    """The ``n`` pair ids with the largest ``other − reference`` difference of ``metric``.

    The default picks the pairs of the paper's Figure 2: largest CLIP − OT PPL gap. Ties are
    broken by ``pair_id``.

    Raises
    ------
    ValueError
        If ``n`` is not between 1 and the number of pairs, or as :func:`per_pair`.
    """
    wide = per_pair(results, metric, [reference, other])
    if not 1 <= n <= len(wide):
        raise ValueError(f"n must be between 1 and the number of pairs ({len(wide)}), got {n}")
    gap = (wide[other] - wide[reference]).sort_values(ascending=False, kind="stable")
    return gap.index[:n].tolist()
