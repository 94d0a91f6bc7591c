"""Reading a results folder back: the rows of the current pair table, in its order."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from otinterp.params import Params
from otinterp.store.index import ResultIndex
from otinterp.store.keys import pair_keys
from otinterp.store.manifest import read_manifest
from otinterp.store.parts import read_rows

__all__ = ["load_results"]


def load_results(out_dir: str | Path, pairs: pd.DataFrame | None = None, *, params: Params | None = None,
                 repair: bool = False) -> pd.DataFrame:
    """The result rows in ``out_dir``: one per (pair, latent seed, coupling), with the path measures
    derived from the stored LPIPS distances (:func:`otinterp.ppl.add_measures`).

    Parameters
    ----------
    out_dir : path
        A results folder.
    pairs : DataFrame, optional
        The current pair table: only its pairs are returned (in its order), with its prompts,
        scores, groups and ``draw`` (each pair's place in its group's sampled order, which the
        caption-disjoint subset follows). Without it, every row on disk, sorted by pair id.
    params : Params, optional
        Keep only its latent seeds and paths.
    repair : bool
        Move damaged parts aside instead of raising.

    Raises
    ------
    FileNotFoundError
        If there is no results folder, it has no manifest or it holds no parts.
    ValueError
        For parts of other settings than the manifest's (naming the setting).
    DamagedResults
        For a damaged manifest or part (named).
    """
    from otinterp.names import PATHS
    from otinterp.ppl import add_measures

    out_dir = Path(out_dir)
    if not (out_dir / "manifest.json").is_file():
        if any((out_dir / "parts").glob("part-*.parquet")):
            raise FileNotFoundError(f"results folder {out_dir} has parts but no manifest.json: run the experiment "
                                    "again with its settings to rebuild it from them")
        raise FileNotFoundError(f"results folder {out_dir} does not exist: run the experiment (notebook 02) first")
    index = ResultIndex(out_dir, read_manifest(out_dir / "manifest.json")["key"], repair=repair)
    if not index.files:
        raise FileNotFoundError(f"results folder {out_dir} holds no parts yet: run the experiment (notebook 02) first")
    df = pd.concat([read_rows(part) for part in index.parts], ignore_index=True)
    df = df.drop_duplicates(["pair_key", "seed", "path"], ignore_index=True)
    if params is not None:
        df = df[df["seed"].isin(params.latent_seeds) & df["path"].isin(params.paths)]
    if pairs is not None:
        if params is not None and params.max_pairs is not None:  # a pilot's pairs, as the run drew them
            from otinterp.data import balanced_subset

            pairs = balanced_subset(pairs, params.max_pairs)
        current = pairs.assign(pair_key=pair_keys(pairs), _order=range(len(pairs)),
                               draw=pairs.groupby("group", sort=False).cumcount().to_numpy())
        current = current[["pair_key", "_order", "draw", "group", "score"]]
        df = df.drop(columns=["group", "score"]).merge(current, on="pair_key", how="inner")
    else:
        df = df.assign(_order=df["pair_id"].rank(method="dense"))
    order = {c: i for i, c in enumerate(PATHS)}
    df = df.assign(_c=df["path"].map(order)).sort_values(["_order", "seed", "_c"], ignore_index=True)
    return add_measures(df.drop(columns=["_order", "_c"]))
