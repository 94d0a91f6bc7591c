from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from otinterp.io import atomic_write
from otinterp.stats import (
    AGAINST_OT, COST_NOTE, N_ROW, TEST_COLUMNS, VERDICTS, bootstrap_ci, holm, hypothesis_tests, judge_hypothesis,
    judge_test, largest_gaps, mark_legend, min_pairs, disagreements,
    paired_tests, per_pair, rank_biserial, rank_biserial_rows, read_table_csv, seeds_note, significance_mark,
    spearman_rows, table1, verdicts, write_table,
)

GROUPS = tuple(np.arange(1, 11) / 2)
K = 4


def synthetic_results(per_group=6, *, groups=GROUPS, effect="ot_smaller", seed=0):
    """A results table with the experiment's schema.

    ``effect``: ``"ot_smaller"`` (OT has lower PPL and cost in every pair; W2 and OT PPL fall with
    the group, relative excess cost and PPL gain rise), ``"identical"`` (all couplings equal) or
    ``"symmetric"`` (differences ``+a, −a`` in equal numbers: no effect by construction).
    """
    rng = np.random.default_rng(seed)
    rows = []
    for g in groups:
        for i in range(per_group):
            pid = f"g{g:.1f}-p{i:03d}"
            # multiples of 2^-10 and shifts of 2^-7: sums are exact, so symmetric differences tie exactly
            w2 = np.round((6 - g + rng.uniform(0, 0.5)) * 1024) / 1024
            ppl_ot = np.round((0.6 - 0.05 * g + rng.uniform(0, 0.05)) * 1024) / 1024
            for j, c in enumerate(("ot", "clip", "random")):
                if effect == "ot_smaller":
                    excess = j * (0.1 * g + rng.uniform(0, 0.05))
                    gain = j * (0.02 * g + rng.uniform(0.01, 0.02))
                    cost, ppl = w2 * (1 + excess), ppl_ot / (1 - gain)
                elif effect == "identical":
                    cost, ppl = w2, ppl_ot
                else:
                    shift = (j > 0) * (-1) ** i * (i // 2 + 1) / 128
                    cost, ppl = w2 + shift, ppl_ot + shift
                rows.append({
                    "pair_id": pid, "prompt_a": f"prompt {pid} a", "prompt_b": f"prompt {pid} b",
                    "group": float(g), "score": float(g) - 0.25, "path": c, "cost": cost, "w2": w2,
                    "cost_ratio": cost / w2, "ppl": ppl, "distances": [ppl] * K, "max_step": ppl,
                    "total_length": K * ppl, "smoothness": 1.0,
                })
    return pd.DataFrame(rows)


def noisy_results(per_group, seed=1):
    """Synthetic results with PPL noise, so differences take both signs."""
    results = synthetic_results(per_group, groups=(1.0, 2.5, 4.0), seed=seed)
    results["ppl"] += np.random.default_rng(seed).normal(0, 0.05, len(results))
    return results


# --- the Wilcoxon tests --------------------------------------------------------------------------

@pytest.mark.parametrize("per_group", [9, 60])  # exact and normal-approximation p-values
def test_paired_tests_equal_scipy_wilcoxon(per_group):
    results = noisy_results(per_group)
    tests = paired_tests(results, "ppl")
    assert list(tests.columns) == list(TEST_COLUMNS)
    assert len(tests) == 2 * 3
    wide = results.pivot(index="pair_id", columns="path", values="ppl")
    group = results.groupby("pair_id")["group"].first()
    for row in tests.itertuples():
        block = wide[group == row.group]
        d = (block["ot"] - block[row.other]).to_numpy()
        two = st.wilcoxon(d)
        less = st.wilcoxon(d, alternative="less")
        assert row.n == per_group
        assert row.statistic == two.statistic
        assert row.p_two_sided == pytest.approx(two.pvalue, rel=1e-12)
        assert row.p_less == pytest.approx(less.pvalue, rel=1e-12)
        assert row.median_difference == pytest.approx(np.median(d))
        assert row.median_reference == pytest.approx(block["ot"].median())
        assert row.median_other == pytest.approx(block[row.other].median())
        assert row.rank_biserial == pytest.approx(rank_biserial(d))
        assert row.mark == significance_mark(two.pvalue)


def test_holm_equals_hand_computation():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> running max 0.06
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    # NaN is outside the family (m = 2) and stays NaN; values are clipped to 1
    np.testing.assert_allclose(holm([np.nan, 0.5, 0.4]), [np.nan, 0.8, 0.8])
    np.testing.assert_allclose(holm([0.6, 0.7]), [1.0, 1.0])
    assert holm([]).shape == (0,)


def test_holm_columns_adjust_across_groups_within_each_comparison():
    tests = paired_tests(noisy_results(9), "ppl")
    for _, block in tests.groupby("comparison"):
        np.testing.assert_allclose(block["p_two_sided_holm"], holm(block["p_two_sided"]))
        np.testing.assert_allclose(block["p_less_holm"], holm(block["p_less"]))
        assert (block["p_two_sided_holm"] >= block["p_two_sided"]).all()


def test_rank_biserial_equals_its_definition():
    # nonzero d = [1, -2, 3]: ranks of |d| are 1, 2, 3; T+ = 4, T- = 2
    assert rank_biserial([1.0, -2.0, 3.0, 0.0]) == pytest.approx((4 - 2) / 6)
    # tied |d|: ranks 1.5, 1.5, 3; T+ = 4.5, T- = 1.5
    assert rank_biserial([1.0, -1.0, 2.0]) == pytest.approx(0.5)
    assert rank_biserial([-1.0, -3.0]) == -1.0
    assert np.isnan(rank_biserial([0.0, 0.0]))


@pytest.mark.parametrize("p, alpha, mark", [
    (0.2, 0.05, "-"), (0.05, 0.05, "-"), (0.049, 0.05, "*"), (0.009, 0.05, "**"),
    (0.0009, 0.05, "***"), (0.03, 0.01, "-"), (0.07, 0.1, "*"), (np.nan, 0.05, "n/a"),
])
def test_significance_mark(p, alpha, mark):
    assert significance_mark(p, alpha) == mark


def test_ot_smaller_by_construction_is_significant_in_every_group():
    results = synthetic_results(6)
    for metric in ("ppl", "cost"):
        tests = paired_tests(results, metric)
        assert len(tests) == 2 * len(GROUPS)
        # n = 6, every difference negative: exact p = 2 / 2^6 two-sided, 1 / 2^6 one-sided
        np.testing.assert_allclose(tests["p_two_sided"], 2 / 64)
        np.testing.assert_allclose(tests["p_less"], 1 / 64)
        assert (tests["rank_biserial"] == -1).all()
        assert (tests["median_difference"] < 0).all()
        assert set(tests["mark"]) == {"*"}
        assert set(tests["note"]) == {""}


def test_ot_larger_by_construction_is_marked_the_other_way():
    results = synthetic_results(6)
    results["path"] = results["path"].map({"ot": "clip", "clip": "ot", "random": "random"})
    tests = paired_tests(results, "ppl", others=("clip",))
    assert (tests["median_difference"] > 0).all() and (tests["p_two_sided"] < 0.05).all()
    assert set(tests["mark"]) == {"*†"}
    assert (tests["p_less"] > 0.5).all()


def test_direction_is_the_tests_not_the_medians():
    # OT minus CLIP: the median is negative, yet the test rejects towards OT being larger
    d = np.array([-0.01] * 60 + [0.5] * 40 + [-0.02] * 5)
    results = synthetic_results(len(d), groups=(1.0,), effect="identical")
    results.loc[results["path"] == "ot", "ppl"] += d
    row = paired_tests(results, "ppl", others=("clip",)).iloc[0]
    assert row["median_difference"] < 0
    assert row["rank_biserial"] == pytest.approx(0.23, abs=0.01)
    assert row["p_two_sided"] == pytest.approx(0.036, abs=0.002) and row["p_less"] > 0.9
    assert row["mark"] == "*" + AGAINST_OT
    assert table1(pd.DataFrame([row])).iloc[0, 0] == "*†"
    # the mirror image is significant in OT's favour: a plain star
    results.loc[results["path"] == "ot", "ppl"] -= 2 * d
    assert paired_tests(results, "ppl", others=("clip",)).iloc[0]["mark"] == "*"


def test_mark_legend_explains_every_mark():
    legend = mark_legend(0.01)
    assert all(m in legend for m in ("-", "*, **, ***", AGAINST_OT, "n/a", "0.01", "OT larger"))


def test_seeds_are_averaged_per_pair():
    one = synthetic_results(6, groups=(1.0, 2.0))
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.01, len(one))
    seeds = pd.concat([one.assign(seed=0, ppl=one["ppl"] + noise), one.assign(seed=7, ppl=one["ppl"] - noise)])
    seeds = seeds.sample(frac=1.0, random_state=0)
    pd.testing.assert_frame_equal(per_pair(seeds, "ppl"), per_pair(one, "ppl"), atol=1e-12)
    pd.testing.assert_frame_equal(paired_tests(seeds, "ppl"), paired_tests(one, "ppl"))
    assert "mean over 2 latent seeds" in seeds_note(seeds) and seeds_note(one) is None
    with pytest.raises(ValueError, match=r"'g1\.0-p000' \(clip: 1 of 2 seeds\)"):
        per_pair(seeds[~((seeds["pair_id"] == "g1.0-p000") & (seeds["path"] == "clip") & (seeds["seed"] == 7))], "ppl")
    with pytest.raises(ValueError, match=r"duplicate \(pair, coupling, seed\)"):
        per_pair(pd.concat([seeds, seeds.iloc[[0]]]), "ppl")


