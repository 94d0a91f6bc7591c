"""Explore one pair: its OT, CLIP, random and slerp paths on a fine grid, and why they differ.

Given two prompts (or a pair id of a run) and a run's :class:`~otinterp.params.Params`,
:func:`explore` encodes both prompts, computes each path's row pairing, cost and ``W2``, renders
every path at ``frames`` equally spaced points ``t_k = k / (frames − 1)`` from one initial latent
(the two endpoint images once, shared by the paths) and scores each with LPIPS: the steps
``d_k``, PPL and the measures beyond it (:func:`otinterp.ppl.path_measures`). The result, an
:class:`Exploration`, is drawn by :func:`strips_figure` (image strips beside each path's ``d_k``
curve) and :func:`coupling_figure` (which token of A the OT coupling sends to which token of B,
with the CLIP coupling for contrast), animated by :func:`write_animations` (GIF and MP4, the
paths side by side) and browsed in JupyterLab with :class:`Explorer` (prompt boxes, the path,
a slider over ``t``; every exploration is cached, so moving the slider never re-renders).

Every model family works alike (SD 1.x/2.x, SDXL, SD3, Flux: :mod:`otinterp.families`): the
prompts are encoded by the family into a token set and, where the family has one, a global vector;
the paths pair and interpolate the token rows and interpolate the global vector linearly, the same
for every path, exactly as the experiment does (:func:`otinterp.experiment.path_embeddings`);
guidance uses the family's fixed unconditional input; and the coupling plot labels each row with
its tokenizer's string, block by block (SD3: its 77 CLIP rows, then ``T5:``-prefixed T5 rows).
Every call into the model (text encoder, tokenizers, renderer, LPIPS) is in the section "model
layer" below.

Command line::

    otinterp explore "prompt a" "prompt b" [--profile smoke] [--frames 24]
        [--seed-index 0 1 | all] [--pair-id ID] [--set steps=4] [--out DIR]

writes, under ``DIR`` (default :func:`output_folder`: ``<figures_dir>/explore/<slug of A>--<slug of
B>``, never notebook 05's ``<figures_dir>/explore``): ``strips_seed<s>.png``,
``paths_seed<s>.gif``, ``paths_seed<s>.mp4`` per latent seed, ``coupling.png`` and
``measures.json`` (PPL, cost, W2, path efficiency, excursion, max step… per seed and path).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import torch

from otinterp import couplings as C
from otinterp import plots
from otinterp.names import MEASURES
from otinterp.params import Params

if TYPE_CHECKING:
    from otinterp.families import Conditioning

__all__ = [
    "Exploration", "explore", "explore_seeds", "load_models", "prompt_tokens", "measure_rows",
    "strips_figure", "coupling_figure", "animation_frames", "write_animations", "write_outputs",
    "Explorer", "pair_prompts", "output_folder", "explore_to_folder",
]

#: Per-path numbers written to ``measures.json``, besides ``distances``.
SUMMARY_FIELDS = ("cost", "w2", "cost_ratio", "rows_in_place", "intervals", *MEASURES)


# --- model layer: every call into the model and LPIPS ---------------------------------------------

def load_models(params: Params) -> tuple[Any, torch.nn.Module]:
    """The pipeline of ``params`` (as the experiment builds it) and its LPIPS model."""
    from otinterp.experiment import pipeline_for
    from otinterp.ppl import load_lpips

    return pipeline_for(params), load_lpips(params.lpips_net, params.lpips_backbone, device=params.device,
                                            seed=params.seed)


def prompt_tokens(pipe: Any, prompt: str) -> list[str]:
    """The tokenizer's strings of ``prompt``, one per row of its token set (BOS, words, EOS, padding).

    The rows are labelled block by block (:meth:`otinterp.families.Family.blocks`), each block by
    the first of its tokenizers (SDXL's two CLIP tokenizers split a prompt alike). With several
    blocks every string is prefixed with its block's name: SD3's ``77`` CLIP rows ``"CLIP:a</w>"``
    followed by its T5 rows ``"T5:▁a"``. A block whose tokenizer the pipeline lacks (SD3 without
    T5, whose rows are zeros) is labelled ``"<zeros>"``.

    Returns
    -------
    tokens : (L,) list of str
    """
    from otinterp.families import family_of

    family = family_of(pipe)
    ids = family.tokenize(pipe, [prompt])
    blocks = family.blocks(pipe)
    labels = []
    for block, (rows, tokenizers) in blocks.items():
        present = [name for name in tokenizers if name in ids]
        n_rows = rows.stop - rows.start
        if present:
            strings = getattr(pipe, present[0]).convert_ids_to_tokens(ids[present[0]][0].tolist())
        else:
            strings = ["<zeros>"] * n_rows
        if len(strings) != n_rows:
            raise ValueError(f"block {block!r} has {n_rows} rows but its tokenizer gives {len(strings)} tokens")
        labels += [f"{block}:{s}" for s in strings] if len(blocks) > 1 else strings
    return labels


def _encode(pipe: Any, prompts: Sequence[str]) -> Conditioning:
    """The family's conditioning of ``prompts``: ``tokens (N, L, D)``, ``pooled (N, P)`` or None, CPU float32."""
    from otinterp.families import family_of

    return family_of(pipe).encode(pipe, prompts).to("cpu", torch.float32)


def _render_paths(pipe: Any, cond_a: Conditioning, cond_b: Conditioning, pair_id: str, params: Params, *,
                  frames: int, seed: int, paths: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Each path's pairing, cost, ``W2`` and images ``(frames, 3, H, W)`` in ``[0, 1]``.

    The path points are the experiment's (:func:`otinterp.experiment.path_embeddings` with
    ``K = frames − 1``: the global vector interpolated linearly, alike for every path), rendered as
    the experiment does: the two endpoints in one call, each path's interior in a call of its own,
    with the family's fixed unconditional input. So a path's images never depend on the other paths.
    """
    from otinterp.experiment import render_unit, with_batch_size
    from otinterp.families import family_of

    params = with_batch_size(params, pipe).replace(n_intervals=frames - 1)
    return render_unit(pipe, cond_a, cond_b, pair_id, params, seed=seed, paths=paths,
                       uncond=family_of(pipe).unconditional(pipe))


def _measures(images: torch.Tensor, lpips_model: torch.nn.Module, params: Params) -> dict[str, np.ndarray]:
    from otinterp.ppl import path_measures

    batch_size = params.batch_size if isinstance(params.batch_size, int) else 32
    return path_measures(images, lpips_model, batch_size=batch_size, resize=params.lpips_resize)


# --- one exploration ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Exploration:
    """The paths of one pair from one initial latent, with their pairings and measures.

    Attributes
    ----------
    prompts : (2,) tuple of str
        Prompts A and B.
    pair_id : str
        Seeds the random coupling (:func:`otinterp.couplings.pair_rng`).
    model : str
        The model spec the images come from.
    caveat : str or None
        What every figure of random-weight models must say (:attr:`Params.caveat`).
    seed : int
        Seed of the initial latent.
    ts : (frames,) float array
        ``t_k = k / (frames − 1)``.
    tokens : (2,) tuple of list of str
        The tokenizer's strings of A and B, one per embedding row.
    perms : dict of str to (L,) int array
        Each path's row pairing (the identity for slerp).
    costs : dict of str to float
        :func:`otinterp.couplings.path_cost` of each path.
    w2 : float
        ``W2`` of the two embeddings (the OT cost).
    images : dict of str to (frames, 3, H, W) float32 tensor in [0, 1]
    measures : dict of str to dict
        Per path: ``distances`` (frames − 1,), ``intervals`` (K = frames − 1: the PPL is comparable only
        at one K) and the floats of :data:`otinterp.names.MEASURES`.
    content : (2,) tuple of (L,) bool array, optional
        Which rows of A and of B are content, not padding (the tokenizers' attention masks).
    """

    prompts: tuple[str, str]
    pair_id: str
    model: str
    caveat: str | None
    seed: int
    ts: np.ndarray
    tokens: tuple[list[str], list[str]]
    perms: dict[str, np.ndarray]
    costs: dict[str, float]
    w2: float
    images: dict[str, torch.Tensor]
    measures: dict[str, dict[str, Any]]
    content: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def paths(self) -> list[str]:
        """The path names, in :data:`otinterp.couplings.PATHS` order."""
        return list(self.images)


def _check_paths(paths: Sequence[str]) -> list[str]:
    paths = list(paths)
    unknown = [p for p in paths if p not in C.PATHS]
    if unknown or not paths or len(set(paths)) < len(paths):
        raise ValueError(f"paths must be distinct names of {', '.join(C.PATHS)}, got {paths}")
    return [p for p in C.PATHS if p in paths]


def explore(pipe: Any, lpips_model: torch.nn.Module, prompt_a: str, prompt_b: str, params: Params, *,
            frames: int = 24, seed: int | None = None, paths: Sequence[str] = C.PATHS,
            pair_id: str | None = None) -> Exploration:
    """Render and score the paths between two prompts at ``frames`` points.

    Parameters
    ----------
    pipe : diffusers pipeline of a family of :mod:`otinterp.families`
        From :func:`load_models`.
    lpips_model : LPIPS module
        From :func:`load_models`.
    prompt_a, prompt_b : str
    params : Params
        ``seed, steps, guidance, height, width, batch_size, lpips_resize, model`` and ``caveat``.
    frames : int
        Images per path, endpoints included (``>= 2``): ``K = frames − 1`` LPIPS steps.
    seed : int, optional
        Seed of the initial latent; default the first of ``params.latent_seeds``.
    paths : sequence of str
        Any of ``"ot"``, ``"clip"``, ``"random"``, ``"slerp"`` (default all four).
    pair_id : str, optional
        Seeds the random coupling with ``params.seed`` (give a run's pair id to get its random
        coupling); default the two prompts joined by a tab.

    Returns
    -------
    Exploration
        The endpoint images are rendered once and shared: ``2 + len(paths) (frames − 2)`` renders,
        the endpoints in one call and each path's interior in one of its own, as in the experiment:
        with ``frames = n_intervals + 1`` a path's images are the experiment's.
    """
    if not isinstance(frames, int) or frames < 2:
        raise ValueError(f"frames must be an integer >= 2 (the two endpoints at least), got {frames!r}")
    paths = _check_paths(paths)
    seed = params.latent_seeds[0] if seed is None else seed
    pair_id = f"{prompt_a}\t{prompt_b}" if pair_id is None else pair_id
    cond = _encode(pipe, [prompt_a, prompt_b])
    tokens = (prompt_tokens(pipe, prompt_a), prompt_tokens(pipe, prompt_b))
    if len(tokens[0]) != cond.tokens.shape[1]:
        raise ValueError(f"{len(tokens[0])} token labels for a token set of {cond.tokens.shape[1]} rows")
    from otinterp.families import family_of

    content = tuple(family_of(pipe).content_rows(pipe, [prompt_a, prompt_b]).numpy())
    rendered = _render_paths(pipe, cond[0], cond[1], pair_id, params, frames=frames, seed=seed, paths=paths)
    images = {p: rendered[p]["images"] for p in paths}
    scored = _measures(torch.stack(list(images.values())), lpips_model, params)
    measures = {
        p: {"distances": scored["distances"][i].tolist(), "intervals": frames - 1,
            **{name: float(scored[name][i]) for name in MEASURES}}
        for i, p in enumerate(paths)
    }
    return Exploration(prompts=(prompt_a, prompt_b), pair_id=pair_id, model=params.model, caveat=params.caveat,
                       seed=seed, ts=np.arange(frames) / (frames - 1), tokens=tokens,
                       perms={p: rendered[p]["perm"] for p in paths}, costs={p: rendered[p]["cost"] for p in paths},
                       w2=next(iter(rendered.values()))["w2"], images=images, measures=measures, content=content)


def explore_seeds(pipe: Any, lpips_model: torch.nn.Module, prompt_a: str, prompt_b: str, params: Params, *,
                  seed_indices: Sequence[int] | str = (0,), **kwargs: Any) -> list[Exploration]:
    """:func:`explore` from each chosen initial latent.

    Parameters
    ----------
    seed_indices : sequence of int or "all"
        Positions in ``params.latent_seeds`` (``[0]``: the paper's single latent).
    **kwargs
        Passed to :func:`explore` (``frames``, ``paths``, ``pair_id``).
    """
    seeds = params.latent_seeds
    if seed_indices == "all":
        seed_indices = range(len(seeds))
    bad = [i for i in seed_indices if not 0 <= i < len(seeds)]
    if bad or not seed_indices:
        raise ValueError(f"seed indices must be in 0..{len(seeds) - 1} (the run's seeds are {seeds}), "
                         f"got {list(seed_indices)}")
    return [explore(pipe, lpips_model, prompt_a, prompt_b, params, seed=seeds[i], **kwargs) for i in seed_indices]


def measure_line(measures: dict[str, Any]) -> str:
    """A path's measures in one line; the PPL names its K (it scales like 1/K², docs/definitions.md §4)."""
    return (f"PPL@K={measures['intervals']} {measures['ppl']:.4g}, perceptual length "
            f"{measures['perceptual_length']:.4g}, efficiency {measures['path_efficiency']:.3g}, "
            f"excursion {measures['excursion']:.3g}")


def measure_rows(exploration: Exploration) -> list[dict[str, Any]]:
    """One JSON-ready row per path: ``seed``, ``path``, :data:`SUMMARY_FIELDS` and ``distances``."""
    ex = exploration
    return [{
        "seed": ex.seed, "path": p, "cost": ex.costs[p], "w2": ex.w2,
        "cost_ratio": ex.costs[p] / ex.w2 if ex.w2 > 0 else 1.0,
        "rows_in_place": int(np.sum(ex.perms[p] == np.arange(len(ex.perms[p])))),
        **ex.measures[p],
    } for p in ex.paths]


# --- figures and animations -----------------------------------------------------------------------

def strips_figure(exploration: Exploration):
    """The paths' image strips beside their ``d_k`` curves, with PPL, cost and W2 (a Figure)."""
    ex = exploration
    k = len(ex.ts) - 1
    legends = {p: f"PPL@K={k} {ex.measures[p]['ppl']:.3g}, length {ex.measures[p]['perceptual_length']:.3g}, "
                  f"cost {ex.costs[p]:.3g}" for p in ex.paths}
    title = f"W2 = {ex.w2:.3g}; latent seed {ex.seed}; {len(ex.ts)} frames"
    return plots.path_strips_with_steps(ex.images, {p: ex.measures[p]["distances"] for p in ex.paths},
                                        prompts=ex.prompts, legends=legends, title=title, model=ex.model,
                                        note=ex.caveat)


def coupling_figure(exploration: Exploration, paths: Sequence[str] = ("ot", "clip")):
    """Which token of A each of ``paths`` sends to which token of B, with the token strings (a Figure)."""
    ex = exploration
    missing = [p for p in paths if p not in ex.perms]
    if missing:
        raise ValueError(f"the exploration has no path(s) {missing}; it has {ex.paths}")
    return plots.coupling_tokens(*ex.tokens, {p: ex.perms[p] for p in paths}, prompts=ex.prompts,
                                 model=ex.model, note=ex.caveat, content=ex.content)


def _to_uint8(image: torch.Tensor, size: int) -> Any:
    from PIL import Image

    array = (image.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    picture = Image.fromarray(array)
    scale = max(1, -(-size // max(picture.size)))  # nearest upscaling of small (test) images
    return picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)


def animation_frames(exploration: Exploration, *, min_size: int = 160) -> list[np.ndarray]:
    """Frames of the paths side by side: a label bar (path, ``t``) above, the caveat below.

    Parameters
    ----------
    exploration : Exploration
    min_size : int
        Images smaller than this are upscaled (nearest neighbour, by an integer factor).

    Returns
    -------
    frames : list of (H', W', 3) uint8 arrays, one per ``t_k``
        ``H'`` and ``W'`` are multiples of 16, as video encoders want.
    """
    from PIL import Image, ImageDraw

    ex = exploration
    out = []
    for k, t in enumerate(ex.ts):
        tiles = [_to_uint8(ex.images[p][k], min_size) for p in ex.paths]
        tile_w, tile_h = tiles[0].size
        width = tile_w * len(tiles)
        notes = textwrap.wrap(ex.caveat, max(10, width // 7)) if ex.caveat else []
        height = 16 + tile_h + 12 * len(notes) + 4 * bool(notes)
        canvas = Image.new("RGB", (-(-width // 16) * 16, -(-height // 16) * 16), "white")
        draw = ImageDraw.Draw(canvas)
        for i, (p, tile) in enumerate(zip(ex.paths, tiles)):
            canvas.paste(tile, (i * tile_w, 16))
            draw.text((i * tile_w + 3, 2), f"{plots.PATH_LABELS[p]}  t={t:.2f}", fill="black")
        for j, line in enumerate(notes):
            draw.text((3, 18 + tile_h + 12 * j), line, fill=(160, 0, 0))
        out.append(np.asarray(canvas))
    return out


def write_animations(exploration: Exploration, out_dir: str | Path, *, name: str = "paths",
                     fps: int = 8) -> tuple[Path, Path]:
    """Write the paths side by side as ``<name>.gif`` (looping) and ``<name>.mp4`` (H.264).

    Returns
    -------
    gif, mp4 : Path
        Each with one frame per ``t_k``.
    """
    import imageio.v2 as imageio

    from otinterp.io import atomic_write

    frames = animation_frames(exploration)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    gif, mp4 = out_dir / f"{name}.gif", out_dir / f"{name}.mp4"
    atomic_write(lambda tmp: imageio.mimsave(tmp, frames, format="GIF", duration=1000 / fps, loop=0), gif)

    def write_mp4(tmp: str) -> None:  # ffmpeg picks the container from the file name's suffix
        named = Path(tmp + ".mp4")
        try:
            imageio.mimsave(named, frames, format="FFMPEG", fps=fps, codec="libx264", pixelformat="yuv420p",
                            macro_block_size=16)
            named.replace(tmp)
        finally:
            named.unlink(missing_ok=True)

    atomic_write(write_mp4, mp4)
    return gif, mp4


def write_outputs(explorations: Sequence[Exploration], out_dir: str | Path) -> dict[str, list[Path]]:
    """Strips, animations (per seed), the coupling plot and ``measures.json``, under ``out_dir``.

    Parameters
    ----------
    explorations : sequence of Exploration
        One pair from one or more initial latents (:func:`explore_seeds`).
    out_dir : str or Path
        Created if missing.

    Returns
    -------
    dict of str to list of Path
        ``strips``, ``gif``, ``mp4`` (one per seed), ``coupling`` and ``json``.
    """
    import matplotlib.pyplot as plt

    from otinterp.io import atomic_write

    if not explorations or len({ex.prompts for ex in explorations}) > 1:
        raise ValueError("write_outputs needs the explorations of one pair (one or more seeds)")
    out_dir = Path(out_dir)
    written: dict[str, list[Path]] = {"strips": [], "gif": [], "mp4": [], "coupling": [], "json": []}
    for ex in explorations:
        fig = strips_figure(ex)
        written["strips"] += plots.save_figure(fig, out_dir, f"strips_seed{ex.seed}", formats=("png",))
        plt.close(fig)
        gif, mp4 = write_animations(ex, out_dir, name=f"paths_seed{ex.seed}")
        written["gif"].append(gif)
        written["mp4"].append(mp4)
    first = explorations[0]
    if {"ot", "clip"} <= set(first.perms):
        fig = coupling_figure(first)
        written["coupling"] += plots.save_figure(fig, out_dir, "coupling", formats=("png",))
        plt.close(fig)
    record = {
        "prompt_a": first.prompts[0], "prompt_b": first.prompts[1], "pair_id": first.pair_id,
        "model": first.model, "caveat": first.caveat, "frames": len(first.ts),
        "tokens_a": first.tokens[0], "tokens_b": first.tokens[1],
        "rows": [row for ex in explorations for row in measure_rows(ex)],
    }
    path = out_dir / "measures.json"
    atomic_write(lambda tmp: Path(tmp).write_text(json.dumps(record, indent=1, ensure_ascii=False)), path)
    written["json"].append(path)
    return written


# --- JupyterLab -----------------------------------------------------------------------------------

class Explorer:
    """Interactive exploration with a cache: each (prompts, latent seed) is rendered once.

    Parameters
    ----------
    pipe, lpips_model
        From :func:`load_models`.
    params : Params
    frames : int
        Images per path.
    paths : sequence of str
        The paths to render (default all four).
    render : callable, optional
        Replaces :func:`explore` (same signature), e.g. in tests.
    known : sequence of Exploration
        Explorations already rendered (with ``frames`` images of ``paths``), put in the cache.
    """

    def __init__(self, pipe: Any, lpips_model: torch.nn.Module, params: Params, *, frames: int = 24,
                 paths: Sequence[str] = C.PATHS, render: Callable[..., Exploration] | None = None,
                 known: Sequence[Exploration] = ()) -> None:
        self.pipe, self.lpips_model, self.params = pipe, lpips_model, params
        self.frames, self.paths = frames, _check_paths(paths)
        self._explore = render or explore
        self._cache: dict[tuple[str, str, int], Exploration] = {}
        for ex in known:
            if len(ex.ts) != frames or ex.paths != self.paths:
                raise ValueError(f"a known exploration has {len(ex.ts)} frames of {ex.paths}; this explorer "
                                 f"shows {frames} frames of {self.paths}")
            self._cache[(*ex.prompts, ex.seed)] = ex

    @property
    def renders(self) -> int:
        """How many explorations were rendered (the cache's size)."""
        return len(self._cache)

    def exploration(self, prompt_a: str, prompt_b: str, seed: int | None = None) -> Exploration:
        """The exploration of the two prompts from ``seed``'s latent, rendered on first request only."""
        seed = self.params.latent_seeds[0] if seed is None else seed
        key = (prompt_a, prompt_b, seed)
        if key not in self._cache:
            self._cache[key] = self._explore(self.pipe, self.lpips_model, prompt_a, prompt_b, self.params,
                                             frames=self.frames, seed=seed, paths=self.paths)
        return self._cache[key]

    def frame_png(self, prompt_a: str, prompt_b: str, path: str, index: int, seed: int | None = None) -> bytes:
        """PNG bytes of image ``index`` of ``path`` (from the cache once rendered)."""
        ex = self.exploration(prompt_a, prompt_b, seed)
        if path not in ex.images:
            raise ValueError(f"unknown path {path!r}; this explorer renders {ex.paths}")
        buffer = io.BytesIO()
        _to_uint8(ex.images[path][index], 256).save(buffer, format="PNG")
        return buffer.getvalue()

    def widget(self, prompt_a: str, prompt_b: str):
        """Two prompt boxes, the path, the latent seed, a slider over ``t``, the image and its numbers.

        Changing a prompt renders (once per prompt pair and seed); moving the slider or changing
        the path only reads the cache.
        """
        import ipywidgets as w

        box_a = w.Text(value=prompt_a, description="A", continuous_update=False, layout=w.Layout(width="95%"))
        box_b = w.Text(value=prompt_b, description="B", continuous_update=False, layout=w.Layout(width="95%"))
        path = w.Dropdown(options=[(plots.PATH_LABELS[p], p) for p in self.paths], value=self.paths[0],
                          description="path")
        seed = w.Dropdown(options=self.params.latent_seeds, value=self.params.latent_seeds[0], description="seed")
        slider = w.IntSlider(value=0, min=0, max=self.frames - 1, description="k", continuous_update=True)
        image = w.Image(format="png", width=256, height=256)
        info = w.HTML()

        def update(_change: Any = None) -> None:
            ex = self.exploration(box_a.value, box_b.value, seed.value)
            image.value = self.frame_png(box_a.value, box_b.value, path.value, slider.value, seed.value)
            m = ex.measures[path.value]
            caveat = f"<br><b>{ex.caveat}</b>" if ex.caveat else ""
            info.value = (f"t = {ex.ts[slider.value]:.3f}; {measure_line(m)}, cost {ex.costs[path.value]:.4g}, "
                          f"W2 {ex.w2:.4g}{caveat}")

        for control in (box_a, box_b, path, seed, slider):
            control.observe(update, names="value")
        update()
        return w.VBox([box_a, box_b, w.HBox([path, seed]), slider, image, info])


# --- command line ---------------------------------------------------------------------------------

def pair_prompts(params: Params, pair_id: str) -> tuple[str, str]:
    """Prompts A and B of ``pair_id`` in the run's pair table (notebook 01's ``pairs.parquet``)."""
    from otinterp.data import read_pairs

    pairs = read_pairs(params.pairs_path).set_index("pair_id")
    if pair_id not in pairs.index:
        raise ValueError(f"pair id {pair_id!r} is not in {params.pairs_path}")
    return pairs.at[pair_id, "prompt_a"], pairs.at[pair_id, "prompt_b"]


def output_folder(params: Params, prompt_a: str, prompt_b: str) -> Path:
    """The command line's default output folder: ``<figures_dir>/explore/<slug of A>--<slug of B>``.

    Named after the prompts, so explorations of different pairs keep their files, and never
    notebook 05's folder (``<figures_dir>/explore`` itself).
    """
    return Path(params.figures_dir) / "explore" / f"{_slug(prompt_a)}--{_slug(prompt_b)}"


def _slug(prompt: str, limit: int = 40) -> str:
    """``prompt`` as a folder name: its lower-case words joined by ``-``; one longer than ``limit``
    is cut there and ends with 6 hex digits of the prompt's SHA-1 (prompts that differ late differ)."""
    slug = "-".join(re.findall(r"\w+", prompt.lower())) or "prompt"
    if len(slug) <= limit:
        return slug
    return f"{slug[:limit].rstrip('-')}-{hashlib.sha1(prompt.encode()).hexdigest()[:6]}"


def explore_to_folder(params: Params, prompts: tuple[str, str], *, out_dir: str | Path | None = None,
                      frames: int = 24, paths: Sequence[str] = C.PATHS, seed_indices: Sequence[int] | str = (0,),
                      pair_id: str | None = None) -> dict[str, list[Path]]:
    """``otinterp explore``: render, write every output to ``out_dir`` and print each path's measures.

    ``out_dir`` defaults to :func:`output_folder` (named after the prompts). Returns the files written.
    """
    out_dir = Path(out_dir) if out_dir is not None else output_folder(params, *prompts)
    pipe, lpips_model = load_models(params)
    explorations = explore_seeds(pipe, lpips_model, *prompts, params, seed_indices=seed_indices, frames=frames,
                                 paths=paths, pair_id=pair_id)
    written = write_outputs(explorations, out_dir)
    if params.caveat:
        print("NOTE:", params.caveat, file=sys.stderr)
    for row in (r for ex in explorations for r in measure_rows(ex)):
        print(f"seed {row['seed']} {row['path']:>6}: {measure_line(row)}  cost {row['cost']:.4g}  W2 {row['w2']:.4g}")
    return written
