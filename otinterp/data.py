"""Caption pairs by similarity group: the data of the experiment (SPEC section 3).

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

Three sources give pair tables: the Crisscrossed Captions (CxC) STS files with Karpathy's caption
text (:func:`load_cxc`, :func:`load_karpathy_captions`, :func:`resolve_cxc`), a custom CSV
(:func:`load_pairs_csv`) and the small set shipped with the package (:func:`bundled_pairs`).
:func:`sample_pairs` drops identical-text pairs and samples ``per_group`` pairs per group; the
table it returns carries its report (pairs available, identical-text pairs dropped and pairs
sampled, per group) in ``pairs.attrs["report"]``, shown by :func:`pairs_report`.
:func:`pairs_table` is the one entry point for a run's :class:`~otinterp.params.Params`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import warnings
import zipfile
from collections.abc import Callable, Sequence
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from otinterp.io import atomic_write
from otinterp.params import Params

__all__ = [
    "PAIR_COLUMNS", "CXC_COLUMNS", "SCORE_MAX", "similarity_group", "all_groups",
    "normalise_text", "prompt_pair_id", "load_cxc", "load_karpathy_captions", "resolve_cxc",
    "sample_pairs", "build_pairs", "pairs_report", "load_pairs_csv", "bundled_pairs",
    "pairs_table", "write_pairs", "read_pairs", "fetch_paper_data",
]

#: Columns of a pair table, in order.
PAIR_COLUMNS = ("pair_id", "prompt_a", "prompt_b", "score", "group", "source_a", "source_b")
#: Columns of a CxC STS file.
CXC_COLUMNS = ("caption1", "caption2", "agg_score", "sampling_method")
#: Highest similarity score (scores are in [0, SCORE_MAX]).
SCORE_MAX = 5.0

_CXC_ID = r"COCO_val2014:sentid:(\d+)"
_OPTIONAL_CSV_COLUMNS = ("pair_id", "score", "group", "source_a", "source_b")
_CXC_URL = "https://raw.githubusercontent.com/google-research-datasets/Crisscrossed-Captions/HEAD/data/{}"
_KARPATHY_URL = "https://cs.stanford.edu/people/karpathy/deepimagesent/caption_datasets.zip"
#: Size in bytes and SHA-256 of the CxC STS files (the repository's data/ folder).
_CXC_FILES = {
    "sts_val.csv": (3092201, "36d4fbdb88aed1ea90463f95ce40a4c081d25874fb6badd2dfaa62a28b25170b"),
    "sts_test.csv": (3096467, "33eea25bf41061c513ef4b39282aaf64bdf9b17ff233e343a6d6ae44d73e0272"),
}


def _by_hand(dest: str | os.PathLike = "data") -> str:
    """What to download, and where to put it, for the paper profile's data in ``dest``."""
    cxc = "; ".join(f"{_CXC_URL.format(name)} -> {Path(dest, 'cxc', name)}" for name in _CXC_FILES)
    return (
        f"download by hand: {cxc}; dataset_coco.json from Karpathy's splits {_KARPATHY_URL} -> "
        f"{Path(dest, 'dataset_coco.json')}"
    )


_GET_DATA = f"run otinterp.data.fetch_paper_data('data') or {_by_hand()}"


# --- similarity groups ---------------------------------------------------------------------


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
        Group width (SPEC: 0.5).

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


# --- pair ids ------------------------------------------------------------------------------


def normalise_text(text: str) -> str:
    """``text`` stripped, case-folded and with white space runs collapsed to one space."""
    return " ".join(text.split()).casefold()


def prompt_pair_id(prompt_a: str, prompt_b: str) -> str:
    """The stable id of a custom prompt pair: ``"p-"`` + 12 hex digits of the SHA-1 of the
    normalised prompts joined by the unit separator ``"\\x1f"``."""
    key = normalise_text(prompt_a) + "\x1f" + normalise_text(prompt_b)
    return "p-" + hashlib.sha1(key.encode()).hexdigest()[:12]


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


# --- reading files -------------------------------------------------------------------------