def test_any_subset_of_paths_with_ot_as_reference():
    results = synthetic_results(6, groups=(1.0, 2.0))
    slerp = results[results["path"] == "clip"].assign(path="slerp", cost=np.nan, cost_ratio=np.nan)
    with_slerp = pd.concat([results, slerp])
    tests = paired_tests(with_slerp, "ppl")
    assert tests["comparison"].unique().tolist() == ["ot vs clip", "ot vs random", "ot vs slerp"]
    assert table1(tests).index[-2:].tolist() == ["OT vs. Slerp PPL", N_ROW]
    assert paired_tests(with_slerp, "cost")["comparison"].unique().tolist() == ["ot vs clip", "ot vs random"]
    only_random = results[results["path"] != "clip"]
    assert paired_tests(only_random, "ppl")["comparison"].unique().tolist() == ["ot vs random"]
    tests = hypothesis_tests(only_random, n_resamples=20).set_index("test")
    # H2–H4 compare OT with both other couplings: each of their tests names the absent one
    assert set(tests.loc[tests["id"] != "H1", "reason_all"]) == {"needs path(s) clip (absent)"}
    with pytest.raises(ValueError, match="unknown coupling.*'linear'"):
        paired_tests(results.replace({"path": {"clip": "linear"}}), "ppl")


