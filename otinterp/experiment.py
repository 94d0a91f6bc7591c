"""The experiment: interpolation paths for the OT, CLIP and random couplings, rendered and scored.

For every caption pair (Fu et al., "Which Way from B to A", section 4.1): encode both prompts,
compute the three couplings, their costs and ``W2``, render the images ``I_0..I_K`` of each path
with one fixed initial latent, and measure the path's LPIPS steps and PPL. The two endpoint images
are rendered once per pair and shared by the three couplings: ``X_K = Y[σ]`` renders as ``Y``
because the UNet is invariant to row order (SPEC 2), so a pair costs ``2 + 3 (K − 1)`` images.

Storage and restarts
--------------------
The pair table is cut into fixed *parts* of ``pairs_per_part`` consecutive pairs. A part is
rendered in one go and written atomically as ``part-<hash>.parquet``; a rerun skips parts already
on disk, and shard ``i/n`` takes parts ``i, i + n, …``. Because a part is always rendered with the
same batches, results do not depend on restarts or sharding, bit for bit.

Command line::

    python -m otinterp.experiment --params params/paper.yaml [--shard i/n] [--set batch_size=64]
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
from PIL import Image
from tqdm.auto import tqdm

from otinterp import couplings as C
from otinterp.io import atomic_write
from otinterp.params import Params, load as load_params, parse_overrides
from otinterp.data import check_unique_ids, read_pairs, require_columns
from otinterp.ppl import gini, load_lpips, path_distances, perceptual_path_length

__all__ = [
    "REQUIRED_COLUMNS", "check_pairs", "images_per_pair", "parse_shard", "shard_from_env", "shard_parts", "path_embeddings", "render_paths",
    "pipeline_for", "with_batch_size", "render_pairs",
    "encode_cached", "run", "load_results", "main",
]

#: Columns the experiment needs in a pair table (notebook 01's ``pairs.parquet`` has these and more).
REQUIRED_COLUMNS = ("pair_id", "prompt_a", "prompt_b", "group", "score")

_VERSIONED = ("otinterp", "torch", "diffusers", "transformers", "lpips", "pot", "scipy", "numpy")


# --- pairs, shards and parts ------------------------------------------------------------------

def check_pairs(pairs: pd.DataFrame) -> pd.DataFrame:
    """``pairs`` with a fresh index, after checking its columns and ids."""
    require_columns(pairs, REQUIRED_COLUMNS, "pair table")
    check_unique_ids(pairs, "pair table")
    return pairs.reset_index(drop=True)


def images_per_pair(n_intervals: int) -> int:
    """Renders per pair: the 2 shared endpoints and ``K − 1`` interior points of each coupling."""
    return 2 + len(C.COUPLINGS) * (n_intervals - 1)


def parse_shard(spec: str | tuple[int, int]) -> tuple[int, int]:
    """``"i/n"`` (or ``(i, n)``) as ``(i, n)`` with ``0 <= i < n``."""
    try:
        i, n = (int(v) for v in (spec.split("/") if isinstance(spec, str) else spec))
    except (TypeError, ValueError):
        raise ValueError(f"shard must look like 'i/n' (e.g. 0/4), got {spec!r}") from None
    if not 0 <= i < n:
        raise ValueError(f"shard {i}/{n} is out of range: need 0 <= i < n")
    return i, n


def shard_from_env(env: dict[str, str] | None = None) -> tuple[int, int]:
    """``(i, n)`` from a launcher's environment: accelerate/torchrun (``RANK``, ``WORLD_SIZE``) or a
    SLURM array job (``SLURM_ARRAY_TASK_ID``, ``SLURM_ARRAY_TASK_MIN``, ``SLURM_ARRAY_TASK_COUNT``)."""
    env = os.environ if env is None else env
    if "WORLD_SIZE" in env:
        return parse_shard((int(env.get("RANK", 0)), int(env["WORLD_SIZE"])))
    if "SLURM_ARRAY_TASK_COUNT" in env:
        task = int(env["SLURM_ARRAY_TASK_ID"]) - int(env.get("SLURM_ARRAY_TASK_MIN", 0))
        return parse_shard((task, int(env["SLURM_ARRAY_TASK_COUNT"])))
    raise ValueError("--shard auto needs RANK/WORLD_SIZE (accelerate launch, torchrun) or a SLURM array job")


def shard_parts(pairs: pd.DataFrame, pairs_per_part: int, shard: tuple[int, int] = (0, 1)) -> list[pd.DataFrame]:
    """The parts (slices of ``pairs_per_part`` consecutive pairs) that belong to ``shard``."""
    i, n = parse_shard(shard)
    starts = range(0, len(pairs), pairs_per_part)
    return [pairs.iloc[s:s + pairs_per_part] for j, s in enumerate(starts) if j % n == i]


def part_name(pair_ids: Sequence[str]) -> str:
    """File name of the part holding ``pair_ids``, stable across runs, shards and machines."""
    return "part-" + hashlib.sha256("\x1f".join(pair_ids).encode()).hexdigest()[:16] + ".parquet"


# --- paths ------------------------------------------------------------------------------------

def path_embeddings(x: torch.Tensor, y: torch.Tensor, pair_id: str, *, seed: int,
                    n_intervals: int) -> dict[str, dict[str, Any]]:
    """Couplings, costs and interior path points of one pair, for each coupling.

    Parameters
    ----------
    x, y : (n, d) tensor
        The two prompt embeddings.
    pair_id : str
        Seeds the random coupling with ``seed`` (:func:`otinterp.couplings.pair_rng`).
    n_intervals : int
        ``K``: the path is sampled at ``t_k = k / K``.

    Returns
    -------
    dict
        ``{coupling: {"perm", "cost", "interior": (K-1, n, d) tensor in x's dtype}}``; the
        endpoints are ``x`` and ``y`` for every coupling.
    """
    xa, ya = (t.detach().cpu().double().numpy() for t in (x, y))
    rng = C.pair_rng(seed, pair_id)
    ts = np.arange(1, n_intervals) / n_intervals
    out = {}
    for name in C.COUPLINGS:
        perm = C.coupling(name, xa, ya, rng if name == "random" else None)
        interior = torch.from_numpy(C.interpolate(xa, ya, perm, ts)).to(x.dtype)
        out[name] = {"perm": perm, "cost": C.coupling_cost(xa, ya, perm), "interior": interior}
    return out


def render_paths(pipe, embeds: dict[str, torch.Tensor], pairs: pd.DataFrame, params: Params, *,
                 uncond: torch.Tensor | None = None, disable: bool = True) -> dict[str, dict[str, Any]]:
    """Render the three paths of each pair in ``pairs``, batched together across pairs.

    Parameters
    ----------
    pipe : StableDiffusionPipeline
    embeds : dict of prompt -> (77, D) tensor
    pairs : DataFrame with ``pair_id, prompt_a, prompt_b``
    params : Params
        ``seed, n_intervals, steps, guidance, height, width, batch_size``.

    Returns
    -------
    dict
        ``{pair_id: {coupling: {"perm", "cost", "images": (K+1, 3, H, W) tensor in [0, 1]}}}``.
        Every pair's images come from ``2 + 3 (K − 1)`` renders.
    """
    from otinterp.render import render

    k = params.n_intervals
    paths, batch = {}, []
    for pid, a, b in pairs[["pair_id", "prompt_a", "prompt_b"]].itertuples(index=False):
        x, y = embeds[a], embeds[b]
        paths[pid] = path_embeddings(x, y, pid, seed=params.seed, n_intervals=k)
        batch += [x[None], y[None]] + [paths[pid][c]["interior"] for c in C.COUPLINGS]
    images = render(pipe, torch.cat(batch), seed=params.seed, steps=params.steps,
                    guidance=params.guidance, height=params.height, width=params.width,
                    batch_size=params.batch_size, uncond=uncond, disable=disable)
    # Row of `images` for step t_i of coupling c of pair j: endpoint a, its interior, endpoint b.
    first = torch.arange(len(paths))[:, None, None] * images_per_pair(k)
    step = torch.arange(k + 1)[None, None, :]
    coupling = torch.arange(len(C.COUPLINGS))[None, :, None]
    rows = torch.where(step == 0, 0, torch.where(step == k, 1, 1 + coupling * (k - 1) + step))
    stacked = images[first + rows]  # (pairs, couplings, K+1, 3, H, W), one gather
    for j, pid in enumerate(paths):
        for c, name in enumerate(C.COUPLINGS):
            paths[pid][name]["images"] = stacked[j, c]
            del paths[pid][name]["interior"]
    return paths


def pipeline_for(params: Params):
    """The pipeline of ``params.model`` on ``params.device`` in ``params.dtype``, with the speed
    options ``channels_last`` and ``compile_unet`` applied."""
    from otinterp.models import load_pipeline, prepare_for_speed

    pipe = load_pipeline(params.model, device=params.device, dtype=params.dtype)
    return prepare_for_speed(pipe, channels_last=params.channels_last, compile_unet=params.compile_unet)


def with_batch_size(params: Params, pipe) -> Params:
    """``params`` with ``batch_size: auto`` replaced by :func:`otinterp.render.largest_batch_size`."""
    if params.batch_size != "auto":
        return params
    from otinterp.render import largest_batch_size

    return params.replace(batch_size=largest_batch_size(pipe, height=params.height, width=params.width))


def render_pairs(params: Params, pairs: pd.DataFrame, *, pipe=None) -> dict[str, dict[str, Any]]:
    """Re-render the three paths of ``pairs`` with the experiment's params (for Figure 2 and previews).

    Returns :func:`render_paths`'s ``{pair_id: {coupling: {"perm", "cost", "images"}}}``.
    """
    from otinterp.text import uncond_embedding

    pipe = pipe if pipe is not None else pipeline_for(params)
    params = with_batch_size(params, pipe)
    prompts = pairs[["prompt_a", "prompt_b"]].to_numpy().ravel().tolist()
    embeds = encode_cached(pipe, prompts, Path(params.results_dir) / "embeddings", _model_key(params))
    return render_paths(pipe, embeds, check_pairs(pairs), params, uncond=uncond_embedding(pipe))


# --- prompt embeddings, cached on disk ---------------------------------------------------------

def _model_key(params: Params) -> str:
    return hashlib.sha256(f"{params.model}|{params.dtype}".encode()).hexdigest()[:16]


def encode_cached(pipe, prompts: Sequence[str], cache_dir: str | Path, model_key: str, *,
                  batch_size: int = 64) -> dict[str, torch.Tensor]:
    """Embeddings ``(77, D)`` of the unique ``prompts``, each encoded once and kept under ``cache_dir``.

    Files are keyed by ``model_key`` and a SHA-256 of the prompt and written atomically.
    """
    from otinterp.text import encode

    folder = Path(cache_dir) / model_key
    folder.mkdir(parents=True, exist_ok=True)
    file = {p: folder / (hashlib.sha256(p.encode()).hexdigest()[:24] + ".pt") for p in dict.fromkeys(prompts)}
    todo = [p for p, f in file.items() if not f.exists()]
    if todo:
        for p, e in zip(todo, encode(pipe, todo, batch_size=batch_size).cpu()):
            atomic_write(lambda path, e=e: torch.save(e.clone(), path), file[p])
    return {p: torch.load(f, weights_only=True) for p, f in file.items()}


# --- results ----------------------------------------------------------------------------------

def path_rows(pairs: pd.DataFrame, paths: dict, lpips_model, params: Params) -> pd.DataFrame:
    """One result row per (pair, coupling): costs, LPIPS steps ``distances``, PPL and summaries."""
    rows = []
    meta = pairs.set_index("pair_id")
    stack = torch.stack([paths[pid][c]["images"] for pid in paths for c in C.COUPLINGS])
    d_all = path_distances(stack, lpips_model, batch_size=params.batch_size, resize=params.lpips_resize)
    for j, (pid, name) in enumerate((pid, c) for pid in paths for c in C.COUPLINGS):
        d = d_all[j]
        w2 = paths[pid]["ot"]["cost"]
        rows.append({
            "pair_id": pid, "prompt_a": meta.at[pid, "prompt_a"], "prompt_b": meta.at[pid, "prompt_b"],
            "group": float(meta.at[pid, "group"]), "score": float(meta.at[pid, "score"]),
            "coupling": name, "cost": paths[pid][name]["cost"], "w2": w2,
            "cost_ratio": paths[pid][name]["cost"] / w2 if w2 > 0 else 1.0,
            "ppl": perceptual_path_length(d), "distances": d.tolist(), "max_step": float(d.max()),
            "total_length": float(d.sum()), "smoothness": 1.0 - gini(d),
            "lpips_backbone": params.lpips_backbone,
        })
    return pd.DataFrame(rows)


def load_results(out_dir: str | Path) -> pd.DataFrame:
    """All result parts under ``out_dir`` as one table, sorted by ``pair_id`` and coupling."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise FileNotFoundError(f"results folder {out_dir} does not exist: run the experiment (notebook 02) first")
    parts = sorted(out_dir.glob("part-*.parquet"))
    if not parts:
        raise FileNotFoundError(f"results folder {out_dir} holds no part-*.parquet files yet")
    df = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    order = {c: i for i, c in enumerate(C.COUPLINGS)}
    return df.sort_values(["pair_id", "coupling"], key=lambda s: s.map(order) if s.name == "coupling" else s,
                          ignore_index=True)


# --- the run manifest -------------------------------------------------------------------------

def _versions() -> dict[str, str]:
    out = {}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def check_manifest(out_dir: Path, params: Params, pairs: pd.DataFrame) -> dict:
    """Write ``manifest.json`` for a new results folder; refuse one made with other settings.

    The folder is tied to the fields that decide the numbers (``Params.result_key``), the part
    size and the pair table: mixing any of them would mix incompatible results.
    """
    key = {
        "result_key": params.result_key(),
        "pairs_per_part": params.pairs_per_part,
        "pairs_sha256": hashlib.sha256("\x1f".join(pairs["pair_id"]).encode()).hexdigest(),
    }
    path = out_dir / "manifest.json"
    if path.exists():
        old = json.loads(path.read_text())
        diffs = [f"{name}: {old['key'].get(name)!r} there, {value!r} now"
                 for name, value in key.items() if old["key"].get(name) != value]
        if diffs:
            raise ValueError(f"{out_dir} holds results of different settings ({'; '.join(diffs)}); "
                             "use another folder (run_dir) or remove it")
        return old
    manifest = {
        "key": key, "params": params.to_dict(), "versions": _versions(), "git_commit": _git_commit(),
        "device": params.device, "dtype": params.dtype, "seed": params.seed, "model": params.model,
        "n_pairs": len(pairs), "python": platform.python_version(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    atomic_write(lambda tmp: Path(tmp).write_text(json.dumps(manifest, indent=2, default=str)), path)
    return manifest


# --- the run ----------------------------------------------------------------------------------

def save_strips(paths: dict, pair_ids: Sequence[str], folder: Path) -> None:
    """PNG strips ``<pair_id>_<coupling>.png`` (images side by side, t_0..t_K) for ``pair_ids``."""
    folder.mkdir(parents=True, exist_ok=True)
    for pid in set(pair_ids) & set(paths):
        for name in C.COUPLINGS:
            imgs = paths[pid][name]["images"]
            strip = (torch.cat(list(imgs), dim=2).permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy()
            atomic_write(lambda tmp, s=strip: Image.fromarray(s).save(tmp, format="PNG"),
                         folder / f"{pid}_{name}.png")


def run(params: Params, pairs: pd.DataFrame, out_dir: str | Path | None = None, *,
        shard: str | tuple[int, int] = (0, 1), pipe=None, lpips_model=None,
        callback: Callable[[int, int], None] | None = None, disable: bool = False) -> pd.DataFrame:
    """Run (or resume) the experiment for this shard's pairs; return this shard's results.

    Parameters
    ----------
    params : Params
    pairs : DataFrame with :data:`REQUIRED_COLUMNS`
    out_dir : path, optional
        Results folder, by default ``params.results_dir``.
    shard : "i/n" or (i, n)
        Take parts ``i, i + n, …`` of the pair table.
    pipe, lpips_model : optional
        Already loaded models (by default loaded from ``params``).
    callback : callable(pairs_done, pairs_total), optional
        Called after each part is written.
    disable : bool
        Turn off the progress bar.
    """
    pairs = check_pairs(pairs)
    unknown = sorted(set(params.strip_pair_ids) - set(pairs["pair_id"]))
    if unknown:
        raise ValueError(f"strip_pair_ids not in the pair table: {', '.join(unknown)}")
    if params.max_pairs is not None:
        pairs = pairs.iloc[:params.max_pairs]
    shard = parse_shard(shard)
    out_dir = Path(out_dir if out_dir is not None else params.results_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    check_manifest(out_dir, params, pairs)

    parts = shard_parts(pairs, params.pairs_per_part, shard)
    todo = [p for p in parts if not (out_dir / part_name(list(p["pair_id"]))).exists()]
    total = sum(map(len, parts))
    if todo:
        pipe = pipe if pipe is not None else pipeline_for(params)
        params = with_batch_size(params, pipe)
        if lpips_model is None:
            lpips_model = load_lpips(params.lpips_net, params.lpips_backbone, device=params.device, seed=params.seed)
        from otinterp.text import uncond_embedding
        uncond = uncond_embedding(pipe)
        embeds = encode_cached(pipe, pd.concat(todo)[["prompt_a", "prompt_b"]].to_numpy().ravel().tolist(),
                               out_dir / "embeddings", _model_key(params), batch_size=params.batch_size)
    done = total - sum(map(len, todo))
    bar = tqdm(total=total, initial=done, desc="pairs", unit="pair", disable=disable)
    n_images, t0 = 0, time.perf_counter()
    for part in todo:
        paths = render_paths(pipe, embeds, part, params, uncond=uncond)
        rows = path_rows(part, paths, lpips_model, params)
        if params.strip_pair_ids:
            save_strips(paths, params.strip_pair_ids, out_dir / "strips")
        atomic_write(lambda tmp: rows.to_parquet(tmp, index=False), out_dir / part_name(list(part["pair_id"])))
        n_images += len(part) * images_per_pair(params.n_intervals)
        done += len(part)
        bar.update(len(part))
        bar.set_postfix(images_per_s=f"{n_images / (time.perf_counter() - t0):.2f}")
        if callback is not None:
            callback(done, total)
    bar.close()
    if not parts:  # more shards than parts: nothing for this one
        return pd.DataFrame()
    results = load_results(out_dir)
    return results[results["pair_id"].isin(pd.concat(parts)["pair_id"])].reset_index(drop=True)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m otinterp.experiment", description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", required=True, type=Path, help="a profile YAML, e.g. params/paper.yaml")
    parser.add_argument("--pairs", type=Path, help="pair table (parquet); default <run_dir>/pairs.parquet")
    parser.add_argument("--out", type=Path, help="results folder; default <run_dir>/results")
    parser.add_argument("--shard", default="0/1",
                        help="i/n: this process's share of the pairs; 'auto' reads accelerate/torchrun/SLURM")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="override a parameter")
    args = parser.parse_args(argv)
    # Resolved like the notebooks' (against the working directory, normally the repository), so
    # shards and notebook 02 agree on the model and share one results folder.
    params = load_params(args.params, **parse_overrides(args.set)).resolved(Path.cwd())
    shard = shard_from_env() if args.shard == "auto" else parse_shard(args.shard)
    if params.device == "cuda" and "LOCAL_RANK" in os.environ:  # one GPU per launched process
        params = params.replace(device=f"cuda:{os.environ['LOCAL_RANK']}")
    results = run(params, read_pairs(args.pairs or params.pairs_path), args.out, shard=shard)
    print(f"shard {shard[0]}/{shard[1]}: {len(results) // 3} pairs done -> {args.out or params.results_dir}")


if __name__ == "__main__":
    main()