def _read_csv(path: Path, what: str) -> pd.DataFrame:
    """All cells of a CSV file as strings (missing cells NaN)."""
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path}: empty file, expected a CSV with a header row") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: malformed CSV: {err}") from None
    if not isinstance(table.index, pd.RangeIndex):  # pandas read a surplus first field as the index
        raise ValueError(f"{path}: malformed CSV: the data rows have more fields than the header")
    return table


def _check_columns(path: Path, columns: Sequence[str], required: Sequence[str],
                   optional: Sequence[str] = ()) -> None:
    missing = [c for c in required if c not in columns]
    unexpected = [c for c in columns if c not in (*required, *optional)]
    if missing or unexpected:
        problems = [f"missing column(s) {', '.join(map(repr, missing))}"] if missing else []
        problems += [f"unexpected column(s) {', '.join(map(repr, unexpected))}"] if unexpected else []
        allowed = ", ".join((*required, *(f"[{c}]" for c in optional)))
        raise ValueError(f"{path}: {'; '.join(problems)} (expected columns {allowed})")


def _check_rows(path: Path, bad: pd.Series, problem: Callable[[int], str]) -> None:
    """Raise naming the first bad row (1-based data row, the header not counted)."""
    rows = np.flatnonzero(bad.to_numpy(dtype=bool, na_value=True))
    if rows.size:
        more = f" ({rows.size} bad rows)" if rows.size > 1 else ""
        raise ValueError(f"{path}, row {rows[0] + 1}: {problem(rows[0])}{more}")


def _numbers(path: Path, raw: pd.Series, name: str, valid: Callable[[pd.Series], pd.Series],
             expected: str) -> pd.Series:
    """``raw`` strings as floats, every one a number for which ``valid`` holds."""
    values = pd.to_numeric(raw, errors="coerce")
    _check_rows(path, values.isna() | ~valid(values), lambda i: f"{name} {raw.iloc[i]!r} is not {expected}")
    return values.astype(np.float64)


def _in_score_range(v: pd.Series) -> pd.Series:
    return v.between(0, SCORE_MAX)


def load_cxc(paths: str | os.PathLike | Sequence[str | os.PathLike]) -> pd.DataFrame:
    """Read Crisscrossed Captions STS files (``sts_val.csv``, ``sts_test.csv``).

    Parameters
    ----------
    paths : path or sequence of paths
        CSV files with exactly the columns :data:`CXC_COLUMNS`.

    Returns
    -------
    cxc : DataFrame
        ``caption1, caption2`` (ids ``COCO_val2014:sentid:N``), ``agg_score`` (float in [0, 5]),
        ``sampling_method`` and ``file`` (the path each row was read from), rows in file order.

    Raises
    ------
    FileNotFoundError
        For a missing file (the message says how to get the data).
    ValueError
        For other or missing columns, a malformed id or a score that is not a number in [0, 5];
        the message names the file and the row (1-based, header not counted).
    """
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not paths:
        raise ValueError("load_cxc needs at least one CxC STS file")
    return pd.concat([_read_cxc(Path(p)) for p in paths], ignore_index=True)


def _read_cxc(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"CxC STS file {path} does not exist; {_GET_DATA}")
    cxc = _read_csv(path, "CxC STS file")
    _check_columns(path, list(cxc.columns), CXC_COLUMNS)
    for col in ("caption1", "caption2"):
        bad = ~cxc[col].str.fullmatch(_CXC_ID).fillna(False).astype(bool)
        _check_rows(path, bad, lambda i: f"{col} {cxc[col].iloc[i]!r} is not of the form COCO_val2014:sentid:N")
    score = _numbers(path, cxc["agg_score"], "agg_score", _in_score_range, f"a number in [0, {SCORE_MAX:g}]")
    return cxc[list(CXC_COLUMNS)].assign(agg_score=score, file=str(path))


