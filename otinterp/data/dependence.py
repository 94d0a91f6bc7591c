"""Dependence between pairs: pairs that share a caption, and caption-disjoint subsets.

Two sampled pairs are not independent when they share a caption: the same prompt enters both.
A caption is identified by its normalised text (:func:`~otinterp.data.groups.normalise_text`)
and, where the table has ``source_a``/``source_b`` columns holding CxC caption ids
(``COCO_val2014:sentid:N``), also by that id, so tables whose text is not available (ids only)
are handled too. Provenance labels (``"cxc-readme"``, ``"illustrative"``) are not ids.

Both functions accept a pair table or a results table (one row per pair and coupling, and per
seed): a pair counts once, at its first row.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from otinterp.data.groups import normalise_text
from otinterp.data.tables import require_columns

__all__ = ["CAPTION_ID", "caption_keys", "caption_key_sets", "caption_sharing", "caption_disjoint_subset",
           "greedy_disjoint", "round_robin_order"]

#: The form of a caption id that identifies a caption (CxC ids).
CAPTION_ID = r"COCO_val2014:sentid:\d+"


def _pairs(table: pd.DataFrame) -> pd.DataFrame:
    """One row per ``pair_id``, at its first row, in the table's order."""
    require_columns(table, ("pair_id",), "pair or results table")
    if not {"prompt_a", "prompt_b"} <= set(table.columns) and not {"source_a", "source_b"} <= set(table.columns):
        raise ValueError("pair or results table: needs columns 'prompt_a', 'prompt_b' (caption text) "
                         "or 'source_a', 'source_b' (caption ids) to tell which pairs share a caption")
    return table.drop_duplicates("pair_id")


def caption_keys(table: pd.DataFrame) -> pd.DataFrame:
    """The caption identities of each pair: text keys and id keys of its two sides.

    Parameters
    ----------
    table : DataFrame
        A pair table or a results table (``pair_id`` and ``prompt_a, prompt_b`` and/or
        ``source_a, source_b``).

    Returns
    -------
    keys : (n_pairs, 4) DataFrame of object
        Indexed by ``pair_id`` in the table's order; columns ``text_a, text_b`` (``"text:"`` +
        the normalised prompt) and ``id_a, id_b`` (``"id:"`` + the CxC caption id); NaN where a
        side has no such key.
    """
    pairs = _pairs(table)
    keys = pd.DataFrame(index=pd.Index(pairs["pair_id"], name="pair_id"))
    for side in ("a", "b"):
        prompt = pairs.get(f"prompt_{side}")
        keys[f"text_{side}"] = (None if prompt is None else
                                ["text:" + normalise_text(p) if isinstance(p, str) else None for p in prompt])
        source = pairs.get(f"source_{side}")
        is_id = (pd.Series(False, index=pairs.index) if source is None
                 else source.astype(str).str.fullmatch(CAPTION_ID) & source.notna())
        keys[f"id_{side}"] = np.where(is_id, "id:" + source.astype(str), None) if source is not None else None
    return keys


def caption_key_sets(table: pd.DataFrame) -> list[set[str]]:
    """Per pair (in the table's order), the set of its caption keys of every kind (see
    :func:`caption_keys`)."""
    return _row_keys(caption_keys(table), ("text", "id"))


def _row_keys(keys: pd.DataFrame, kinds: Iterable[str]) -> list[set[str]]:
    columns = [f"{kind}_{side}" for kind in kinds for side in ("a", "b")]
    return [{k for k in row if isinstance(k, str)} for row in keys[columns].itertuples(index=False)]


def _shares(keys: pd.DataFrame, kind: str) -> np.ndarray:
    """Per pair, whether one of its ``kind`` keys (``"text"`` or ``"id"``) is in another pair."""
    sets = _row_keys(keys, [kind])
    counts: dict[str, int] = {}
    for s in sets:
        for k in s:
            counts[k] = counts.get(k, 0) + 1
    return np.array([any(counts[k] > 1 for k in s) for s in sets], dtype=bool)


