"""Reading CSV files with errors that name the file and the line, and custom prompt sets."""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence
from importlib.resources import as_file, files
from pathlib import Path

import numpy as np
import pandas as pd

from otinterp.data.groups import SCORE_MAX, all_groups, prompt_pair_id, similarity_group
from otinterp.data.tables import PAIR_COLUMNS, check_columns, check_unique_ids

__all__ = ["load_pairs_csv", "bundled_pairs", "read_csv_strings", "check_rows", "numbers", "in_score_range"]

_OPTIONAL_CSV_COLUMNS = ("pair_id", "score", "group", "source_a", "source_b")


def read_csv_strings(path: Path, what: str, where_to_get: str = "") -> pd.DataFrame:
    """All cells of a UTF-8 CSV file as strings (missing cells NaN).

    Raises
    ------
    FileNotFoundError
        For a missing file (``what`` names its role, ``where_to_get`` follows, after a ``;``).
    ValueError
        For an empty file, a file that is not UTF-8, or a record with more fields than the header
        (naming the line, counted as an editor counts them: see :func:`record_lines`).
    """
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist" + (f"; {where_to_get}" if where_to_get else ""))
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path}: empty file, expected a CSV with a header row") from None
    except UnicodeDecodeError:
        raise ValueError(_not_utf8(path)) from None
    except pd.errors.ParserError as err:
        raise ValueError(_surplus_fields(path) or f"{path}: malformed CSV: {err}") from None
    if not isinstance(table.index, pd.RangeIndex):  # pandas read a surplus first field as the index
        raise ValueError(_surplus_fields(path) or f"{path}: malformed CSV: more fields than the header")
    return table


def _not_utf8(path: Path) -> str:
    """The message for a file that is not UTF-8, naming the line of its first bad byte."""
    raw = path.read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        return f"{path} is not UTF-8: save it as UTF-8 (line {line} has the byte 0x{raw[err.start]:02x})"
    return f"{path} is not UTF-8: save it as UTF-8"


def record_lines(path: Path) -> list[int]:
    """The line on which each data record of a CSV file starts, as an editor numbers lines.

    The header is line 1; a quoted field that spans lines moves the next record down by as many
    lines; blank lines are skipped, as :func:`pandas.read_csv` skips them.

    Returns
    -------
    lines : list of int, one per data record, in file order
    """
    starts = []
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        end = 0
        for record in reader:
            if record:
                starts.append(end + 1)
            end = reader.line_num
    return starts[1:]


def _surplus_fields(path: Path) -> str | None:
    """The message naming the first record with more fields than the header, if there is one."""
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = next(reader, [])
        end = reader.line_num
        for record in reader:
            if len(record) > len(header):
                return (f"{path}, line {end + 1}: malformed CSV: {len(record)} fields, "
                        f"the header has {len(header)}")
            end = reader.line_num
    return None


def check_rows(path: Path, bad: pd.Series, problem: Callable[[int], str]) -> None:
    """Raise naming the first bad row of the table read from ``path`` by its line in the file.

    ``bad`` is one flag per data row in file order (NaN counts as bad); ``problem(i)`` says what
    is wrong with row ``i`` (0-based).
    """
    rows = np.flatnonzero(bad.to_numpy(dtype=bool, na_value=True))
    if rows.size:
        more = f" ({rows.size} bad rows)" if rows.size > 1 else ""
        raise ValueError(f"{path}, line {record_lines(path)[rows[0]]}: {problem(rows[0])}{more}")


def numbers(path: Path, raw: pd.Series, name: str, valid: Callable[[pd.Series], pd.Series],
             expected: str) -> pd.Series:
    """``raw`` strings as floats, every one a number for which ``valid`` holds."""
    values = pd.to_numeric(raw, errors="coerce")
    check_rows(path, values.isna() | ~valid(values), lambda i: f"{name} {raw.iloc[i]!r} is not {expected}")
    return values.astype(np.float64)

