"""Sampling pairs per similarity group, and the run's pair table."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from otinterp.data.csvfile import bundled_pairs, load_pairs_csv
from otinterp.data.cxc import load_cxc, load_karpathy_captions, resolve_cxc
from otinterp.data.dependence import caption_key_sets, round_robin_order
from otinterp.data.groups import all_groups, normalise_text
from otinterp.data.tables import PAIR_COLUMNS, check_unique_ids, require_columns
from otinterp.params import Params

__all__ = ["sample_pairs", "build_pairs", "pairs_report", "source_pairs", "pairs_table", "balanced_subset"]

def sample_pairs(pairs: pd.DataFrame, *, per_group: int, seed: int, bin_width: float = 0.5,
                 disjoint_captions: bool = False) -> pd.DataFrame:
    """Drop identical-text pairs, then sample up to ``per_group`` pairs of each group.

    Pairs whose prompts are the same text after :func:`normalise_text` are dropped and counted.
    Each group's pairs, sorted by ``pair_id``, are put in a seeded order by
    ``numpy.random.default_rng((seed, k)).permutation``, ``k`` the group's index (1 for the first
    group): the sample does not depend on the order of the input rows. The sample is the first
    ``per_group`` pairs of that order; with ``disjoint_captions`` the groups take turns, round
    ``r`` offering every group (ascending) its ``r``-th pair of that order, and a pair is taken
    when its group is not full and it shares no caption (by text or CxC caption id,
    :mod:`otinterp.data.dependence`) with a pair taken before, in any group: shared captions thin
    every group alike. A group with fewer pairs is taken whole, with a warning.

    Parameters
    ----------
    pairs : DataFrame
        A pair table (columns :data:`PAIR_COLUMNS`) with unique ``pair_id``.
    per_group : int
        Pairs wanted per group (paper: 1000).
    seed : int
        The experiment seed.
    bin_width : float
        Similarity group width; every ``group`` must be one of :func:`all_groups`.
    disjoint_captions : bool
        Sample pairs that share no caption (fewer pairs may be left in a group).

    Returns
    -------
    sampled : DataFrame
        Columns :data:`PAIR_COLUMNS`, sorted by ``group``, each group in its seeded order.
        ``attrs["report"]`` holds, per group, the pairs ``available`` (after the drop),
        ``identical_dropped``, with ``disjoint_captions`` the pairs ``skipped_shared`` (passed
        over for sharing a caption) and the pairs ``sampled``, as a dict of lists (see
        :func:`pairs_report`).

    Warns
    -----
    UserWarning
        Naming the groups where fewer than ``per_group`` pairs were sampled.
    """
    if per_group < 1:
        raise ValueError(f"per_group must be >= 1, got {per_group}")
    require_columns(pairs, PAIR_COLUMNS, "pair table")
    groups = all_groups(bin_width)
    pairs = pairs.assign(group=pairs["group"].round(6))
    unknown = ~pairs["group"].isin(groups)
    if unknown.any():
        bad = float(pairs["group"][unknown].iloc[0])
        raise ValueError(f"pair table: group {bad!r} is not one of {groups.tolist()}")
    check_unique_ids(pairs, "pair table")
    same = pairs["prompt_a"].map(normalise_text) == pairs["prompt_b"].map(normalise_text)
    kept = pairs.loc[~same, list(PAIR_COLUMNS)].sort_values("pair_id")
    ordered = [rows.iloc[np.random.default_rng((seed, round(group / bin_width))).permutation(len(rows))]
               for group, rows in kept.groupby("group", sort=True)]
    if disjoint_captions:
        ordered, skipped = _disjoint_round_robin(ordered, per_group)
    picks = [rows.iloc[:per_group] for rows in ordered]
    sampled = pd.concat(picks or [kept]).reset_index(drop=True)
    counts = {"available": kept["group"], "identical_dropped": pairs.loc[same, "group"]}
    report = pd.DataFrame({k: v.value_counts().reindex(groups, fill_value=0) for k, v in counts.items()})
    if disjoint_captions:
        report["skipped_shared"] = pd.Series(skipped, dtype=int).reindex(groups, fill_value=0)
    report["sampled"] = sampled["group"].value_counts().reindex(groups, fill_value=0)
    short = report[report["sampled"] < per_group]
    if len(short):
        listing = ", ".join(f"{g} ({n})" for g, n in short["sampled"].items())
        why = "caption-disjoint pairs" if disjoint_captions else "pairs"
        warnings.warn(f"fewer than {per_group} {why} in group(s) {listing}: all of them taken", stacklevel=2)
    sampled.attrs["report"] = {"group": groups.tolist(), **{k: v.tolist() for k, v in report.items()}}
    return sampled


def _disjoint_round_robin(ordered: list[pd.DataFrame], n: int) -> tuple[list[pd.DataFrame], dict[float, int]]:
    """Up to ``n`` rows of each group's seeded order that share no caption, taken round-robin.

    Round ``r`` offers every group (ascending) its ``r``-th candidate; a candidate is taken when
    its group still needs pairs and none of its captions was taken before, in any group. Returns
    each group's taken rows (in its seeded order) and, per group, how many candidates were passed
    over for sharing a caption before the group was full.
    """
    keys = [caption_key_sets(rows) for rows in ordered]
    taken = [[] for _ in ordered]
    skipped = [0] * len(ordered)
    used: set[str] = set()
    for r in range(max(map(len, ordered), default=0)):
        for g, rows in enumerate(ordered):
            if r >= len(rows) or len(taken[g]) >= n:
                continue
            if keys[g][r] & used:
                skipped[g] += 1
            else:
                used |= keys[g][r]
                taken[g].append(r)
    groups = [float(rows["group"].iloc[0]) for rows in ordered]
    return [rows.iloc[t] for rows, t in zip(ordered, taken)], dict(zip(groups, skipped))


def build_pairs(cxc: pd.DataFrame, captions: dict[int, str], *, per_group: int, seed: int,
                bin_width: float = 0.5, disjoint_captions: bool = False) -> pd.DataFrame:
    """The experiment's pairs from CxC: :func:`resolve_cxc` then :func:`sample_pairs`.

    Parameters
    ----------
    cxc : DataFrame
        From :func:`load_cxc`.
    captions : dict of int to str
        From :func:`load_karpathy_captions`.
    per_group : int
        Pairs per similarity group (paper: 1000).
    seed : int
        The experiment seed.
    bin_width : float
        Similarity group width (0.5 in the paper).
    disjoint_captions : bool
        Sample caption-disjoint pairs (see :func:`sample_pairs`).

    Returns
    -------
    pairs : DataFrame
        Columns :data:`PAIR_COLUMNS` with ``attrs["report"]`` (see :func:`sample_pairs`).
    """
    return sample_pairs(resolve_cxc(cxc, captions, bin_width=bin_width),
                        per_group=per_group, seed=seed, bin_width=bin_width, disjoint_captions=disjoint_captions)

def pairs_report(pairs: pd.DataFrame) -> pd.DataFrame:
    """The sampling report carried by a table from :func:`sample_pairs`.

    Returns
    -------
    report : DataFrame
        Indexed by ``group``; integer columns ``available``, ``identical_dropped``, ``sampled``.
    """
    if "report" not in pairs.attrs:
        raise ValueError(
            "this pair table carries no report: build it with sample_pairs, build_pairs or pairs_table"
        )
    return pd.DataFrame(pairs.attrs["report"]).set_index("group")

def source_pairs(P: Params) -> pd.DataFrame:
    """Every pair of the source ``P.pairs_source``, read and checked, before sampling.

    ``bundled``: :func:`bundled_pairs`; ``csv``: :func:`load_pairs_csv` of ``P.pairs_csv``;
    ``cxc``: :func:`load_cxc` of ``P.cxc_paths`` resolved by :func:`resolve_cxc` with
    :func:`load_karpathy_captions` of ``P.karpathy_path``. Paths are used as given (relative ones
    against the working directory). ``otinterp check`` calls it, so ``make
    paper`` stops on a bad input file before any notebook runs.

    Returns
    -------
    pairs : DataFrame
        Columns :data:`PAIR_COLUMNS`, unique ``pair_id``.

    Raises
    ------
    FileNotFoundError, ValueError
        The readers' one-line messages, naming the file and, for a CSV, the line.
    """
    if P.pairs_source == "cxc":
        return resolve_cxc(load_cxc(P.cxc_paths), load_karpathy_captions(P.karpathy_path))
    if P.pairs_source == "csv":
        return load_pairs_csv(P.pairs_csv)
    return bundled_pairs()


def pairs_table(P: Params) -> pd.DataFrame:
    """The run's pair table: :func:`source_pairs` sampled with ``P.per_group``, ``P.seed`` and
    ``P.disjoint_captions``.

    Returns
    -------
    pairs : DataFrame
        From :func:`sample_pairs`, with its report in ``attrs["report"]``.
    """
    return sample_pairs(source_pairs(P), per_group=P.per_group, seed=P.seed, disjoint_captions=P.disjoint_captions)


def balanced_subset(pairs: pd.DataFrame, n: int) -> pd.DataFrame:
    """The first ``n`` pairs drawn round-robin across the groups, each group in the table's order.

    Round ``r`` takes the ``r``-th pair of every group that has one (groups ascending), so a
    pilot of ``n`` pairs covers every group as evenly as ``n`` allows. On a sampled table the
    order within a group is its seeded order, so each group's share is a random sample of it.

    Parameters
    ----------
    pairs : DataFrame
        A pair table (``pair_id``, ``group``).
    n : int
        Pairs wanted (all of them when the table has fewer).

    Returns
    -------
    subset : (min(n, len(pairs)), ...) DataFrame
        The chosen rows, in the table's order, index kept, ``attrs`` kept.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    require_columns(pairs, ("pair_id", "group"), "pair table")
    chosen = pairs["pair_id"].isin(round_robin_order(pairs)[:n])
    return pairs[chosen.to_numpy()]
