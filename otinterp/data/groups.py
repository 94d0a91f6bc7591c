"""Similarity groups and the normalised text and ids of prompt pairs (docs/definitions.md §5–§6)."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["SCORE_MAX", "all_groups", "similarity_group", "score_bin_edges", "normalise_text", "prompt_pair_id"]

#: Highest similarity score (scores are in [0, SCORE_MAX]).
SCORE_MAX = 5.0


def all_groups(bin_width: float = 0.5) -> np.ndarray:
    """The similarity groups ``bin_width, 2 bin_width, …, 5``.

    Parameters
    ----------
    bin_width : float
        Group width; ``5 / bin_width`` must be a whole number.

    Returns
    -------
    groups : (5 / bin_width,) float64 array, ascending
    """
    n = SCORE_MAX / bin_width if bin_width > 0 else 0.0
    if n < 1 or not np.isclose(n, round(n)):
        raise ValueError(f"bin_width must divide {SCORE_MAX:g} into whole groups, got {bin_width!r}")
    return np.round(np.arange(1, round(n) + 1) * bin_width, 6)

def similarity_group(score: Any, bin_width: float = 0.5) -> Any:
    """The similarity group of each score: group ``g`` holds ``(g - bin_width, g]``, 0 goes to
    the first group.

    Scores are rounded to 6 decimals of a group width first, so float noise (``2.9999999``)
    does not move a score across a boundary.

    Parameters
    ----------
    score : float, (n,) array-like or Series
        Scores in [0, 5].
    bin_width : float
        Group width (0.5 in the paper).

    Returns
    -------
    group : float, (n,) float64 array, or Series with ``score``'s index

    Raises
    ------
    ValueError
        For a score outside [0, 5] or not a number (the message names it).
    """
    all_groups(bin_width)
    s = np.asarray(score, dtype=np.float64)
    bad = ~((s >= 0) & (s <= SCORE_MAX))
    if bad.any():
        more = f" ({bad.sum()} scores are)" if bad.sum() > 1 else ""
        raise ValueError(f"similarity score {float(s[bad].flat[0])!r} is outside [0, {SCORE_MAX:g}]{more}")
    group = np.round(np.maximum(np.ceil(np.round(s / bin_width, 6)), 1) * bin_width, 6)
    if isinstance(score, pd.Series):
        return pd.Series(group, index=score.index, name="group")
    return float(group) if group.ndim == 0 else group

def score_bin_edges(width: float = 0.1, *, bin_width: float = 0.5) -> np.ndarray:
    """Histogram bin edges for scores that keep each bin inside one similarity group.

    Groups are closed on the right, ``(g - bin_width, g]``, while :func:`numpy.histogram` bins
    are closed on the left: the edges are shifted up by a millionth of a score unit (scores have
    two decimals), so a score exactly on a group edge ``g`` falls in the bin left of ``g``, in
    its group, and 0 in the first bin.

    Parameters
    ----------
    width : float
        Bin width; ``bin_width / width`` must be a whole number.
    bin_width : float
        Similarity group width.

    Returns
    -------
    edges : (5 / width + 1,) float64 array
        ``k * width + 1e-6`` for ``k = 0 … 5 / width``, the first edge ``-1e-6``.
    """
    per_group = bin_width / width if width > 0 else 0.0
    if per_group < 1 or not np.isclose(per_group, round(per_group)):
        raise ValueError(f"width must divide the group width {bin_width:g} into whole bins, got {width!r}")
    n = round(SCORE_MAX / width)
    edges = np.round(np.arange(n + 1) * width, 6) + 1e-6
    edges[0] = -1e-6
    return edges


def normalise_text(text: str) -> str:
    """``text`` stripped, case-folded and with white space runs collapsed to one space."""
    return " ".join(text.split()).casefold()

def prompt_pair_id(prompt_a: str, prompt_b: str) -> str:
    """The stable id of a custom prompt pair: ``"p-"`` + 12 hex digits of the SHA-1 of the
    normalised prompts joined by the unit separator ``"\\x1f"``."""
    key = normalise_text(prompt_a) + "\x1f" + normalise_text(prompt_b)
    return "p-" + hashlib.sha1(key.encode()).hexdigest()[:12]