def in_score_range(v: pd.Series) -> pd.Series:
    return v.between(0, SCORE_MAX)

def load_pairs_csv(path: str | os.PathLike, *, bin_width: float = 0.5) -> pd.DataFrame:
    """A custom prompt set as a pair table.

    Parameters
    ----------
    path : path
        A CSV with columns ``prompt_a, prompt_b`` and a ``score`` (in [0, 5]) or a ``group`` (one
        of :func:`all_groups`) or both (then they must agree); optionally ``pair_id`` (else
        :func:`prompt_pair_id`), ``source_a``, ``source_b``.
    bin_width : float
        Similarity group width.

    Returns
    -------
    pairs : DataFrame
        Columns :data:`PAIR_COLUMNS`, rows in file order; prompts stripped.

    Raises
    ------
    FileNotFoundError
        For a missing file.
    ValueError
        Naming the problem: missing or unexpected columns, no rows, an empty prompt or
        ``pair_id``, a score that is not a number in [0, 5], a group that is not a group, a group
        that disagrees with its score (with its line in the file, the header being line 1), or a duplicate
        ``pair_id``.
    """
    path = Path(path)
    raw = read_csv_strings(path, "pairs CSV", "see the README, 'Your own prompt pairs'")
    check_columns(path, list(raw.columns), ("prompt_a", "prompt_b"), _OPTIONAL_CSV_COLUMNS)
    if "score" not in raw and "group" not in raw:
        raise ValueError(f"{path}: a pairs CSV needs a 'score' or a 'group' column")
    if raw.empty:
        raise ValueError(f"{path}: no pairs (only a header)")
    for col in ("prompt_a", "prompt_b", "pair_id"):
        if col in raw:
            raw[col] = raw[col].fillna("").str.strip()
            check_rows(path, raw[col] == "", lambda i: f"empty {col}")
    groups = all_groups(bin_width)
    nothing = pd.Series(np.nan, index=raw.index, dtype="str")
    score = (numbers(path, raw["score"], "score", in_score_range, f"a number in [0, {SCORE_MAX:g}]")
             if "score" in raw else nothing.astype(np.float64))
    group = (numbers(path, raw["group"], "group", lambda v: v.round(6).isin(groups),
                      f"one of {groups.tolist()}").round(6)
             if "group" in raw else similarity_group(score, bin_width))
    if "score" in raw and "group" in raw:
        expected = similarity_group(score, bin_width)
        check_rows(path, group != expected, lambda i: (
            f"group {group.iloc[i]:g} does not hold score {score.iloc[i]:g} (its group is {expected.iloc[i]:g})"
        ))
    pairs = pd.DataFrame({
        "pair_id": raw["pair_id"] if "pair_id" in raw else [
            prompt_pair_id(a, b) for a, b in zip(raw["prompt_a"], raw["prompt_b"])
        ],
        "prompt_a": raw["prompt_a"],
        "prompt_b": raw["prompt_b"],
        "score": score,
        "group": group,
        "source_a": raw["source_a"].replace("", np.nan) if "source_a" in raw else nothing,
        "source_b": raw["source_b"].replace("", np.nan) if "source_b" in raw else nothing,
    })
    check_unique_ids(pairs, str(path))
    return pairs

def bundled_pairs() -> pd.DataFrame:
    """The small offline pair set shipped with the package (``otinterp/resources``).

    Thirty MS-COCO-style caption pairs, three per similarity group: the nine rated examples of
    the Crisscrossed Captions README (``source_a == "cxc-readme"``) and 21 pairs written for this
    project whose scores are illustrative, not human ratings (``"illustrative"``); see
    ``otinterp/resources/README.md``.

    Returns
    -------
    pairs : DataFrame
        Columns :data:`PAIR_COLUMNS` (see :func:`load_pairs_csv`).
    """
    with as_file(files("otinterp.resources").joinpath("bundled_pairs.csv")) as path:
        return load_pairs_csv(path)