def test_identical_couplings_give_nothing_significant():
    tests = paired_tests(synthetic_results(6, effect="identical"), "ppl")
    assert tests["p_two_sided"].isna().all() and tests["statistic"].isna().all()
    assert set(tests["mark"]) == {"n/a"}
    assert set(tests["note"]) == {"all differences are zero"}


def test_symmetric_differences_give_nothing_significant():
    tests = paired_tests(synthetic_results(6, effect="symmetric"), "ppl")
    assert set(tests["mark"]) == {"-"}
    np.testing.assert_allclose(tests["p_two_sided"], 1.0)
    np.testing.assert_allclose(tests["rank_biserial"], 0.0, atol=1e-12)


def test_group_with_one_pair_gives_nan_and_a_note():
    results = synthetic_results(4, groups=(1.0, 2.0))
    results = results[(results["group"] == 1.0) | (results["pair_id"] == "g2.0-p000")]
    tests = paired_tests(results, "ppl").set_index(["comparison", "group"])
    one = tests.loc[("ot vs clip", 2.0)]
    assert one["n"] == 1
    assert np.isnan(one["statistic"]) and np.isnan(one["p_two_sided"]) and np.isnan(one["p_less_holm"])
    assert one["mark"] == "n/a"
    assert one["note"] == "too few pairs for a test (n=1)"
    # the untestable group stays out of the Holm family: the other group's p is not multiplied
    full = tests.loc[("ot vs clip", 1.0)]
    assert full["p_two_sided_holm"] == full["p_two_sided"]


def test_zero_differences_are_discarded_and_noted():
    results = synthetic_results(8, groups=(1.0,))
    results.loc[(results["pair_id"] == "g1.0-p000") & (results["path"] == "clip"), "ppl"] = \
        results.loc[(results["pair_id"] == "g1.0-p000") & (results["path"] == "ot"), "ppl"].item()
    row = paired_tests(results, "ppl", others=("clip",)).iloc[0]
    assert row["note"] == "1 zero difference(s) discarded"
    assert row["n"] == 8 and row["mark"] == "*"
    assert row["p_less"] == pytest.approx(1 / 2 ** 7)


# --- bad input -----------------------------------------------------------------------------------

def test_pair_missing_a_coupling_is_an_error_naming_it():
    results = synthetic_results(3)
    results = results[~((results["pair_id"] == "g2.5-p001") & (results["path"] == "random"))]
    with pytest.raises(ValueError, match=r"'g2\.5-p001' \(no random\)"):
        paired_tests(results, "ppl")
    # the pair is fine for a comparison that does not need the missing coupling
    assert len(paired_tests(results, "ppl", others=("clip",))) == len(GROUPS)


def test_duplicate_rows_nan_values_and_missing_columns_are_errors():
    results = synthetic_results(2)
    with pytest.raises(ValueError, match=r"duplicate .* pair\(s\) 'g0\.5-p000'"):
        paired_tests(pd.concat([results, results.iloc[[0]]]), "ppl")
    nan = results.copy()
    nan.loc[5, "ppl"] = np.nan
    with pytest.raises(ValueError, match=rf"'ppl' is NaN for pair\(s\) '{nan.loc[5, 'pair_id']}'"):
        paired_tests(nan, "ppl")
    with pytest.raises(ValueError, match="results lack column.*'lpips'"):
        paired_tests(results, "lpips")
    with pytest.raises(ValueError, match="no rows for coupling.*'slerp'"):
        paired_tests(results, "ppl", others=("slerp",))
    split = results.copy()
    split.loc[1, "group"] = 5.0
    with pytest.raises(ValueError, match=r"'g0\.5-p000'.* no single similarity group"):
        paired_tests(split, "ppl")
    with pytest.raises(ValueError, match=r"alpha must be in \(0, 1\)"):
        paired_tests(results, "ppl", alpha=5)


def test_per_pair_is_one_row_per_pair():
    results = synthetic_results(2)
    wide = per_pair(results, "cost")
    assert wide.shape == (2 * len(GROUPS), 4)
    assert list(wide.columns) == ["ot", "clip", "random", "group"]
    assert wide.index.is_monotonic_increasing


# --- Table 1 and files ---------------------------------------------------------------------------

