"""Where OT's saving comes from, per similarity group: content rows or padding rows (docs/definitions.md §14)."""

from __future__ import annotations

import pandas as pd

__all__ = ["PADDING_COLUMNS", "padding_by_group"]

#: The per-pair columns of the content/padding split (the same on every path's row of a pair).
PADDING_COLUMNS = ("content_rows_a", "content_rows_b", "saving_content", "saving_padding", "content_to_padding",
                   "padding_to_content")


def padding_by_group(results: pd.DataFrame) -> pd.DataFrame:
    """Per similarity group, the medians of the content/padding split of OT's saving over CLIP.

    Parameters
    ----------
    results : DataFrame
        The experiment's results with the columns :data:`PADDING_COLUMNS` (one value per pair,
        repeated on its rows; with several seeds too, since the split does not depend on the latent).
        Pairs rendered before the split was recorded (NaN) are left out and not counted.

    Returns
    -------
    table : (n_groups, 8) DataFrame
        Indexed by ``group``: ``pairs`` and the median of each column of :data:`PADDING_COLUMNS`,
        and ``share_on_padding`` — the median over pairs of ``saving_padding / (C_clip² − W2²)``
        (NaN where a pair saves nothing), a reading aid: either part can be negative.
    """
    missing = [c for c in ("pair_id", "group", *PADDING_COLUMNS) if c not in results.columns]
    if missing:
        raise ValueError(f"results lack column(s) {', '.join(map(repr, missing))}: they were made before the "
                         "content/padding split was recorded (run the experiment again in a new run folder)")
    pairs = results.drop_duplicates("pair_id").dropna(subset=list(PADDING_COLUMNS))  # parts written before the split
    total = pairs["saving_content"] + pairs["saving_padding"]
    pairs = pairs.assign(share_on_padding=(pairs["saving_padding"] / total).where(total > 0))
    table = pairs.groupby("group")[[*PADDING_COLUMNS, "share_on_padding"]].median()
    table.insert(0, "pairs", pairs.groupby("group").size())
    return table
