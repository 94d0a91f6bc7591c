"""Statistics of the experiment's results: the tests of the paper's section 4 and its hypotheses.

Fu et al., "Which Way from B to A", compare the OT coupling with the CLIP and random couplings
within each similarity group by the Wilcoxon signed-rank test on the per-pair differences of PPL
and of coupling cost (their Table 1), and state four hypotheses (section 3) that this module turns
into computed verdicts.

The input is the experiment's results table (:func:`otinterp.experiment.load_results`): one row
per (pair, coupling) with at least the columns ``pair_id``, ``group``, ``coupling`` and the
metrics (``ppl``, ``cost``, ``w2``, ``cost_ratio``). Pairs are matched across couplings by
``pair_id``; a pair without a row for a coupling, a duplicated row or a NaN value is an error that
names the pair, never a silent drop.

Choices the paper leaves open (SPEC 4)
--------------------------------------
- Wilcoxon: :func:`scipy.stats.wilcoxon` with ``zero_method="wilcox"`` (zero differences are
  discarded) and ``method="auto"`` (exact null distribution for up to 50 differences without
  ties or zeros; otherwise exhaustive permutations up to 13 differences, the normal approximation
  above). ``statistic`` is the two-sided statistic, ``min(T+, T−)``.
- Differences are ``reference − other`` (OT minus CLIP or random), so the one-sided alternative
  ``"less"`` is "OT is smaller" and a negative rank-biserial correlation favours OT.
- Significance marks use the unadjusted two-sided p-value, as the paper's Table 1 does, with a
  ``†`` when the difference is significant the other way (the reference, OT, is larger); the Holm
  adjustment across groups (within one comparison and metric) is reported beside it, for the
  two-sided and the one-sided p-values.
- Trend tests (hypotheses 1, 2 and 4) are Spearman correlations over pairs, with the similarity
  group as the ordinal variable, one-sided in the direction the paper predicts. A hypothesis made
  of several tests is supported when every one of them is significant (intersection–union test:
  its p-value is the largest of theirs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats as st

from otinterp.couplings import COUPLINGS
from otinterp.io import atomic_write

__all__ = [
    "LABELS", "TEST_COLUMNS", "per_pair", "paired_tests", "holm", "rank_biserial",
    "significance_mark", "table1", "hypotheses", "largest_gaps", "write_table",
]

#: Display names of couplings and metrics in tables and figures.
LABELS = {"ot": "OT", "clip": "CLIP", "random": "Random", "ppl": "PPL", "cost": "cost"}

#: Columns of :func:`paired_tests`, in order.
TEST_COLUMNS = (
    "metric", "comparison", "reference", "other", "group", "n", "median_reference", "median_other",
    "median_difference", "statistic", "p_two_sided", "p_less", "p_two_sided_holm", "p_less_holm",
    "rank_biserial", "mark", "note",
)

#: Smallest sizes at which :func:`hypotheses` gives a verdict.
MIN_PAIRS = 5
MIN_GROUPS = 3

_STARS = ((0.001, "***"), (0.01, "**"))


def _listing(names: Sequence, limit: int = 5) -> str:
    names = list(names)
    shown = ", ".join(map(repr, names[:limit]))
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def per_pair(results: pd.DataFrame, metric: str, couplings: Sequence[str] = COUPLINGS) -> pd.DataFrame:
    """One row per pair: ``metric`` for each coupling, and the pair's similarity group.

    Parameters
    ----------
    results : DataFrame
        The experiment's results, one row per (pair, coupling).
    metric : str
        The column to spread, e.g. ``"ppl"`` or ``"cost"``.
    couplings : sequence of str
        The couplings every pair must have.

    Returns
    -------
    wide : (n_pairs, len(couplings) + 1) DataFrame
        Indexed by ``pair_id`` (sorted), one column per coupling and ``group``.

    Raises
    ------
    ValueError
        For a missing column, a coupling with no rows, a duplicated (pair, coupling) row, a pair
        missing a coupling, a NaN value, or a pair whose rows disagree on its group.
    """
    couplings = list(couplings)
    missing = [c for c in ("pair_id", "group", "coupling", metric) if c not in results.columns]
    if missing:
        raise ValueError(f"results lack column(s) {_listing(missing)}")
    absent = [c for c in couplings if c not in set(results["coupling"])]
    if absent:
        raise ValueError(f"results have no rows for coupling(s) {_listing(absent)}; "
                         f"present: {_listing(sorted(set(results['coupling'])))}")
    rows = results[results["coupling"].isin(couplings)]
    dup = rows.loc[rows.duplicated(["pair_id", "coupling"]), "pair_id"]
    if len(dup):
        raise ValueError(f"results have duplicate (pair, coupling) rows for pair(s) {_listing(dup.unique())}")
    wide = rows.pivot(index="pair_id", columns="coupling", values=metric)
    wide = wide.reindex(index=sorted(results["pair_id"].unique()), columns=couplings)
    present = pd.crosstab(rows["pair_id"], rows["coupling"]).reindex_like(wide).fillna(0).astype(bool)
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
    ``"†"`` when the reference's values are the larger ones."""
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
    return {**row, "statistic": float(two_sided.statistic), "p_two_sided": float(two_sided.pvalue),
            "p_less": float(less.pvalue), "rank_biserial": rank_biserial(d),
            "mark": _directed(significance_mark(two_sided.pvalue, alpha), np.median(d)),
            "note": f"{zeros} zero difference(s) discarded" if zeros else ""}


