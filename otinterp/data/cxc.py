"""Crisscrossed Captions (CxC) STS files and Karpathy's caption text, resolved into a pair table."""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from otinterp.data.csvfile import check_rows, in_score_range, numbers, read_csv_strings
from otinterp.data.groups import SCORE_MAX, similarity_group
from otinterp.data.tables import check_columns, check_unique_ids, require_columns

__all__ = ["CXC_COLUMNS", "load_cxc", "load_karpathy_captions", "resolve_cxc"]

#: Columns of a CxC STS file.
CXC_COLUMNS = ("caption1", "caption2", "agg_score", "sampling_method")

_CXC_ID = r"COCO_val2014:sentid:(\d+)"

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
        the message names the file and the line (the header is line 1).
    """
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not paths:
        raise ValueError("load_cxc needs at least one CxC STS file")
    return pd.concat([_read_cxc(Path(p)) for p in paths], ignore_index=True)

def _read_cxc(path: Path) -> pd.DataFrame:
    cxc = read_csv_strings(path, "CxC STS file", _GET_DATA)
    check_columns(path, list(cxc.columns), CXC_COLUMNS)
    for col in ("caption1", "caption2"):
        bad = ~cxc[col].str.fullmatch(_CXC_ID).fillna(False).astype(bool)
        check_rows(path, bad, lambda i: f"{col} {cxc[col].iloc[i]!r} is not of the form COCO_val2014:sentid:N")
    score = numbers(path, cxc["agg_score"], "agg_score", in_score_range, f"a number in [0, {SCORE_MAX:g}]")
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