def test_table1_has_the_papers_shape_and_is_written(tmp_path):
    results = synthetic_results(6)
    table = table1(paired_tests(results, "ppl"))
    assert table.shape == (3, 10)
    assert list(table.index) == ["OT vs. CLIP PPL", "OT vs. Random PPL", N_ROW]
    assert list(table.columns) == ["0.5", "1.0", "1.5", "2.0", "2.5", "3.0", "3.5", "4.0", "4.5", "5.0"]
    assert (table.iloc[:2] == "*").all().all() and (table.loc[N_ROW] == "6").all()

    paths = write_table(table, tmp_path / "tables", "table1")
    assert [p.name for p in paths] == ["table1.csv", "table1.md", "table1.tex"]
    assert all(p.stat().st_size > 0 for p in paths)
    (tmp_path / "plain").write_text("x")  # the permissions of a plainly written file, not mkstemp's 0600
    assert {p.stat().st_mode for p in paths} == {(tmp_path / "plain").stat().st_mode}
    assert sorted(p.name for p in (tmp_path / "tables").iterdir()) == ["table1.csv", "table1.md", "table1.tex"]
    back = pd.read_csv(paths[0], index_col=0, dtype=str)
    assert back.equals(table.rename_axis(columns=None))
    md = paths[1].read_text()
    assert "| OT vs. Random PPL" in md and "5.0" in md
    tex = paths[2].read_text()
    assert "\\begin{tabular}" in tex and "OT vs. CLIP PPL" in tex


def test_write_table_carries_a_note(tmp_path):
    table = table1(paired_tests(synthetic_results(3, groups=(1.0,)), "ppl"))
    csv, md, tex = write_table(table, tmp_path, "t", note="random weights: numbers mean nothing")
    assert md.read_text().rstrip().endswith("*random weights: numbers mean nothing*")
    assert tex.read_text().startswith("% random weights: numbers mean nothing\n")
    assert csv.read_text().startswith("# random weights: numbers mean nothing\n")
    back = read_table_csv(csv, index_col=0, dtype=str)
    assert back.equals(pd.read_csv(csv, comment="#", index_col=0, dtype=str))
    assert back.equals(table.rename_axis(columns=None))


def test_write_table_writes_several_notes_and_skips_none(tmp_path):
    tests = paired_tests(synthetic_results(3, groups=(1.0,)), "cost")
    notes = [None, mark_legend(0.05), COST_NOTE]
    csv, md, tex = write_table(table1(tests), tmp_path, "t", note=notes)
    assert csv.read_text().splitlines()[:2] == [f"# {mark_legend(0.05)}", f"# {COST_NOTE}"]
    assert f"*{COST_NOTE}*" in md.read_text() and AGAINST_OT in md.read_text()
    assert r"\*, \*\*, \*\*\*" in md.read_text()  # the marks' stars escaped: text, not emphasis
    assert tex.read_text().splitlines()[:2] == [f"% {mark_legend(0.05)}", f"% {COST_NOTE}"]
    (plain,) = write_table(tests, tmp_path, "tests_cost", formats=("csv",), note=notes)
    pd.testing.assert_frame_equal(read_table_csv(plain).fillna({"note": ""}), tests, check_dtype=False)
    with pytest.raises(ValueError, match="may not contain '#'"):
        write_table(tests, tmp_path, "x", note="see #3")


def test_table1_of_several_metrics_keeps_their_order():
    results = synthetic_results(3, groups=(1.0, 3.0))
    table = table1(pd.concat([paired_tests(results, "ppl"), paired_tests(results, "cost")]))
    assert list(table.index) == ["OT vs. CLIP PPL", "OT vs. Random PPL", "OT vs. CLIP cost", "OT vs. Random cost",
                           N_ROW]
    assert list(table.columns) == ["1.0", "3.0"]


