"""Statistics of the experiment's results: the tests of the paper's section 4 and its hypotheses.

Karris, Durell, Flores and Emerson, "Which Way from B to A: The role of embedding geometry in
image interpolation for Stable Diffusion" (arXiv:2511.12757, 2025), compare the OT coupling with
the CLIP and random couplings within each similarity group by the Wilcoxon signed-rank test on
the per-pair differences of PPL and of coupling cost (their Table 1), and state four hypotheses
(section 3) that this package turns into computed verdicts (docs/definitions.md §8–§9).

:mod:`~otinterp.stats.paired`
    per-pair tables, Wilcoxon tests per group with marks directed by the test, Table 1.
:mod:`~otinterp.stats.verdicts`
    the hypotheses: five verdicts (supported, contradicted, negligible, inconclusive, not
    testable) from estimates, ``1 − 2α`` bootstrap intervals and ``min_effect``, on all pairs and
    a caption-disjoint subset side by side.
:mod:`~otinterp.stats.padding`
    where OT's saving comes from: content rows or padding rows, per group.
:mod:`~otinterp.stats.tables`
    CSV, Markdown and LaTeX files with their notes (caveat, legend).
"""

from otinterp.stats.paired import (
    AGAINST_OT, COST_NOTE, LABELS, PATHS, TEST_COLUMNS, holm, largest_gaps, mark_legend, min_pairs, N_ROW, paired_tests,
    per_pair, present_paths, rank_biserial, seeds_note, significance_mark, table1,
)
from otinterp.stats.padding import PADDING_COLUMNS, padding_by_group
from otinterp.stats.tables import read_table_csv, write_table
from otinterp.stats.verdicts import (
    MIN_GROUPS, NEEDED_PATHS, STATEMENTS, VERDICTS, bootstrap_ci, disagreements, hypothesis_tests, judge_hypothesis,
    judge_test, rank_biserial_rows, spearman_rows, verdict_rule, verdicts,
)

__all__ = [
    "AGAINST_OT", "N_ROW", "COST_NOTE", "LABELS", "PATHS", "TEST_COLUMNS", "holm", "largest_gaps", "mark_legend",
    "paired_tests", "per_pair", "present_paths", "rank_biserial", "seeds_note", "significance_mark", "table1",
    "PADDING_COLUMNS", "padding_by_group", "read_table_csv", "write_table", "MIN_GROUPS", "NEEDED_PATHS", "STATEMENTS", "VERDICTS", "bootstrap_ci",
    "disagreements", "hypothesis_tests", "judge_hypothesis", "judge_test", "min_pairs", "rank_biserial_rows",
    "spearman_rows", "verdict_rule", "verdicts",
]