def load_karpathy_captions(path: str | os.PathLike) -> dict[int, str]:
    """Caption text by ``sentid`` from Karpathy's ``dataset_coco.json``.

    Parameters
    ----------
    path : path
        ``dataset_coco.json``, or the zip Karpathy distributes (``caption_datasets.zip``) as is.

    Returns
    -------
    captions : dict of int to str
        ``images[].sentences[].raw`` (stripped) by ``sentid``.

    Raises
    ------
    FileNotFoundError
        For a missing file (the message says where to download it).
    ValueError
        For a file that is not JSON, has no ``images`` list, a sentence without an integer
        ``sentid`` and a string ``raw``, or a ``sentid`` that appears twice.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Karpathy caption file {path} does not exist; {_GET_DATA}")
    data = _read_karpathy_json(path)
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, list):
        raise ValueError(f"{path}: not Karpathy's dataset_coco.json: no 'images' list at the top level")
    captions: dict[int, str] = {}
    for i, image in enumerate(images):
        sentences = image.get("sentences") if isinstance(image, dict) else None
        if not isinstance(sentences, list):
            raise ValueError(f"{path}: images[{i}] has no 'sentences' list")
        for j, sentence in enumerate(sentences):
            sentid = sentence.get("sentid") if isinstance(sentence, dict) else None
            raw = sentence.get("raw") if isinstance(sentence, dict) else None
            if not isinstance(sentid, int) or isinstance(sentid, bool) or not isinstance(raw, str):
                raise ValueError(
                    f"{path}: images[{i}].sentences[{j}] needs an integer 'sentid' and a string 'raw'"
                )
            if sentid in captions:
                raise ValueError(f"{path}: sentid {sentid} appears twice (again in images[{i}])")
            captions[sentid] = raw.strip()
    return captions


def _read_karpathy_json(path: Path) -> Any:
    try:
        if not zipfile.is_zipfile(path):
            with path.open("rb") as fh:
                return json.load(fh)
        with zipfile.ZipFile(path) as archive, archive.open(_zip_member(archive, path)) as fh:
            return json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON: {err}") from None


def _zip_member(archive: zipfile.ZipFile, path: Path) -> str:
    """The name of ``dataset_coco.json`` inside Karpathy's zip (in any folder)."""
    members = [m for m in archive.namelist() if Path(m).name == "dataset_coco.json"]
    if not members:
        listing = ", ".join(archive.namelist()[:5])
        raise ValueError(f"{path}: the zip holds no dataset_coco.json (it has {listing})")
    return members[0]


# --- pair tables ---------------------------------------------------------------------------


def resolve_cxc(cxc: pd.DataFrame, captions: dict[int, str], *, bin_width: float = 0.5) -> pd.DataFrame:
    """Every CxC pair as a pair table, caption ids resolved to their text.

    Parameters
    ----------
    cxc : DataFrame
        From :func:`load_cxc` (columns ``caption1, caption2, agg_score``).
    captions : dict of int to str
        From :func:`load_karpathy_captions`.
    bin_width : float
        Similarity group width.

    Returns
    -------
    pairs : DataFrame
        Columns :data:`PAIR_COLUMNS`, one row per CxC row, identical-text pairs included;
        ``pair_id`` is ``"cxc:<sentid_a>-<sentid_b>"``, ``source_a, source_b`` the CxC ids.

    Raises
    ------
    ValueError
        For an id that is malformed or not in ``captions`` (the message names it), or a pair
        that appears twice.
    """
    require_columns(cxc, ("caption1", "caption2", "agg_score"), "CxC table")
    ids = pd.concat([cxc["caption1"], cxc["caption2"]], ignore_index=True).astype(str)
    sentid = ids.str.extract(f"^{_CXC_ID}$", expand=False)
    if sentid.isna().any():
        raise ValueError(f"caption id {ids[sentid.isna()].iloc[0]!r} is not of the form COCO_val2014:sentid:N")
    text = pd.Series(captions, dtype=str).reindex(sentid.astype(np.int64).to_numpy())
    unknown = ids[text.isna().to_numpy()].unique()
    if unknown.size:
        raise ValueError(
            f"{unknown.size} caption id(s) not in the Karpathy captions, e.g. {', '.join(unknown[:5])}; "
            "is the caption file Karpathy's dataset_coco.json?"
        )
    n = len(cxc)
    sentid = sentid.to_numpy()
    score = cxc["agg_score"].to_numpy(dtype=np.float64)
    pairs = pd.DataFrame({
        "pair_id": "cxc:" + pd.Series(sentid[:n]) + "-" + pd.Series(sentid[n:]),
        "prompt_a": text.to_numpy()[:n],
        "prompt_b": text.to_numpy()[n:],
        "score": score,
        "group": similarity_group(score, bin_width),
        "source_a": cxc["caption1"].to_numpy(),
        "source_b": cxc["caption2"].to_numpy(),
    })
    check_unique_ids(pairs, "CxC pairs")
    return pairs


