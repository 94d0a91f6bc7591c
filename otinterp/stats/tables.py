"""Writing result tables as CSV, Markdown and LaTeX, with their notes."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from otinterp.io import atomic_write

__all__ = ["write_table", "read_table_csv"]


def _lines(note: str | Sequence[str | None] | None) -> list[str]:
    """The note as a list of lines (None entries and empty lines dropped)."""
    notes = [note] if isinstance(note, str) or note is None else list(note)
    return [line for n in notes if n for line in n.splitlines() if line.strip()]


def _csv(df: pd.DataFrame, index: bool, notes: list[str]) -> str:
    return "".join(f"# {line}\n" for line in notes) + df.to_csv(index=index)


def _md(df: pd.DataFrame, index: bool, notes: list[str]) -> str:
    escaped = (line.replace("*", "\\*") for line in notes)  # the marks' stars are text, not emphasis
    return df.to_markdown(index=index, floatfmt=".4g") + "".join(f"\n\n*{line}*" for line in escaped) + "\n"


def _tex(df: pd.DataFrame, index: bool, notes: list[str]) -> str:
    return ("".join(f"% {line}\n" for line in notes)
            + df.to_latex(index=index, escape=True, float_format="{:.4g}".format, na_rep="--"))


_WRITERS = {"csv": _csv, "md": _md, "tex": _tex}


def write_table(df: pd.DataFrame, directory: str | Path, name: str,
                formats: Sequence[str] = ("csv", "md", "tex"), *,
                note: str | Sequence[str | None] | None = None) -> list[Path]:
    """Write ``df`` as ``directory/name.<format>`` for each format, atomically, with its notes.

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
    note : str or sequence of str, optional
        Notes that belong to the table: the random-weights caveat (``Params.caveat``), the
        legend of its marks, what its p-values mean. None entries are skipped, so
        ``[P.caveat, legend]`` is fine for real weights. Written as leading comment lines
        ``# ...`` in CSV (read it with ``pandas.read_csv(path, comment="#")`` or
        :func:`read_table_csv`), as italic lines under the Markdown table and as ``% ...``
        comment lines above the LaTeX one.

    Returns
    -------
    paths : list of Path
        The files written, in the order of ``formats``.
    """
    unknown = [f for f in formats if f not in _WRITERS]
    if unknown:
        raise ValueError(f"unknown table format(s) {', '.join(map(repr, unknown))}; "
                         f"expected {', '.join(map(repr, _WRITERS))}")
    index = not isinstance(df.index, pd.RangeIndex)
    notes = _lines(note)
    if any("#" in line for line in notes):  # pandas' comment='#' would cut the CSV's cells at a '#'
        raise ValueError(f"a table note may not contain '#': {notes}")
    return [atomic_write(lambda tmp, f=f: Path(tmp).write_text(_WRITERS[f](df, index, notes)),
                         Path(directory) / f"{name}.{f}") for f in formats]


def read_table_csv(path: str | Path, **kwargs) -> pd.DataFrame:
    """Read a CSV written by :func:`write_table`, skipping its note lines (``comment="#"``)."""
    return pd.read_csv(path, comment="#", **kwargs)