def caption_sharing(table: pd.DataFrame) -> pd.DataFrame:
    """How many pairs share a caption with another pair of the table, per similarity group.

    A pair shares a caption when one of its two captions (by normalised text, or by CxC caption
    id) is a caption of another pair anywhere in the table, in any group.

    Parameters
    ----------
    table : DataFrame
        A pair table or a results table, with a ``group`` column.

    Returns
    -------
    sharing : (n_groups + 1, 5) DataFrame
        Indexed by ``group`` and a last row ``"all"``; integer columns ``pairs``,
        ``sharing_by_text``, ``sharing_by_id``, ``sharing`` (by either) and float ``share``
        (``sharing / pairs``). A table without ids has ``sharing_by_id`` 0.
    """
    require_columns(table, ("group",), "pair or results table")
    pairs = _pairs(table)
    keys = caption_keys(table)
    by_text, by_id = _shares(keys, "text"), _shares(keys, "id")
    flags = pd.DataFrame({"group": pairs["group"].to_numpy(), "pairs": 1, "sharing_by_text": by_text,
                          "sharing_by_id": by_id, "sharing": by_text | by_id})
    per_group = flags.groupby("group", sort=True).sum().astype(int)
    per_group.index = per_group.index.astype(object)
    per_group.loc["all"] = per_group.sum()
    return per_group.assign(share=per_group["sharing"] / per_group["pairs"])


def greedy_disjoint(key_sets: Iterable[set[str]]) -> np.ndarray:
    """Accept each pair, in order, that shares no caption key with a pair accepted before it.

    Parameters
    ----------
    key_sets : iterable of set of str
        The caption keys of each pair, in the order of the greedy pass.

    Returns
    -------
    accepted : (n_pairs,) bool ndarray
    """
    used: set[str] = set()
    accepted = []
    for keys in key_sets:
        accepted.append(not keys & used)
        if accepted[-1]:
            used |= keys
    return np.array(accepted, dtype=bool)


def round_robin_order(table: pd.DataFrame) -> pd.Index:
    """The pairs of ``table`` in round-robin order across similarity groups.

    Round ``r`` takes the ``r``-th pair of every group that has one, groups ascending. A pair's
    place within its group is its ``draw`` column when the table has one (the position in the
    sampled pair table, which :func:`otinterp.store.load_results` carries into results, so results
    sorted any other way keep the sampled order), else the order of the pair's first row.

    Parameters
    ----------
    table : DataFrame
        A pair table or a results table (``pair_id``, ``group``; optionally ``draw``).

    Returns
    -------
    order : Index of str
        Every ``pair_id`` once.
    """
    require_columns(table, ("pair_id", "group"), "pair or results table")
    pairs = table.drop_duplicates("pair_id")
    draw = (pairs["draw"].to_numpy() if "draw" in pairs.columns
            else pairs.groupby("group", sort=False).cumcount().to_numpy())
    order = pd.DataFrame({"pair_id": pairs["pair_id"].to_numpy(), "round": draw,
                          "group": pairs["group"].to_numpy()})
    return pd.Index(order.sort_values(["round", "group"], kind="stable")["pair_id"], name="pair_id")


def caption_disjoint_subset(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of the pairs of a caption-disjoint subset, chosen greedily in round-robin order.

    Pairs are visited in :func:`round_robin_order` (round ``r`` takes the ``r``-th sampled pair of
    every group, groups ascending); a pair is kept when none of its captions (by normalised text
    or CxC caption id) is a caption of a pair kept before it. No two kept pairs share a caption,
    and, because every group gets a turn in every round, captions shared across groups thin every
    group alike rather than the groups visited last.

    Parameters
    ----------
    table : DataFrame
        A pair table or a results table (every row of a kept pair is kept: all its paths and
        seeds).

    Returns
    -------
    subset : DataFrame
        The rows of ``table`` whose pair is kept, in the table's order, index kept.
    """
    keys = caption_keys(table).loc[round_robin_order(table)]
    kept = keys.index[greedy_disjoint(_row_keys(keys, ("text", "id")))]
    return table[table["pair_id"].isin(kept)]