def sample_pairs(pairs: pd.DataFrame, *, per_group: int, seed: int, bin_width: float = 0.5) -> pd.DataFrame:
    """Drop identical-text pairs, then sample up to ``per_group`` pairs of each group.

    Pairs whose prompts are the same text after :func:`normalise_text` are dropped and counted.
    Each group is sampled without replacement by ``numpy.random.default_rng((seed, k))``, ``k``
    the group's index (1 for the first group), from its pairs sorted by ``pair_id``: the sample
    does not depend on the order of the input rows. A group with fewer pairs is taken whole, with
    a warning.

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

    Returns
    -------
    sampled : DataFrame
        Columns :data:`PAIR_COLUMNS`, sorted by ``group`` then ``pair_id``. ``attrs["report"]``
        holds, per group, the pairs ``available`` (after the drop), ``identical_dropped`` and
        ``sampled`` as a dict of lists (see :func:`pairs_report`).

    Warns
    -----
    UserWarning
        Naming the groups with fewer than ``per_group`` pairs.
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
    picks = []
    for group, rows in kept.groupby("group", sort=True):
        rng = np.random.default_rng((seed, round(group / bin_width)))
        take = rng.choice(len(rows), size=min(per_group, len(rows)), replace=False)
        picks.append(rows.iloc[take])
    sampled = pd.concat(picks or [kept]).sort_values(["group", "pair_id"]).reset_index(drop=True)
    counts = {
        "available": kept["group"], "identical_dropped": pairs.loc[same, "group"], "sampled": sampled["group"],
    }
    report = pd.DataFrame({k: v.value_counts().reindex(groups, fill_value=0) for k, v in counts.items()})
    short = report[report["available"] < per_group]
    if len(short):
        listing = ", ".join(f"{g} ({n})" for g, n in short["available"].items())
        warnings.warn(f"fewer than {per_group} pairs in group(s) {listing}: all of them taken", stacklevel=2)
    sampled.attrs["report"] = {"group": groups.tolist(), **{k: v.tolist() for k, v in report.items()}}
    return sampled


def build_pairs(cxc: pd.DataFrame, captions: dict[int, str], *, per_group: int, seed: int,
                bin_width: float = 0.5) -> pd.DataFrame:
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
        Similarity group width (SPEC: 0.5).

    Returns
    -------
    pairs : DataFrame
        Columns :data:`PAIR_COLUMNS` with ``attrs["report"]`` (see :func:`sample_pairs`).
    """
    return sample_pairs(resolve_cxc(cxc, captions, bin_width=bin_width),
                        per_group=per_group, seed=seed, bin_width=bin_width)


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
        that disagrees with its score (with the row, 1-based, header not counted), or a duplicate
        ``pair_id``.
    """
    path = Path(path)
    raw = _read_csv(path, "pairs CSV")
    _check_columns(path, list(raw.columns), ("prompt_a", "prompt_b"), _OPTIONAL_CSV_COLUMNS)
    if "score" not in raw and "group" not in raw:
        raise ValueError(f"{path}: a pairs CSV needs a 'score' or a 'group' column")
    if raw.empty:
        raise ValueError(f"{path}: no pairs (only a header)")
    for col in ("prompt_a", "prompt_b", "pair_id"):
        if col in raw:
            raw[col] = raw[col].fillna("").str.strip()
            _check_rows(path, raw[col] == "", lambda i: f"empty {col}")
    groups = all_groups(bin_width)
    nothing = pd.Series(np.nan, index=raw.index, dtype="str")
    score = (_numbers(path, raw["score"], "score", _in_score_range, f"a number in [0, {SCORE_MAX:g}]")
             if "score" in raw else nothing.astype(np.float64))
    group = (_numbers(path, raw["group"], "group", lambda v: v.round(6).isin(groups),
                      f"one of {groups.tolist()}").round(6)
             if "group" in raw else similarity_group(score, bin_width))
    if "score" in raw and "group" in raw:
        expected = similarity_group(score, bin_width)
        _check_rows(path, group != expected, lambda i: (
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


def pairs_table(P: Params) -> pd.DataFrame:
    """The run's pair table: the source ``P.pairs_source`` sampled with ``P.per_group``, ``P.seed``.

    ``bundled``: :func:`bundled_pairs`; ``csv``: :func:`load_pairs_csv` of ``P.pairs_csv``;
    ``cxc``: :func:`load_cxc` of ``P.cxc_paths`` with :func:`load_karpathy_captions` of
    ``P.karpathy_path``. Paths are used as given (relative ones against the working directory).

    Returns
    -------
    pairs : DataFrame
        From :func:`sample_pairs`, with its report in ``attrs["report"]``.
    """
    if P.pairs_source == "cxc":
        pairs = resolve_cxc(load_cxc(P.cxc_paths), load_karpathy_captions(P.karpathy_path))
    elif P.pairs_source == "csv":
        pairs = load_pairs_csv(P.pairs_csv)
    else:
        pairs = bundled_pairs()
    return sample_pairs(pairs, per_group=P.per_group, seed=P.seed)


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
    _check_columns(path, list(pairs.columns), PAIR_COLUMNS)
    return pairs


# --- downloads -----------------------------------------------------------------------------


def fetch_paper_data(dest: str | os.PathLike = "data", *, timeout: float = 10.0) -> dict[str, Path]:
    """Download the paper profile's data into ``dest``, verifying what can be verified.

    Writes ``dest/cxc/sts_val.csv`` and ``dest/cxc/sts_test.csv`` (Crisscrossed Captions, checked
    against their known size and SHA-256) and ``dest/dataset_coco.json`` (extracted from
    Karpathy's ``caption_datasets.zip``, checked to load with :func:`load_karpathy_captions`).
    Files already present (the CxC ones with the right checksum) are kept. Each file is
    downloaded into a temporary folder inside ``dest`` and moved into place with ``os.replace``.

    Parameters
    ----------
    dest : path
        The data folder (the paper profile reads ``data/``).
    timeout : float
        Seconds to wait for the network before giving up.

    Returns
    -------
    paths : dict of str to Path
        ``"sts_val.csv"``, ``"sts_test.csv"``, ``"dataset_coco.json"`` to their paths.

    Raises
    ------
    ConnectionError
        At the first download that fails (offline), saying what to download and where to put it.
    ValueError
        For a download of the wrong size or checksum, or a zip without a valid dataset_coco.json
        (nothing is written).
    """
    dest = Path(dest)
    paths = {name: dest / "cxc" / name for name in _CXC_FILES} | {"dataset_coco.json": dest / "dataset_coco.json"}
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest, prefix=".fetch-") as tmp:
        for name, (size, sha256) in _CXC_FILES.items():
            if paths[name].is_file() and _sha256(paths[name]) == sha256:
                continue
            url = _CXC_URL.format(name)
            got = _download(url, Path(tmp) / name, timeout, dest)
            got_size, got_sha = got.stat().st_size, _sha256(got)
            if (got_size, got_sha) != (size, sha256):
                raise ValueError(f"{url}: downloaded {got_size} bytes with SHA-256 {got_sha}, "
                                 f"expected {size} bytes with SHA-256 {sha256}")
            paths[name].parent.mkdir(parents=True, exist_ok=True)
            os.replace(got, paths[name])
        if not paths["dataset_coco.json"].is_file():
            archive = _download(_KARPATHY_URL, Path(tmp) / "caption_datasets.zip", timeout, dest)
            load_karpathy_captions(archive)
            coco = Path(tmp) / "dataset_coco.json"
            with zipfile.ZipFile(archive) as zf, zf.open(_zip_member(zf, archive)) as src, coco.open("wb") as out:
                shutil.copyfileobj(src, out)
            os.replace(coco, paths["dataset_coco.json"])
    return paths


def _download(url: str, path: Path, timeout: float, dest: Path) -> Path:
    """``url`` saved to ``path``; a network failure is a ConnectionError saying what to put in ``dest``."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, path.open("wb") as out:
            shutil.copyfileobj(response, out)
    except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
        raise ConnectionError(f"could not download {url} ({err}); {_by_hand(dest)}") from err
    return path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
