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

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from otinterp.data.groups import normalise_text
from otinterp.data.tables import require_columns

__all__ = ["CAPTION_ID", "caption_keys", "caption_key_sets", "caption_sharing", "caption_disjoint_subset",
           "greedy_disjoint"]

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


def greedy_disjoint(key_sets: Iterable[set[str]], used: set[str] | None = None, *,
                    limit: int | None = None) -> np.ndarray:
    """Accept each pair, in order, that has no caption key in ``used``; add its keys when accepted.

    Parameters
    ----------
    key_sets : iterable of set of str
        The caption keys of each pair, in the order of the greedy pass.
    used : set of str, optional
        Keys already taken (updated in place); empty by default.
    limit : int, optional
        Accept at most this many pairs (the later ones are not accepted and take no keys).

    Returns
    -------
    accepted : (n_pairs,) bool ndarray
    """
    used = set() if used is None else used
    accepted, taken = [], 0
    for keys in key_sets:
        ok = (limit is None or taken < limit) and not keys & used
        if ok:
            used |= keys
            taken += 1
        accepted.append(ok)
    return np.array(accepted, dtype=bool)


def caption_disjoint_subset(table: pd.DataFrame, order: Sequence[str] | None = None) -> pd.DataFrame:
    """The rows of the pairs of a caption-disjoint subset, chosen greedily in the table's order.

    Pairs are taken in the order of their first row (a sampled pair table is in its seeded
    order, group after group), or in ``order``; a pair is kept when none of its captions (by normalised text or
    CxC caption id) is a caption of a pair kept before it. No two kept pairs share a caption.

    Parameters
    ----------
    table : DataFrame
        A pair table or a results table (every row of a kept pair is kept: all its couplings
        and seeds).
    order : sequence of str, optional
        The ``pair_id`` of every pair of ``table`` in the order of the greedy pass, e.g. the
        sampled pair table's ``pairs["pair_id"]`` for results sorted otherwise.

    Returns
    -------
    subset : DataFrame
        The rows of ``table`` whose pair is kept, in the table's order, index kept.
    """
    keys = caption_keys(table)
    if order is not None:
        order = pd.Index(order)
        missing = keys.index.difference(order)
        if len(missing):
            raise ValueError(f"order lacks {len(missing)} pair(s) of the table, e.g. {', '.join(map(repr, missing[:5]))}")
        keys = keys.loc[order[order.isin(keys.index)]]
    kept = keys.index[greedy_disjoint(_row_keys(keys, ("text", "id")))]
    return table[table["pair_id"].isin(kept)]
