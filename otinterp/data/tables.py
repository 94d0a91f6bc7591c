"""The pair table's columns and checks, and its parquet file (``pairs.parquet``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from otinterp.io import atomic_write

__all__ = ["PAIR_COLUMNS", "require_columns", "check_unique_ids", "check_columns", "write_pairs", "read_pairs"]

#: Columns of a pair table, in order.
PAIR_COLUMNS = ("pair_id", "prompt_a", "prompt_b", "score", "group", "source_a", "source_b")


def require_columns(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    """Raise a ValueError naming ``what`` and the ``columns`` that ``frame`` lacks."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {', '.join(map(repr, missing))}")

def check_unique_ids(pairs: pd.DataFrame, where: str) -> None:
    """Raise a ValueError naming ``where`` and a ``pair_id`` that appears more than once."""
    counts = pairs["pair_id"].value_counts()
    if (counts > 1).any():
        dup = counts.index[counts > 1]
        raise ValueError(
            f"{where}: pair_id {dup[0]!r} appears {counts.iloc[0]} times ({len(dup)} duplicated "
            "id(s)); a pair may appear only once (custom pairs: the same prompts, up to case and "
            "white space, twice)"
        )

def check_columns(path: Path, columns: Sequence[str], required: Sequence[str],
                   optional: Sequence[str] = ()) -> None:
    missing = [c for c in required if c not in columns]
    unexpected = [c for c in columns if c not in (*required, *optional)]
    if missing or unexpected:
        problems = [f"missing column(s) {', '.join(map(repr, missing))}"] if missing else []
        problems += [f"unexpected column(s) {', '.join(map(repr, unexpected))}"] if unexpected else []
        allowed = ", ".join((*required, *(f"[{c}]" for c in optional)))
        raise ValueError(f"{path}: {'; '.join(problems)} (expected columns {allowed})")

def write_pairs(pairs: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a pair table to parquet atomically (a temporary file, then ``os.replace``).

    The report in ``pairs.attrs`` is kept in the file's metadata. Returns the path written.
    """
    require_columns(pairs, PAIR_COLUMNS, "pair table")
    return atomic_write(lambda tmp: pairs[list(PAIR_COLUMNS)].to_parquet(tmp, index=False), path)

def read_pairs(path: str | os.PathLike) -> pd.DataFrame:
    """Read a pair table written by :func:`write_pairs` (notebook 01), checking its columns."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pair table {path} does not exist; run notebooks/01_dataset.ipynb first")
    pairs = pd.read_parquet(path)
    check_columns(path, list(pairs.columns), PAIR_COLUMNS)
    return pairs