def test_write_table_without_index_and_bad_format(tmp_path):
    tests = paired_tests(synthetic_results(3, groups=(1.0,)), "ppl")
    (csv,) = write_table(tests, tmp_path, "tests_ppl", formats=("csv",))
    pd.testing.assert_frame_equal(pd.read_csv(csv).fillna({"note": ""}), tests, check_dtype=False)
    with pytest.raises(ValueError, match="unknown table format.*'xlsx'"):
        write_table(tests, tmp_path, "x", formats=("csv", "xlsx"))
    assert not (tmp_path / "x.csv").exists()


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "t.csv"
    target.write_text("old")

    def fail(tmp):
        Path(tmp).write_text("partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(fail, target)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]


# --- small n ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("alpha, sides, n", [(0.05, 2, 6), (0.01, 2, 8), (0.001, 2, 11), (0.05, 1, 5)])
def test_min_pairs_is_where_the_exact_wilcoxon_test_can_first_reach_alpha(alpha, sides, n):
    assert min_pairs(alpha, "wilcoxon", sides) == n
    alternative = "two-sided" if sides == 2 else "less"
    for size, reaches in ((n - 1, False), (n, True)):  # the most extreme data: every difference negative
        p = st.wilcoxon(-np.arange(1.0, size + 1), method="exact", alternative=alternative).pvalue
        assert bool(p < alpha) == reaches
    assert min_pairs(0.05, "spearman") == 4  # 1/4! < 0.05 <= 1/3!


def test_table1_says_when_a_group_is_too_small_to_reach_alpha():
    results = synthetic_results(4, groups=(1.0, 2.0))
    tests = paired_tests(results, "ppl")
    assert set(tests["mark"]) == {"n = 4 < 6"}
    assert "cannot reach p < 0.05 (two-sided exact test needs 6)" in tests["note"].iloc[0]
    table = table1(tests)
    assert table.loc[N_ROW].tolist() == ["4", "4"] and table.loc["OT vs. CLIP PPL", "1.0"] == "n = 4 < 6"
    assert (paired_tests(results, "ppl", alpha=0.2)["mark"] == "*").all()  # 2 × 2^-4 < 0.2
    assert "n = k < m" in mark_legend(0.05) and "m = 6" in mark_legend(0.05) and "m = 8" in mark_legend(0.01)


# --- the verdict of one test: the truth table ------------------------------------------------------

@pytest.mark.parametrize("case, args, verdict, reason", [
    ("untestable wins", (-1, -0.9, (-1, -0.8), 1e-9, 1.0, "n = 3 pairs < 4"), "not testable", "n = 3 pairs < 4"),
    ("supported", (-1, -0.5, (-0.7, -0.3), 1e-4, 1.0, None), "supported", "p = 0.0001 < 0.05 below 0"),
    ("supported, predicted > 0", (+1, 0.5, (0.3, 0.7), 1e-4, 1.0, None), "supported", "above 0"),
    ("contradicted", (-1, 0.83, (0.8, 0.86), 1.0, 1e-100, None), "contradicted", "p = 1e-100 < 0.05 above 0"),
    ("passing and negligible: supported", (-1, -0.12, (-0.09, -0.01), 1e-3, 1.0, None), "supported", ""),
    ("contradicted and negligible: contradicted", (-1, 0.12, (0.01, 0.09), 1.0, 1e-3, None), "contradicted", ""),
    ("huge n, no effect", (-1, -0.02, (-0.04, -0.005), 1e-6, 1.0, None), "negligible", "interval inside ±0.1"),
    ("no effect either way", (-1, 0.0, (-0.05, 0.05), 0.5, 0.5, None), "negligible", ""),
    ("interval across zero", (+1, 0.39, (-0.08, 0.73), 0.01, 0.99, None), "inconclusive", "interval crosses 0"),
    ("below min_effect", (-1, -0.05, (-0.15, -0.01), 1e-3, 1.0, None), "inconclusive",
     "|estimate| below min_effect 0.1"),
    ("not significant", (-1, -0.3, (-0.6, 0.1), 0.08, 0.92, None), "inconclusive", "not significant (p = 0.08)"),
    ("significant the other way but small", (-1, 0.05, (0.01, 0.2), 1.0, 1e-3, None), "inconclusive",
     "|estimate| below min_effect"),
    ("no interval", (-1, -0.5, (np.nan, np.nan), 1e-3, 1.0, None), "inconclusive", "interval crosses 0"),
])
def test_judge_test_truth_table(case, args, verdict, reason):
    predicted, estimate, ci, p_towards, p_against, untestable = args
    got, why = judge_test(predicted, estimate, ci, p_towards, p_against, alpha=0.05, min_effect=0.1,
                          untestable=untestable)
    assert got == verdict and got in VERDICTS, case
    assert reason in why, case


def test_judge_test_needs_every_condition_on_the_hypothesis_side():
    base = dict(predicted=-1, estimate=-0.5, ci=(-0.7, -0.3), p_towards=1e-4, p_against=1.0)
    assert judge_test(**base, alpha=0.05, min_effect=0.1)[0] == "supported"
    for change in ({"p_towards": 0.05}, {"estimate": -0.09}, {"ci": (-0.7, 0.0)}):
        assert judge_test(**{**base, **change}, alpha=0.05, min_effect=0.1)[0] == "inconclusive", change
    assert judge_test(**{**base, "estimate": -0.09}, alpha=0.05, min_effect=0.09)[0] == "supported"


# --- the verdict of a hypothesis ---------------------------------------------------------------------

def judge(verdicts, p_against=None):
    verdicts = pd.Series(verdicts)
    p = pd.Series(p_against if p_against is not None else [1.0] * len(verdicts), dtype=float)
    return judge_hypothesis(verdicts, p, pd.Series([f"t{i}" for i in range(len(verdicts))]), alpha=0.05)


@pytest.mark.parametrize("verdicts, p_against, expected", [
    (["supported", "supported"], None, "supported"),
    (["negligible", "negligible"], None, "negligible"),
    (["supported", "negligible"], None, "inconclusive"),
    (["supported", "inconclusive"], None, "inconclusive"),
    (["supported", "not testable"], None, "not testable"),
    (["contradicted", "not testable"], [0.001, np.nan], "contradicted"),  # contradicted wins over everything
    (["contradicted", "supported"], [0.001, 1.0], "contradicted"),
    (["contradicted", "contradicted"], [0.01, 0.04], "contradicted"),  # Holm: 2 × 0.01, then max(0.02, 0.04)
    (["contradicted", "inconclusive"], [0.03, 0.5], "inconclusive"),  # Holm: 2 × 0.03 = 0.06 ≥ 0.05
])
def test_judge_hypothesis_truth_table(verdicts, p_against, expected):
    assert judge(verdicts, p_against)[0] == expected


def test_a_contradiction_names_its_test_and_holm_p():
    verdict, reason = judge(["supported", "contradicted"], [1.0, 0.001])
    assert verdict == "contradicted" and reason == "contradicted by t1 (Holm p = 0.002)"
    assert judge(["not testable", "supported"])[1] == "t0 not testable"


# --- verdicts on data -----------------------------------------------------------------------------

def hypotheses(results, **kwargs):
    """Verdicts indexed by hypothesis, with a small bootstrap to keep the tests fast."""
    return verdicts(hypothesis_tests(results, **{"n_resamples": 200, **kwargs})).set_index("id")


def test_hypotheses_supported_when_built_in_with_scipy_as_the_oracle():
    results = synthetic_results(6)
    tests = hypothesis_tests(results, n_resamples=200)
    h = verdicts(tests).set_index("id")
    assert list(h.index) == ["H1", "H2", "H3", "H4"]
    assert set(h["verdict_all"]) == {"supported"} and set(h["verdict_disjoint"]) == {"supported"}
    assert (h["n_pairs_all"] == 60).all() and (h["min_effect"] == 0.1).all() and (h["disagreement"] == "").all()
    assert tests.groupby("id").size().tolist() == [2, 2, 3, 2]  # H3: OT vs CLIP, OT vs random, cheaper vs dearer
    assert (tests["ci_level"] == 0.9).all()
    w2 = per_pair(results, "w2", ["ot"])
    first = tests.iloc[0]
    assert first["estimate_all"] == pytest.approx(st.spearmanr(w2["ot"], w2["group"]).statistic)
    assert first["p_all"] == pytest.approx(st.spearmanr(w2["ot"], w2["group"], alternative="less").pvalue)
    assert first["p_against_all"] == pytest.approx(st.spearmanr(w2["ot"], w2["group"], alternative="greater").pvalue)
    ci = bootstrap_ci(spearman_rows, w2["ot"].to_numpy(), w2["group"].to_numpy(), n_resamples=200, seed=(0, 0),
                      confidence=0.9)
    assert (first["ci_low_all"], first["ci_high_all"]) == ci and ci[0] < ci[1] < 0
    h3 = tests[tests["id"] == "H3"]
    assert (h3["estimate_all"] == -1.0).all()
    ppl = per_pair(results, "ppl")
    d = ppl["ot"] - ppl["clip"]
    assert h3["p_all"].iloc[0] == pytest.approx(st.wilcoxon(d, alternative="less").pvalue)
    assert h3["p_against_all"].iloc[0] == pytest.approx(st.wilcoxon(d, alternative="greater").pvalue)
    assert "(supported)" in h.loc["H3", "evidence"]


def test_hypothesis_tests_are_deterministic():
    results = noisy_results(9)
    pd.testing.assert_frame_equal(hypothesis_tests(results, n_resamples=100), hypothesis_tests(results, n_resamples=100))


def test_ot_worse_in_every_pair_contradicts_h3():
    results = synthetic_results(40, groups=(1.0, 2.0, 3.0))
    ot = results["path"] == "ot"
    results.loc[ot, "ppl"] = results.loc[ot, "ppl"] + 1.0  # OT worse than CLIP and random in every pair
    tests = hypothesis_tests(results, n_resamples=100).set_index("test")
    row = tests.loc["r(PPL OT − CLIP)"]
    assert row["estimate_all"] == 1.0 and row["verdict_all"] == "contradicted"
    ppl = per_pair(results, "ppl")
    assert row["p_against_all"] == pytest.approx(st.wilcoxon(ppl["ot"] - ppl["clip"], alternative="greater").pvalue)
    assert row["p_against_all"] < 1e-15 and row["p_all"] == pytest.approx(1.0)
    h = verdicts(tests.reset_index()).set_index("id")
    assert h.loc["H3", "verdict_all"] == "contradicted"
    assert h.loc["H3", "reason_all"].startswith("contradicted by r(PPL OT − CLIP) (Holm p = ")


def test_a_missing_path_makes_h2_to_h4_not_testable_and_says_which():
    results = synthetic_results(6)
    h = hypotheses(results[results["path"] != "random"])
    assert h.loc["H1", "verdict_all"] == "supported"
    assert set(h.loc[["H2", "H3", "H4"], "verdict_all"]) == {"not testable"}
    assert "needs path(s) random (absent)" in h.loc["H3", "evidence"]


@pytest.mark.parametrize("effect", ["identical", "symmetric"])
def test_hypotheses_on_ot_not_better_are_not_supported(effect):
    h = hypotheses(synthetic_results(6, effect=effect))
    # CLIP and random equal in every pair: "cheaper vs dearer" has no non-zero difference
    assert h.loc["H3", "verdict_all"] == "not testable"
    assert "r(PPL cheaper − dearer of CLIP/Random (by the pair's costs)): not testable (n = 0 non-zero" in \
        h.loc["H3", "evidence"]
    assert h.loc["H4", "verdict_all"] not in ("supported", "contradicted")


def test_hypotheses_not_testable_on_few_pairs_or_groups():
    few_pairs = hypotheses(synthetic_results(1, groups=(1.0, 2.0, 3.0)))
    assert set(few_pairs["verdict_all"]) == {"not testable"}
    assert "n = 3 pairs < 4" in few_pairs.loc["H1", "evidence"]
    assert "n = 3 non-zero differences < 5" in few_pairs.loc["H3", "evidence"]
    two_groups = hypotheses(synthetic_results(6, groups=(1.0, 2.0)))
    assert two_groups.loc["H3", "verdict_all"] == "supported"
    assert set(two_groups.loc[["H1", "H2", "H4"], "verdict_all"]) == {"not testable"}
    assert "2 group(s) < 3" in two_groups.loc["H1", "evidence"]
    # the minimum follows alpha: 5 pairs per group reach 0.05 one-sided, not 0.01
    assert hypotheses(synthetic_results(5, groups=(1.0,)), alpha=0.01).loc["H3", "verdict_all"] == "not testable"


def h3_results(random_smoother: bool, n=40, seed=0):
    """OT cheapest and smoothest; CLIP cheaper than random in every pair; random has the lower PPL
    in every pair when ``random_smoother``, else the higher."""
    rng = np.random.default_rng(seed)
    results = synthetic_results(n // 4, groups=(1.0, 2.0, 3.0, 4.0), seed=seed)
    ot = results["path"] == "ot"
    base = results.loc[ot, "ppl"].to_numpy()
    gap = rng.uniform(0.05, 0.1, len(base))
    clip_ppl, random_ppl = (base + 2 * gap, base + gap) if random_smoother else (base + gap, base + 2 * gap)
    results.loc[results["path"] == "clip", "ppl"] = clip_ppl
    results.loc[results["path"] == "random", "ppl"] = random_ppl
    w2 = results.loc[ot, "w2"].to_numpy()
    results.loc[results["path"] == "clip", "cost"] = w2 * 1.1
    results.loc[results["path"] == "random", "cost"] = w2 * 1.5
    return results


def test_h3_needs_the_cheaper_of_clip_and_random_to_be_smoother():
    tests = hypothesis_tests(h3_results(random_smoother=True), n_resamples=100).set_index("test")
    assert tests.loc["r(PPL OT − CLIP)", "verdict_all"] == "supported"
    assert tests.loc["r(PPL OT − Random)", "verdict_all"] == "supported"
    cheaper = tests.loc["r(PPL cheaper − dearer of CLIP/Random (by the pair's costs))"]
    assert cheaper["estimate_all"] == 1.0 and cheaper["verdict_all"] == "contradicted"
    assert verdicts(tests.reset_index()).set_index("id").loc["H3", "verdict_all"] == "contradicted"
    assert hypotheses(h3_results(random_smoother=False)).loc["H3", "verdict_all"] == "supported"


def trend_results(rho: float, n: int = 10_000, seed: int = 0) -> pd.DataFrame:
    """Results over ``n`` pairs in 10 groups whose W2 and OT PPL fall with the group at about ``rho``."""
    rng = np.random.default_rng(seed)
    group = rng.integers(1, 11, n) / 2
    z = (group - group.mean()) / group.std()
    w2 = 2 - rho * z + np.sqrt(1 - rho ** 2) * rng.normal(size=n) + 10
    ppl = 0.5 - 0.05 * (rho * z + np.sqrt(1 - rho ** 2) * rng.normal(size=n))
    frames = []
    for j, c in enumerate(("ot", "clip", "random")):
        frames.append(pd.DataFrame({
            "pair_id": [f"p{i:05d}" for i in range(n)], "prompt_a": [f"a {i}" for i in range(n)],
            "prompt_b": [f"b {i}" for i in range(n)], "group": group, "path": c, "w2": w2,
            "cost": w2 * (1 + 0.1 * j), "cost_ratio": 1 + 0.1 * j, "ppl": ppl + 0.01 * j}))
    return pd.concat(frames, ignore_index=True)


@pytest.mark.parametrize("rho, n, verdict", [
    (0.03, 10_000, "negligible"),      # significant over many pairs, and too small to matter
    (0.3, 10_000, "supported"),
    (-0.8, 600, "contradicted"),       # W2 and OT PPL rise with similarity
    (0.2, 50, "inconclusive"),         # not significant, an interval across zero
])
def test_trends_reach_each_verdict(rho, n, verdict):
    results = trend_results(rho, n)
    tests = hypothesis_tests(results, n_resamples=100)
    h1 = tests[tests["id"] == "H1"]
    w2 = per_pair(results, "w2", ["ot"])
    assert h1["p_all"].iloc[0] == pytest.approx(st.spearmanr(w2["ot"], w2["group"], alternative="less").pvalue)
    assert set(h1["verdict_all"]) == {verdict}
    assert verdicts(tests).set_index("id").loc["H1", "verdict_all"] == verdict
    if verdict == "negligible":
        assert (h1["p_all"] < 0.05).all() and (h1["ci_low_all"] > -0.1).all()


def test_verdicts_on_a_caption_disjoint_subset_beside_all_pairs():
    results = synthetic_results(6)
    # every pair of group 0.5 reuses one caption: only one of them is in the disjoint subset
    results.loc[results["group"] == 0.5, "prompt_a"] = "a shared caption"
    tests = hypothesis_tests(results, n_resamples=50)
    assert (tests["n_pairs_all"] == 60).all() and (tests["n_pairs_disjoint"] == 55).all()
    h = verdicts(tests).set_index("id")
    assert (h["n_pairs_disjoint"] == 55).all()
    sub = results[(results["group"] != 0.5) | (results["pair_id"] == "g0.5-p000")]
    alone = hypothesis_tests(sub, n_resamples=50)
    np.testing.assert_allclose(tests["estimate_disjoint"], alone["estimate_all"])
    np.testing.assert_allclose(tests["p_disjoint"], alone["p_all"])


def test_a_disagreement_between_subsets_is_one_line():
    results = synthetic_results(6, groups=(1.0, 2.0, 3.0))
    results.loc[results["path"] == "ot", "prompt_a"] = "one caption for all"
    results["prompt_a"] = "one caption for all"  # the disjoint subset keeps one pair
    h = verdicts(hypothesis_tests(results, n_resamples=50)).set_index("id")
    assert h.loc["H3", "verdict_disjoint"] == "not testable"
    assert h.loc["H3", "disagreement"] == ("H3: supported on all 18 pairs but not testable on the 1 "
                                           "caption-disjoint pairs")
    assert disagreements(h.reset_index())[0].startswith("H1: supported")


def test_hypothesis_tests_reject_bad_parameters():
    results = synthetic_results(2)
    for kwargs, match in [({"alpha": 0}, "alpha"), ({"alpha": 0.5}, r"alpha must be in \(0, 0.5\)"),
                          ({"min_effect": 2}, "min_effect"), ({"n_resamples": 0}, "n_resamples")]:
        with pytest.raises(ValueError, match=match):
            hypothesis_tests(results, **kwargs)


# --- bootstrap -----------------------------------------------------------------------------------

def test_row_wise_statistics_equal_their_one_dimensional_references():
    rng = np.random.default_rng(0)
    d = np.round(rng.normal(size=(30, 12)), 1)  # ties and zeros
    d[0] = 0
    expected = [rank_biserial(row) for row in d]
    np.testing.assert_allclose(rank_biserial_rows(d), expected, equal_nan=True)
    x, y = np.round(rng.normal(size=(2, 30, 12)), 1)
    np.testing.assert_allclose(spearman_rows(x, y), [st.spearmanr(a, b).statistic for a, b in zip(x, y)])


def test_bootstrap_ci_is_seeded_and_covers_the_mean():
    x = np.random.default_rng(1).normal(1.0, 1.0, 400)
    mean = lambda v: v.mean(-1)  # noqa: E731
    low, high = bootstrap_ci(mean, x, n_resamples=500, seed=3)
    assert (low, high) == bootstrap_ci(mean, x, n_resamples=500, seed=3, chunk=7)
    assert low < x.mean() < high
    se = x.std() / np.sqrt(len(x))
    assert high - low == pytest.approx(2 * 1.96 * se, rel=0.15)


# --- pairs for Figure 2 --------------------------------------------------------------------------

def test_largest_gaps():
    results = synthetic_results(2, groups=(1.0, 2.0), effect="identical")
    clip = results["path"] == "clip"
    results.loc[clip & (results["pair_id"] == "g2.0-p001"), "ppl"] += 0.3
    results.loc[clip & (results["pair_id"] == "g1.0-p000"), "ppl"] += 0.2
    assert largest_gaps(results, 2) == ["g2.0-p001", "g1.0-p000"]
    assert largest_gaps(results, 4)[2:] == ["g1.0-p001", "g2.0-p000"]  # ties by pair_id
    with pytest.raises(ValueError, match=r"n must be between 1 and the number of pairs \(4\), got 5"):
        largest_gaps(results, 5)


# --- content and padding rows ---------------------------------------------------------------------

def test_padding_by_group_takes_one_row_per_pair_and_medians():
    from otinterp.stats import PADDING_COLUMNS, padding_by_group

    results = synthetic_results(3, groups=(1.0, 2.0))
    pair = results["pair_id"].str[-1].astype(int)
    results = results.assign(content_rows_a=7, content_rows_b=9, saving_content=1.0 + pair, saving_padding=2.0 - pair,
                             content_to_padding=pair, padding_to_content=0)
    table = padding_by_group(results)
    assert list(table.index) == [1.0, 2.0] and (table["pairs"] == 3).all()
    assert table.loc[1.0, "saving_content"] == 2.0 and table.loc[1.0, "content_to_padding"] == 1
    assert table.loc[1.0, "share_on_padding"] == pytest.approx(1 / 3)  # pair 1: 1 of 3 saved on padding
    with pytest.raises(ValueError, match="lack column.*saving_padding"):
        padding_by_group(results.drop(columns="saving_padding"))
    assert set(PADDING_COLUMNS) <= set(table.columns)
