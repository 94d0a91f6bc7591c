"""Caption pairs by similarity group: the data of the experiment (docs/definitions.md §5–§6).

A *pair table* has one row per prompt pair and the columns :data:`PAIR_COLUMNS`:

``pair_id``
    A stable id: ``"cxc:<sentid_a>-<sentid_b>"`` for Crisscrossed Captions pairs, else
    ``"p-"`` and 12 hex digits of the SHA-1 of the normalised prompt pair (:func:`prompt_pair_id`).
    The same pair gets the same id in every run; ids are unique within a table (a duplicate is an
    error, never silently dropped).
``prompt_a``, ``prompt_b``
    The two prompts (caption text, surrounding white space stripped).
``score``
    The human similarity score in [0, 5] (NaN for custom pairs given only a ``group``).
``group``
    The similarity group (:func:`similarity_group`): width 0.5, group ``g`` holds scores in
    ``(g - 0.5, g]``, and score 0 goes to group 0.5.
``source_a``, ``source_b``
    Where each prompt comes from: the CxC caption id (``COCO_val2014:sentid:N``), a provenance
    label for the bundled set, NaN for custom pairs that do not give one.

Modules
-------
:mod:`~otinterp.data.groups`
    similarity groups, normalised text, pair ids.
:mod:`~otinterp.data.cxc`
    the Crisscrossed Captions (CxC) STS files with Karpathy's caption text (:func:`load_cxc`,
    :func:`load_karpathy_captions`, :func:`resolve_cxc`).
:mod:`~otinterp.data.csvfile`
    a custom CSV (:func:`load_pairs_csv`; errors name the line as an editor counts it) and the
    small set shipped with the package (:func:`bundled_pairs`).
:mod:`~otinterp.data.sampling`
    :func:`sample_pairs` drops identical-text pairs and samples ``per_group`` pairs per group
    in a seeded order, optionally caption-disjoint; the table carries its report in
    ``pairs.attrs["report"]``, shown by :func:`pairs_report`. :func:`pairs_table` is the one
    entry point for a run's :class:`~otinterp.params.Params` (:func:`source_pairs` reads its source
    unsampled, as the input check does); :func:`balanced_subset` takes a
    pilot's pairs round-robin across groups.
:mod:`~otinterp.data.dependence`
    pairs that share a caption (:func:`caption_sharing`) and caption-disjoint subsets
    (:func:`caption_disjoint_subset`).
:mod:`~otinterp.data.tables`
    columns, checks and the parquet file (:func:`write_pairs`, :func:`read_pairs`).
:mod:`~otinterp.data.download`
    :func:`fetch_paper_data`.
"""

from otinterp.data.csvfile import bundled_pairs, load_pairs_csv
from otinterp.data.cxc import CXC_COLUMNS, load_cxc, load_karpathy_captions, resolve_cxc
from otinterp.data.dependence import (
    caption_disjoint_subset, caption_key_sets, caption_sharing, greedy_disjoint, round_robin_order,
)
from otinterp.data.download import fetch_paper_data
from otinterp.data.groups import (
    SCORE_MAX, all_groups, normalise_text, prompt_pair_id, score_bin_edges, similarity_group,
)
from otinterp.data.sampling import balanced_subset, build_pairs, pairs_report, pairs_table, sample_pairs, source_pairs
from otinterp.data.tables import PAIR_COLUMNS, check_unique_ids, read_pairs, require_columns, write_pairs

__all__ = [
    "PAIR_COLUMNS", "CXC_COLUMNS", "SCORE_MAX", "similarity_group", "all_groups",
    "normalise_text", "prompt_pair_id", "load_cxc", "load_karpathy_captions", "resolve_cxc",
    "sample_pairs", "build_pairs", "pairs_report", "load_pairs_csv", "bundled_pairs",
    "source_pairs", "pairs_table", "write_pairs", "read_pairs", "fetch_paper_data", "balanced_subset",
    "caption_sharing", "caption_disjoint_subset", "caption_key_sets", "greedy_disjoint", "round_robin_order",
    "check_unique_ids", "require_columns", "score_bin_edges",
]
