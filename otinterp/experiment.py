"""The experiment: interpolation paths for each coupling, rendered and scored (Karris et al. 2025, §4.1).

For every caption pair: encode both prompts into their token sets (and global vectors, for the
families that have one), pair the rows by each coupling, render the images ``I_0..I_K`` of each
path from a fixed initial latent, and measure the path with LPIPS (PPL and the measures of
docs/definitions.md §4). The two endpoint images are rendered once per pair and
latent and shared by every coupling: ``X_K = Y[σ]`` renders as ``Y`` because the denoiser is
invariant to the order of the token rows.

Incremental and deterministic
-----------------------------
A *unit* is one pair under one initial latent. Each unit is rendered in batches of its own — its
two endpoints, then each coupling's ``K − 1`` interior points — and scored path by path, so its
numbers depend only on the pair and the settings, never on which other pairs ran with it, how the
work was sharded or restarted, or which other paths were asked for. The results folder
(:mod:`otinterp.store`) is therefore keyed by the settings alone: adding pairs renders only the
new ones, editing a prompt renders that pair again, adding a latent seed or the slerp path renders
only what is missing.

Command line (:mod:`otinterp.cli`)::

    otinterp run --profile paper [--shard i/n|auto] [--dry-run] [--repair] [--set batch_size=16]
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
from PIL import Image
from tqdm.auto import tqdm

from otinterp import couplings as C
from otinterp.data import balanced_subset, check_unique_ids, read_pairs, require_columns
from otinterp.families import Conditioning, family_of
from otinterp.io import atomic_write
from otinterp.params import Params
from otinterp.ppl import RAW_COLUMNS, load_lpips, path_measures
from otinterp.store import (
    Claims, ResultIndex, check_settings, finish_record, load_results, measured_rate, model_identity, open_results,
    pair_keys, read_manifest, result_key, start_record, write_part,
)

__all__ = [
    "REQUIRED_COLUMNS", "check_pairs", "select_pairs", "images_per_pair", "parse_shard", "shard_from_env",
    "in_shard", "path_embeddings", "render_unit", "pipeline_for", "with_batch_size", "render_pairs",
    "encode_cached", "shard_units", "plan", "describe_plan", "Progress", "run", "load_results", "family_of",
]

#: Columns the experiment needs in a pair table (notebook 01's ``pairs.parquet`` has these and more).
REQUIRED_COLUMNS = ("pair_id", "prompt_a", "prompt_b", "group", "score")


# --- pairs and shards -------------------------------------------------------------------------

def check_pairs(pairs: pd.DataFrame) -> pd.DataFrame:
    """``pairs`` with a fresh index, after checking its columns and ids."""
    require_columns(pairs, REQUIRED_COLUMNS, "pair table")
    check_unique_ids(pairs, "pair table")
    return pairs.reset_index(drop=True)


def select_pairs(params: Params, pairs: pd.DataFrame) -> pd.DataFrame:
    """The pairs a run renders: all of them, or ``max_pairs`` drawn round-robin across groups.

    A pilot run of ``max_pairs: 500`` thus covers every similarity group, not the first one.
    """
    pairs = check_pairs(pairs)
    unknown = sorted(set(params.strip_pair_ids) - set(pairs["pair_id"]))
    if unknown:
        raise ValueError(f"strip_pair_ids not in the pair table: {', '.join(unknown)}")
    if params.max_pairs is not None:
        pairs = balanced_subset(pairs, params.max_pairs).reset_index(drop=True)
    return pairs


def images_per_pair(n_intervals: int, paths: Sequence[str] = C.COUPLINGS) -> int:
    """Renders per pair and latent: the 2 shared endpoints and ``K − 1`` interior points per path."""
    return 2 + len(paths) * (n_intervals - 1)


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


def in_shard(key: str, shard: tuple[int, int]) -> bool:
    """Whether the pair with :func:`~otinterp.store.pair_key` ``key`` belongs to ``shard`` (by its hash)."""
    i, n = shard
    return int(key, 16) % n == i


# --- paths ------------------------------------------------------------------------------------

def path_embeddings(x: torch.Tensor, y: torch.Tensor, pair_id: str, *, seed: int, n_intervals: int,
                    paths: Sequence[str] = C.COUPLINGS, pooled: tuple[torch.Tensor, torch.Tensor] | None = None,
                    fixed_rows: int = 1) -> dict[str, dict[str, Any]]:
    """Couplings, costs and interior path points of one pair, for each path.

    Parameters
    ----------
    x, y : (n, d) tensor
        The two token sets.
    pair_id : str
        Seeds the random coupling with ``seed`` (:func:`otinterp.couplings.pair_rng`).
    n_intervals : int
        ``K``: the path is sampled at ``t_k = k / K``.
    paths : sequence of str
        Paths to build, from :data:`otinterp.couplings.PATHS`.
    pooled : pair of (p,) tensors, optional
        The global vectors of the two prompts, interpolated linearly and identically for every path.
    fixed_rows : int
        Leading rows the random coupling keeps in place (the family's ``fixed_rows``: CLIP's BOS).

    Returns
    -------
    dict
        ``{name: {"perm", "cost", "w2", "interior": (K-1, n, d) tensor, "pooled": (K-1, p) tensor or None}}``
        in ``x``'s dtype; the endpoints are ``x`` and ``y`` for every path.
    """
    xa, ya = (t.detach().cpu().double().numpy() for t in (x, y))
    ts = np.arange(1, n_intervals) / n_intervals
    rng = C.pair_rng(seed, pair_id)
    pooled_path = None
    if pooled is not None:
        pa, pb = (p.detach().cpu().double() for p in pooled)
        w = torch.from_numpy(ts)[:, None]
        pooled_path = ((1 - w) * pa + w * pb).to(pooled[0].dtype)
    out = {}
    for name in paths:
        perm = C.path_coupling(name, xa, ya, rng, fixed=fixed_rows)
        interior = torch.from_numpy(C.path_points(name, xa, ya, ts, perm=perm)).to(x.dtype)
        out[name] = {"perm": perm, "cost": C.path_cost(name, xa, ya, perm), "interior": interior,
                     "pooled": pooled_path}
    w2 = out["ot"]["cost"] if "ot" in out else C.wasserstein2(xa, ya)
    for path in out.values():
        path["w2"] = w2
    return out


def render_unit(pipe, cond_a, cond_b, pair_id: str, params: Params, *, seed: int, paths: Sequence[str],
                uncond=None, on_images: Callable[[int], None] | None = None) -> dict[str, dict[str, Any]]:
    """Render one pair's paths from the initial latent of ``seed``, in batches of its own.

    The endpoints are one render call and each path's interior another, so a path's images never
    depend on what else was rendered.

    Parameters
    ----------
    cond_a, cond_b : Conditioning
        The two prompts' token sets ``(L, D)`` and global vectors ``(P,)`` or None.
    on_images : callable(n), optional
        Called after each render call with the number of images it made (for progress).

    Returns
    -------
    dict
        ``{name: {"perm", "cost", "w2", "images": (K+1, 3, H, W) float32 tensor in [0, 1]}}``.
    """
    from otinterp.render import render

    pooled = None if cond_a.pooled is None else (cond_a.pooled, cond_b.pooled)
    paths = path_embeddings(cond_a.tokens, cond_b.tokens, pair_id, seed=params.seed, n_intervals=params.n_intervals,
                            paths=paths, pooled=pooled, fixed_rows=family_of(pipe).fixed_rows)

    def draw(tokens: torch.Tensor, pooled_batch: torch.Tensor | None) -> torch.Tensor:
        if len(tokens) == 0:  # K = 1: the endpoints only
            return torch.empty((0, 3, params.height, params.width))
        images = render(pipe, tokens, pooled=pooled_batch, seed=seed, steps=params.steps, guidance=params.guidance,
                        height=params.height, width=params.width, batch_size=params.batch_size, uncond=uncond,
                        disable=True)
        if on_images is not None:
            on_images(len(images))
        return images

    ends = draw(torch.stack([cond_a.tokens, cond_b.tokens]),
                None if pooled is None else torch.stack(pooled))
    for path in paths.values():
        path["images"] = torch.cat([ends[:1], draw(path.pop("interior"), path.pop("pooled")), ends[1:]])
    return paths


def pipeline_for(params: Params):
    """The pipeline of ``params.model`` on ``params.device`` in ``params.dtype``, with its scheduler
    and the speed options ``channels_last`` and ``compile_unet`` applied."""
    from otinterp.models import load_pipeline, prepare_for_speed

    pipe = load_pipeline(params.model, device=params.device, dtype=params.dtype, scheduler=params.scheduler,
                         config=params.model_config)
    pipe.set_progress_bar_config(disable=True)
    return prepare_for_speed(pipe, channels_last=params.channels_last, compile_unet=params.compile_unet)


def with_batch_size(params: Params, pipe) -> Params:
    """``params`` with ``batch_size: auto`` replaced by :func:`otinterp.render.largest_batch_size`.

    The search starts at the largest call a unit makes, ``max(2, K − 1)`` images (a path's interior),
    since a larger batch is never filled.
    """
    if params.batch_size != "auto":
        return params
    from otinterp.render import largest_batch_size

    start = max(2, params.n_intervals - 1)
    return params.replace(batch_size=largest_batch_size(pipe, height=params.height, width=params.width, start=start))


def render_pairs(params: Params, pairs: pd.DataFrame, *, pipe=None, seed: int | None = None) -> dict[str, dict[str, Any]]:
    """Re-render the paths of ``pairs`` exactly as the experiment does (for Figure 2 and previews).

    Returns ``{pair_id: {coupling: {"perm", "cost", "images"}}}`` for latent ``seed`` (default the first).
    """

    pipe = pipe if pipe is not None else pipeline_for(params)
    params = with_batch_size(params, pipe)
    pairs = check_pairs(pairs)
    prompts = pairs[["prompt_a", "prompt_b"]].to_numpy().ravel().tolist()
    cond = encode_cached(pipe, prompts, Path(params.results_dir) / "embeddings", _model_key(params),
                         batch_size=params.batch_size)
    uncond = family_of(pipe).unconditional(pipe)
    seed = params.latent_seeds[0] if seed is None else seed
    return {pid: render_unit(pipe, cond[a], cond[b], pid, params, seed=seed, paths=params.paths, uncond=uncond)
            for pid, a, b in pairs[["pair_id", "prompt_a", "prompt_b"]].itertuples(index=False)}


# --- prompt encodings, cached on disk ----------------------------------------------------------

def _model_key(params: Params) -> str:
    return hashlib.sha256(f"{model_identity(params.model)}|{params.dtype}".encode()).hexdigest()[:16]


def encode_cached(pipe, prompts: Sequence[str], cache_dir: str | Path, model_key: str, *,
                  batch_size: int = 64) -> "Encodings":
    """The :class:`~otinterp.families.Conditioning` of each unique prompt, encoded once and kept on disk.

    Prompts not yet on disk are encoded ``batch_size`` at a time, each chunk moved to the CPU and
    written (atomically, keyed by ``model_key`` and a SHA-256 of the prompt) before the next, so
    neither the GPU nor the host ever holds every encoding (SD3's token sets are 2.7 MB each).

    Returns
    -------
    Encodings
        A read-only mapping ``{prompt: Conditioning}`` (``tokens (L, D)``, ``pooled (P,)`` or None,
        on the CPU) that reads a prompt's file when it is looked up.
    """
    folder = Path(cache_dir) / model_key
    folder.mkdir(parents=True, exist_ok=True)
    file = {p: folder / (hashlib.sha256(p.encode()).hexdigest()[:24] + ".pt") for p in dict.fromkeys(prompts)}
    todo = [p for p, f in file.items() if not f.exists()]
    for start in range(0, len(todo), batch_size):
        chunk = todo[start:start + batch_size]
        cond = family_of(pipe).encode(pipe, chunk, batch_size=batch_size)
        for i, p in enumerate(chunk):
            item = {"tokens": cond.tokens[i].cpu().clone(),
                    "pooled": None if cond.pooled is None else cond.pooled[i].cpu().clone()}
            atomic_write(lambda path, item=item: torch.save(item, path), file[p])
        del cond
    return Encodings(file)


class Encodings(Mapping):
    """``{prompt: Conditioning}`` read from the encoding cache on lookup (see :func:`encode_cached`)."""

    def __init__(self, files: dict[str, Path]) -> None:
        self.files = files

    def __getitem__(self, prompt: str) -> Conditioning:
        return Conditioning(**torch.load(self.files[prompt], weights_only=True))

    def __iter__(self):
        return iter(self.files)

    def __len__(self) -> int:
        return len(self.files)


# --- result rows ------------------------------------------------------------------------------

def pair_columns(pipe, cond_a: Conditioning, cond_b: Conditioning, prompts: Sequence[str],
                 ot_perm: np.ndarray | None = None) -> dict[str, Any]:
    """The columns every row of a pair carries, whatever the path: its global vectors' gap and
    where OT's saving over CLIP comes from (docs/definitions.md §14).

    ``global_distance`` is ``||g_A − g_B||`` of the two prompts' global vectors (NaN for families
    without one: every path moves the global vector along the same straight line), ``global_path``
    ``"linear"`` or ``"none"``; then :func:`otinterp.couplings.saving_by_rows` of the OT coupling
    (``ot_perm``, computed when not given) on the family's content rows.
    """
    gap = float("nan") if cond_a.pooled is None else float((cond_a.pooled.double() - cond_b.pooled.double()).norm())
    x, y = (c.tokens.detach().cpu().double().numpy() for c in (cond_a, cond_b))
    content = family_of(pipe).content_rows(pipe, list(prompts)).numpy()
    perm = C.ot_coupling(x, y) if ot_perm is None else ot_perm
    return {"global_distance": gap, "global_path": "none" if math.isnan(gap) else "linear",
            **C.saving_by_rows(x, y, perm, content[0], content[1])}


def unit_rows(pair: pd.Series, key: str, seed: int, paths: dict, lpips_model, params: Params,
              family: str, pair_values: Mapping[str, Any]) -> pd.DataFrame:
    """One result row per path of a unit: costs, the LPIPS distances the measures derive from, and
    the pair's own columns (:func:`pair_columns`).

    Each path is scored on its own (LPIPS batches never mix paths), like it is rendered.
    """
    rows = []
    for name, path in paths.items():
        w2 = path["w2"]
        m = path_measures(path["images"][None], lpips_model, batch_size=params.batch_size, resize=params.lpips_resize)
        rows.append({
            "pair_key": key, "pair_id": pair["pair_id"], "seed": seed, "path": name,
            "prompt_a": pair["prompt_a"], "prompt_b": pair["prompt_b"],
            "group": float(pair["group"]), "score": float(pair["score"]),
            "cost": path["cost"], "w2": w2, "cost_ratio": path["cost"] / w2 if w2 > 0 else 1.0,
            **{c: m[c][0].tolist() for c in RAW_COLUMNS}, **pair_values,
            "family": family, "model": params.model, "lpips_backbone": params.lpips_backbone,
        })
    return pd.DataFrame(rows)


def save_strips(paths: dict, pair_id: str, seed: int, folder: Path) -> None:
    """PNG strips ``<pair_id>_<coupling>[_seed<s>].png`` (images side by side, t_0..t_K)."""
    for name, path in paths.items():
        strip = (torch.cat(list(path["images"]), dim=2).permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy()
        suffix = "" if seed == 0 else f"_seed{seed}"
        atomic_write(lambda tmp, s=strip: Image.fromarray(s).save(tmp, format="PNG"),
                     folder / f"{pair_id}_{name}{suffix}.png")


# --- the run ----------------------------------------------------------------------------------

#: A unit of work as the scheduler queues it: (row of the pair table, pair key, latent seed).
Unit = tuple[int, str, int]


def shard_units(params: Params, pairs: pd.DataFrame, shard: tuple[int, int]) -> list[Unit]:
    """This shard's units, in the order of the pair table and of ``params.latent_seeds``."""
    return [(i, k, s) for i, k in enumerate(pair_keys(pairs)) if in_shard(k, shard) for s in params.latent_seeds]


def plan(params: Params, pairs: pd.DataFrame, out_dir: str | Path | None = None, *,
         shard: str | tuple[int, int] = (0, 1)) -> dict[str, Any]:
    """What a run would do, without rendering or writing: pairs, units, images to render, expected time.

    A folder the run would refuse (other settings, damaged files) is refused here in the same words.
    The time is estimated only from a rate measured on this kind of device with these settings:
    by an earlier run in the same results folder (its ``runs/*.json``), else by a benchmark whose
    rate file the ``rates_path`` setting names (``bench/gpu_check.sh`` writes ``bench/out/rates.json``).
    """
    # A rate file named but missing is a mistake the dry run reports; a run just goes without the estimate.
    if params.rates_path and not Path(params.rates_path).is_file():
        raise FileNotFoundError(f"rates_path {params.rates_path} does not exist "
                                "(bench/render_throughput.py --json writes one)")
    pairs = select_pairs(params, pairs)
    out_dir = Path(out_dir if out_dir is not None else params.results_dir)
    if (out_dir / "manifest.json").is_file():
        check_settings(out_dir, read_manifest(out_dir / "manifest.json"), result_key(params))
    index = ResultIndex(out_dir, result_key(params))
    return _plan(params, shard_units(params, pairs, parse_shard(shard)), index, out_dir)


def _plan(params: Params, units: Sequence[Unit], index: ResultIndex, out_dir: Path) -> dict[str, Any]:
    """:func:`plan` of ``units`` given what ``index`` holds."""
    missing = [index.missing((k, s), params.paths) for _, k, s in units]
    images = sum(images_per_pair(params.n_intervals, m) for m in missing if m)
    rate = measured_rate(out_dir, params, benchmarks=[params.rates_path] if params.rates_path else [])
    return {"pairs": len({k for _, k, _ in units}), "units": len(units), "units_done": sum(not m for m in missing),
            "images": images, "images_per_s": rate[0] if rate else None, "rate_from": rate[1] if rate else None,
            "seconds": images / rate[0] if rate else None}


def describe_plan(p: dict[str, Any]) -> str:
    """:func:`plan` as one line of text."""
    eta = (f"about {_duration(p['seconds'])} at {p['images_per_s']:.2f} images/s ({p['rate_from']})"
           if p["seconds"] is not None else "no rate measured on this device yet (a short run measures one)")
    return (f"{p['pairs']} pairs, {p['units']} pair×latent units, {p['units_done']} done: "
            f"{p['images']} images to render, {eta}")


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


class Progress:
    """A run's progress: a tqdm bar of units (for notebooks) and plain lines on stderr (for a
    terminal: ``make paper`` shows a notebook's stderr as it runs).

    The plain lines are the plan, printed at once, then a line (units and images done, images/s,
    ETA) whenever ``every`` seconds have passed since the last one — checked after each render
    call and each unit, so at least that often while rendering — and one when the last unit is done.

    Parameters
    ----------
    plan : dict
        :func:`plan`'s counts for the run.
    every : float
        Seconds between plain lines.
    disable : bool
        Turn off the bar (the plain lines stay).
    clock : callable
        Seconds, monotonic (injectable for tests).
    """

    def __init__(self, plan: dict[str, Any], *, every: float = 30.0, disable: bool = False,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total, self.done, self.images_asked = plan["units"], plan["units_done"], plan["images"]
        self.every, self.clock, self.images = every, clock, 0
        self.bar = tqdm(total=self.total, initial=self.done, desc="units", unit="unit", disable=disable)
        self._print(f"experiment: {describe_plan(plan)}")
        self.start()

    def start(self) -> None:
        """Start the clock of the rendering rate (after loading the models)."""
        self.started = self.last = self.clock()

    def elapsed(self) -> float:
        """Seconds since :meth:`start`."""
        return self.clock() - self.started

    def rendered(self, images: int) -> None:
        """Count ``images`` just rendered."""
        self.images += images
        if (rate := self.rate()) is not None:
            self.bar.set_postfix(images_per_s=f"{rate:.2f}")
        self._report()

    def advance(self, units: int = 1) -> None:
        """Count ``units`` done (by this worker, or found done by another)."""
        self.done += units
        self.bar.update(units)
        self._report(last=self.done == self.total)

    def rate(self) -> float | None:
        """Images rendered per second since :meth:`start`; None before the first."""
        seconds = self.elapsed()
        return self.images / seconds if self.images and seconds > 0 else None

    def line(self) -> str:
        """The progress line: units and images done, and images/s and ETA once there is a rate."""
        text = f"experiment: {self.done}/{self.total} pair×latent units, {self.images}/{self.images_asked} images"
        if (rate := self.rate()) is not None:
            text += f", {rate:.2f} images/s, ETA {_duration(max(self.images_asked - self.images, 0) / rate)}"
        return text

    def _report(self, last: bool = False) -> None:
        if last or self.clock() - self.last >= self.every:
            self.last = self.clock()
            self._print(self.line())

    @staticmethod
    def _print(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        self.bar.close()


@dataclass
class _Renderer:
    """The loaded models a run renders and scores units with, and where it saves strips."""

    params: Params
    pairs: pd.DataFrame
    out_dir: Path
    pipe: Any
    lpips_model: Any
    uncond: Any
    cond: Mapping[str, Conditioning]

    @classmethod
    def load(cls, params: Params, pairs: pd.DataFrame, out_dir: Path, units: Sequence[Unit], *, pipe=None,
             lpips_model=None) -> "_Renderer":
        """Load (or take) the models, resolve ``batch_size: auto`` and encode the prompts of ``units``."""
        pipe = pipe if pipe is not None else pipeline_for(params)
        params = with_batch_size(params, pipe)
        if lpips_model is None:
            lpips_model = load_lpips(params.lpips_net, params.lpips_backbone, device=params.device, seed=params.seed)
        uncond = family_of(pipe).unconditional(pipe)
        cond = encode_cached(pipe, [pairs.at[i, c] for i, _, _ in units for c in ("prompt_a", "prompt_b")],
                             out_dir / "embeddings", _model_key(params), batch_size=params.batch_size)
        return cls(params, pairs, out_dir, pipe, lpips_model, uncond, cond)

    def rows(self, unit: Unit, paths: Sequence[str], on_images: Callable[[int], None]) -> pd.DataFrame:
        """Render and score ``paths`` of ``unit``: its result rows (and strips, for chosen pairs)."""
        i, key, seed = unit
        pair = self.pairs.loc[i]
        a, b = self.cond[pair["prompt_a"]], self.cond[pair["prompt_b"]]
        rendered = render_unit(self.pipe, a, b, pair["pair_id"], self.params, seed=seed, paths=paths,
                               uncond=self.uncond, on_images=on_images)
        values = pair_columns(self.pipe, a, b, (pair["prompt_a"], pair["prompt_b"]),
                              rendered["ot"]["perm"] if "ot" in rendered else None)
        if pair["pair_id"] in self.params.strip_pair_ids:
            save_strips(rendered, pair["pair_id"], seed, self.out_dir / "strips")
        return unit_rows(pair, key, seed, rendered, self.lpips_model, self.params, family_of(self.pipe).name, values)


def _claim_batch(queue: list[Unit], index: ResultIndex, claims: Claims, paths: Sequence[str], size: int,
                 progress: Progress) -> tuple[list[tuple[Unit, list[str]]], int]:
    """Take up to ``size`` units off ``queue`` that still miss paths and that this worker claimed.

    Returns the batch (each unit with its missing paths) and how many units other workers held.
    A unit found finished by another worker counts as done.
    """
    index.refresh()
    batch, held = [], 0
    while queue and len(batch) < size:
        unit = queue.pop(0)
        missing = index.missing(unit[1:], paths)
        if not missing:  # finished by another worker meanwhile
            progress.advance(1)
        elif not claims.claim(unit[1:]):
            held += 1
        else:  # another worker may have finished it between our refresh and our claim
            index.refresh()
            missing = index.missing(unit[1:], paths)
            if missing:
                batch.append((unit, missing))
            else:
                claims.release(unit[1:])
                progress.advance(1)
    return batch, held


def _render_batch(renderer: _Renderer, batch: Sequence[tuple[Unit, list[str]]], claims: Claims,
                  progress: Progress) -> list[pd.DataFrame]:
    """The rows of each unit of ``batch``, rendered and scored, keeping the claims alive and counting progress."""
    frames = []
    for unit, missing in batch:
        frames.append(renderer.rows(unit, missing, progress.rendered))
        claims.refresh()
        progress.advance(1)
    return frames


def _write_batch(out_dir: Path, batch: Sequence[tuple[Unit, list[str]]], frames: Sequence[pd.DataFrame],
                 key: dict[str, Any], run: str) -> None:
    """Write a batch's rows as parts, one per set of missing paths, so that each part's record is exact."""
    for missing in dict.fromkeys(tuple(m) for _, m in batch):
        part = [(unit, rows) for (unit, m), rows in zip(batch, frames) if tuple(m) == missing]
        write_part(out_dir, pd.concat([rows for _, rows in part], ignore_index=True),
                   [unit[1:] for unit, _ in part], missing, key, run)


def run(params: Params, pairs: pd.DataFrame, out_dir: str | Path | None = None, *,
        shard: str | tuple[int, int] = (0, 1), pipe=None, lpips_model=None,
        callback: Callable[[int, int], None] | None = None, disable: bool = False, repair: bool = False,
        progress_every: float = 30.0) -> pd.DataFrame:
    """Run (or resume) the experiment for this shard's pairs; return their results.

    Opens the results folder (:func:`otinterp.store.open_results`: the settings are checked and
    the parts indexed), prints the plan, then repeatedly claims a batch of missing units, renders
    and scores them, and writes them as parts, until none is left.

    Parameters
    ----------
    params : Params
    pairs : DataFrame with :data:`REQUIRED_COLUMNS`
    out_dir : path, optional
        Results folder, by default ``params.results_dir``.
    shard : "i/n" or (i, n)
        Take the pairs whose key hashes to ``i`` modulo ``n``. Workers of one shard (or of no
        shard) share the work through lock files, so more can join at any time.
    pipe, lpips_model : optional
        Already loaded models (by default loaded from ``params``).
    callback : callable(units_done, units_total), optional
        Called after each batch of parts is written.
    disable : bool
        Turn off the progress bar (the plain progress lines stay).
    repair : bool
        Move damaged parts and rebuild a damaged manifest instead of stopping with an error.
    progress_every : float
        Seconds between plain progress lines (units and images done, images/s, ETA) on standard error.
    """
    pairs = select_pairs(params, pairs)
    shard = parse_shard(shard)
    out_dir = Path(out_dir if out_dir is not None else params.results_dir)
    _, index = open_results(out_dir, params, pairs, repair=repair)
    units = shard_units(params, pairs, shard)
    todo = [u for u in units if index.missing(u[1:], params.paths)]
    progress = Progress(_plan(params, units, index, out_dir), every=progress_every, disable=disable)
    record = start_record(out_dir, params, pairs, shard)
    claims, held = Claims(out_dir), 0
    try:
        renderer = _Renderer.load(params, pairs, out_dir, todo, pipe=pipe, lpips_model=lpips_model) if todo else None
        progress.start()  # after loading models and encoding prompts: the rate is rendering's
        queue = list(todo)
        while queue:
            batch, busy = _claim_batch(queue, index, claims, params.paths, params.pairs_per_part, progress)
            held += busy
            _write_batch(out_dir, batch, _render_batch(renderer, batch, claims, progress), index.key, record.stem)
            claims.release()
            if batch and callback is not None:
                callback(progress.done, progress.total)
    finally:
        claims.release()
        progress.close()
        finish_record(record, images=progress.images, seconds=progress.elapsed(), units=len(todo))
    if held:
        print(f"{held} pair×latent units were being rendered by other workers (see {out_dir / 'locks'}); "
              "run again when they finish", flush=True)
    if not units:  # more shards than pairs: nothing for this one
        return pd.DataFrame()
    return load_results(out_dir, pairs.iloc[sorted({i for i, _, _ in units})], params=params)