def _directed(mark: str, median_difference: float) -> str:
    """``mark`` with ``"†"`` appended when significant the wrong way (the reference is larger)."""
    return mark + "†" if mark.startswith("*") and median_difference > 0 else mark


def paired_tests(results: pd.DataFrame, metric: str, *, reference: str = "ot",
                 others: Sequence[str] = ("clip", "random"), alpha: float = 0.05) -> pd.DataFrame:
    """Wilcoxon signed-rank tests of ``reference`` against each other coupling, per similarity group.

    Parameters
    ----------
    results : DataFrame
        The experiment's results, one row per (pair, coupling).
    metric : str
        The compared column, e.g. ``"ppl"`` or ``"cost"``.
    reference : str
        The coupling every other one is compared with.
    others : sequence of str
        The couplings compared with ``reference``.
    alpha : float
        Significance level of the marks.

    Returns
    -------
    tests : DataFrame
        One row per (comparison, group), columns :data:`TEST_COLUMNS`: ``comparison`` such as
        ``"ot vs clip"``; ``n`` pairs; medians of each coupling and of the per-pair differences
        ``reference − other``; the two-sided ``statistic`` and ``p_two_sided``; ``p_less``
        (alternative: the reference is smaller); their Holm adjustments across the groups of the
        comparison; ``rank_biserial``; ``mark``; ``note``. A group with fewer than 2 pairs or
        only zero differences gets NaN statistics, mark ``"n/a"`` and a note saying why.

    Raises
    ------
    ValueError
        As :func:`per_pair` (a pair missing a coupling is named), or for ``alpha`` outside (0, 1).
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    wide = per_pair(results, metric, [reference, *others])
    rows = [
        {"metric": metric, "comparison": f"{reference} vs {other}", "reference": reference, "other": other,
         "group": group, **_wilcoxon(block[reference].to_numpy(), block[other].to_numpy(), alpha)}
        for other in others for group, block in wide.groupby("group", sort=True)
    ]
    tests = pd.DataFrame(rows)
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
        Rows such as ``"OT vs. CLIP PPL"``; columns the groups present, ``"0.5"`` … ``"5.0"``.
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
    table.index.name, table.columns.name = None, "Similarity Group"
    return table


def _trend(test: str, values: pd.Series, group: pd.Series, alternative: str) -> dict:
    """A one-sided Spearman test of ``values`` against ``group``."""
    if np.ptp(values) == 0 or np.ptp(group) == 0:
        rho = p = float("nan")
    else:
        rho, p = st.spearmanr(values, group, alternative=alternative)
    return {"test": f"Spearman ρ({test}, group)", "estimate": float(rho), "p": float(p)}


def _smaller(test: str, ref: pd.Series, other: pd.Series) -> dict:
    """The one-sided Wilcoxon test of ``ref < other`` over all pairs, with its rank-biserial r."""
    d = (ref - other).to_numpy()
    p = float("nan") if np.all(d == 0) else st.wilcoxon(d, zero_method="wilcox", method="auto", alternative="less").pvalue
    return {"test": f"Wilcoxon {test} (rank-biserial r)", "estimate": rank_biserial(d), "p": float(p)}


_STATEMENTS = {
    "H1": "The geodesic (OT) path is shorter, and its images have lower PPL, for more similar prompts "
          "(ρ with group < 0).",
    "H2": "Suboptimal couplings are relatively more costly for more similar prompts "
          "(ρ of C(σ)/W2 − 1 with group > 0).",
    "H3": "A shorter interpolating path gives a better image path: OT has lower PPL than CLIP and random.",
    "H4": "The PPL advantage of OT grows for more similar prompts (ρ of the relative PPL gain with group > 0).",
}


def hypotheses(results: pd.DataFrame, *, alpha: float = 0.05) -> pd.DataFrame:
    """Verdicts on the four hypotheses of the paper's section 3, with the numbers behind them.

    - H1: Spearman ρ of ``W2`` and of the OT PPL against the group (both expected negative).
    - H2: ρ of the relative excess cost ``C(σ)/W2 − 1`` of the CLIP and random couplings against
      the group (expected positive).
    - H3: one-sided Wilcoxon tests over all pairs: OT PPL below CLIP PPL, and below random PPL.
    - H4: ρ of the relative PPL gain ``(PPL_other − PPL_OT) / PPL_other`` against the group, for
      CLIP and random (expected positive).

    Parameters
    ----------
    results : DataFrame
        The experiment's results, one row per (pair, coupling), all three couplings per pair.
    alpha : float
        Significance level of the verdicts.

    Returns
    -------
    verdicts : (4, 13) DataFrame
        Columns ``id``, ``hypothesis``, ``verdict`` (``"supported"``, ``"not supported"`` or
        ``"not testable at this size"``: fewer than :data:`MIN_PAIRS` pairs, or for the trend
        hypotheses fewer than :data:`MIN_GROUPS` groups), ``evidence`` (a sentence), ``p`` (the
        largest p-value of the hypothesis's tests), ``n_pairs``, ``n_groups``, and for each of its
        two tests ``test_i``, ``estimate_i`` (ρ, or rank-biserial r), ``p_i`` (one-sided).
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    ppl = per_pair(results, "ppl")
    ratio = per_pair(results, "cost_ratio")
    w2 = per_pair(results, "w2", ["ot"])["ot"]
    group = ppl["group"]
    others = [c for c in COUPLINGS if c != "ot"]
    tests = {
        "H1": [_trend("W2", w2, group, "less"), _trend("OT PPL", ppl["ot"], group, "less")],
        "H2": [_trend(f"{LABELS[c]} C(σ)/W2 − 1", ratio[c] - 1, group, "greater") for c in others],
        "H3": [_smaller(f"OT < {LABELS[c]} PPL", ppl["ot"], ppl[c]) for c in others],
        # 0 / 0 (both paths have zero length) is no gain, not a missing value.
        "H4": [_trend(f"{LABELS[c]} relative PPL gain", ((ppl[c] - ppl["ot"]) / ppl[c]).fillna(0.0), group,
                      "greater") for c in others],
    }
    n_pairs, n_groups = len(ppl), group.nunique()
    rows = []
    for hid, parts in tests.items():
        p = float(np.max([t["p"] for t in parts]))  # NaN propagates: a test not made supports nothing
        too_small = n_pairs < MIN_PAIRS or (hid != "H3" and n_groups < MIN_GROUPS)
        verdict = ("not testable at this size" if too_small
                   else "supported" if p < alpha else "not supported")
        evidence = "; ".join(f"{t['test']} = {t['estimate']:+.3f} (one-sided p = {t['p']:.3g})" for t in parts)
        row = {"id": hid, "hypothesis": _STATEMENTS[hid], "verdict": verdict,
               "evidence": f"{evidence}; {n_pairs} pairs in {n_groups} groups.",
               "p": p, "n_pairs": n_pairs, "n_groups": n_groups}
        for i, t in enumerate(parts, 1):
            row.update({f"test_{i}": t["test"], f"estimate_{i}": t["estimate"], f"p_{i}": t["p"]})
        rows.append(row)
    return pd.DataFrame(rows)


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


_WRITERS = {
    "csv": lambda df, index, note: df.to_csv(index=index),
    "md": lambda df, index, note: df.to_markdown(index=index, floatfmt=".4g") + (f"\n\n*{note}*" if note else "") + "\n",
    "tex": lambda df, index, note: (f"% {note}\n" if note else "")
    + df.to_latex(index=index, escape=True, float_format="{:.4g}".format, na_rep="--"),
}


def write_table(df: pd.DataFrame, directory: str | Path, name: str,
                formats: Sequence[str] = ("csv", "md", "tex"), *, note: str | None = None) -> list[Path]:
    """Write ``df`` as ``directory/name.<format>`` for each format, atomically.

    Parameters
    ----------
    df : DataFrame
        The table; its index is written unless it is a plain ``RangeIndex``.
    directory : str or Path
        Created if missing.
    name : str
        File name without extension.
    formats : sequence of {"csv", "md", "tex"}
        CSV (full precision), Markdown and LaTeX (4 significant digits).
    note : str, optional
        A caveat (e.g. random-weight models) written under the Markdown table and as a comment
        above the LaTeX one.

    Returns
    -------
    paths : list of Path
        The files written, in the order of ``formats``.
    """
    unknown = [f for f in formats if f not in _WRITERS]
    if unknown:
        raise ValueError(f"unknown table format(s) {_listing(unknown)}; expected {_listing(_WRITERS)}")
    index = not isinstance(df.index, pd.RangeIndex)
    return [atomic_write(lambda tmp, f=f: Path(tmp).write_text(_WRITERS[f](df, index, note)),
                         Path(directory) / f"{name}.{f}") for f in formats]
