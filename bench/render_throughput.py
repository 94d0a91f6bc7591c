"""Rendering throughput: otinterp's unit rendering against the naive diffusers loop, same process.

*naive*: what community tools do with diffusers alone: one pipeline call per image, every path
rendered on its own, endpoints included (``len(couplings) (K + 1)`` images per pair).
*otinterp*: :func:`otinterp.experiment.render_unit`: the two endpoints once per pair and latent,
shared by every coupling, then each path's ``K − 1`` interior points, batched up to the batch size
(``2 + len(couplings) (K − 1)`` images per pair).

Both render the same pairs with the same model, latent and paths. They run alternately,
``--repeats`` times each (the naive loop with the first batch size only), and the medians are reported: images/s, completed paths/s and their
ratio, the achieved TFLOP/s (the FLOPs of one image counted with ``torch.utils.flop_counter``),
the share of LPIPS and of the OT couplings in the experiment's time per pair and, on a CUDA device
only, the fraction of the GPU's dense peak.

``--json PATH`` adds one record per batch size to the JSON list in ``PATH`` (created if missing),
as soon as that batch size is measured.
Each record has, at its top level, the keys a run's time estimate matches on (``images_per_s``,
``device_name``, ``model``, ``height``, ``width``, ``steps``, ``dtype``, ``scheduler``) and the
rest of the measurement.

    python bench/render_throughput.py --model tiny                                     # CPU
    python bench/render_throughput.py --model sd15-random --device cuda --dtype float16 \\
        --size 512 --steps 50 --intervals 10 --batch-size 1 8 16 32 auto --json rates.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

from otinterp import experiment, params
from otinterp.families import Conditioning, family_of
from otinterp.io import atomic_write
from otinterp.models import load_pipeline, prepare_for_speed
from otinterp.ppl import load_lpips
from otinterp.render import initial_latent, render
from otinterp.store import device_name

PROMPTS = [
    ("a photo of a cat on a sofa", "a dog running on a beach"),
    ("a red bus on a city street", "a bowl of fruit on a kitchen table"),
    ("a man riding a wave on a surfboard", "two giraffes next to a tall building"),
    ("a plate of pasta with tomato sauce", "a train crossing a bridge over a river"),
]

#: Dense tensor-core peaks in TFLOP/s, (16-bit, float32), by a part of the CUDA device name; the
#: first match counts, so the specific names come before "H100".
GPU_PEAK_TFLOPS: list[tuple[str, tuple[float, float]]] = [
    ("H100 PCIe", (756.0, 51.0)),
    ("H100 NVL", (835.0, 60.0)),
    ("H100", (989.0, 67.0)),
    ("H200", (989.0, 67.0)),
    ("GH200", (989.0, 67.0)),
    ("A100", (312.0, 19.5)),
    ("L40S", (362.0, 91.6)),
    ("L4", (121.0, 30.3)),
    ("A10", (125.0, 31.2)),
    ("RTX 4090", (165.0, 82.6)),
]


def gpu_peak_tflops(name: str, dtype: str) -> float | None:
    """The dense peak of the CUDA device called ``name`` in ``dtype``, or None for an unknown device."""
    for part, (half, single) in GPU_PEAK_TFLOPS:
        if part in name:
            return single if dtype == "float32" else half
    return None


def bench_pairs(n: int) -> pd.DataFrame:
    """``n`` pairs cycling through :data:`PROMPTS`, as the experiment's pair table."""
    return experiment.check_pairs(pd.DataFrame({
        "pair_id": [f"bench-{i}" for i in range(n)],
        "prompt_a": [PROMPTS[i % len(PROMPTS)][0] for i in range(n)],
        "prompt_b": [PROMPTS[i % len(PROMPTS)][1] for i in range(n)],
        "group": 1.0, "score": 1.0}))


def naive_unit(pipe, cond_a: Conditioning, cond_b: Conditioning, pair_id: str, p: params.Params, *, seed: int,
               uncond: Conditioning | None) -> int:
    """One pipeline call per image of every path, endpoints rendered again for each path.

    The path points are otinterp's (:func:`otinterp.experiment.path_embeddings`); returns the
    number of images rendered, ``len(p.paths) (K + 1)``.
    """
    family = family_of(pipe)
    dtype = family.denoiser(pipe).dtype
    latent = initial_latent(pipe, seed, p.height, p.width).to(pipe.device, dtype)
    uncond = None if uncond is None else uncond.to(pipe.device, dtype)
    pooled = None if cond_a.pooled is None else (cond_a.pooled, cond_b.pooled)
    paths = experiment.path_embeddings(cond_a.tokens, cond_b.tokens, pair_id, seed=p.seed, n_intervals=p.n_intervals,
                                       paths=p.paths, pooled=pooled)
    n = 0
    for path in paths.values():
        tokens = torch.cat([cond_a.tokens[None], path["interior"], cond_b.tokens[None]])
        glob = None if pooled is None else torch.cat([cond_a.pooled[None], path["pooled"], cond_b.pooled[None]])
        for i in range(len(tokens)):
            one = Conditioning(tokens[i : i + 1], None if glob is None else glob[i : i + 1]).to(pipe.device, dtype)
            pipe(**family.call_kwargs(pipe, one, uncond, p.guidance), latents=latent, num_inference_steps=p.steps,
                 guidance_scale=p.guidance, height=p.height, width=p.width, output_type="pt")
            n += 1
    return n


def otinterp_unit(pipe, cond_a: Conditioning, cond_b: Conditioning, pair_id: str, p: params.Params, *, seed: int,
                  uncond: Conditioning | None) -> int:
    """:func:`otinterp.experiment.render_unit`; returns the number of images rendered."""
    experiment.render_unit(pipe, cond_a, cond_b, pair_id, p, seed=seed, paths=p.paths, uncond=uncond)
    return experiment.images_per_pair(p.n_intervals, p.paths)


def tflop_per_image(pipe, p: params.Params, uncond: Conditioning | None) -> float:
    """TFLOPs of one image at ``p.steps`` steps: the count of a 1-step render plus ``steps − 1``
    times the extra of a 2-step one (guided denoiser calls, scheduler and VAE decode)."""
    cond = family_of(pipe).encode(pipe, [PROMPTS[0][0]])

    def count(steps: int) -> int:
        with FlopCounterMode(display=False) as counter:
            render(pipe, cond.tokens, pooled=cond.pooled, seed=0, steps=steps, guidance=p.guidance, height=p.height,
                   width=p.width, batch_size=1, uncond=uncond, disable=True)
        return counter.get_total_flops()

    one, two = count(1), count(2)
    return (one + (p.steps - 1) * (two - one)) / 1e12


def sync(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any], device: str) -> tuple[float, Any]:
    """Wall time of ``fn()``, with the device's queue drained before and after, and its result."""
    sync(device)
    start = time.perf_counter()
    result = fn()
    sync(device)
    return time.perf_counter() - start, result


def scoring_seconds(pipe, cond: dict, pairs: pd.DataFrame, p: params.Params, lpips_model) -> tuple[float, float]:
    """Seconds of the couplings, path points and content/padding split (OT) and of LPIPS scoring for
    ``pairs``, as the experiment does them."""
    units = [(pid, (a, b), cond[a], cond[b])
             for pid, a, b in pairs[["pair_id", "prompt_a", "prompt_b"]].itertuples(index=False)]
    t_ot, _ = timed(lambda: [(experiment.path_embeddings(
        ca.tokens, cb.tokens, pid, seed=p.seed, n_intervals=p.n_intervals, paths=p.paths,
        pooled=None if ca.pooled is None else (ca.pooled, cb.pooled)), experiment.pair_columns(pipe, ca, cb, prompts))
        for pid, prompts, ca, cb in units], "cpu")
    fake = {name: {"cost": 1.0, "w2": 1.0, "images": torch.rand(p.n_intervals + 1, 3, p.height, p.width)}
            for name in p.paths}
    t_lpips, _ = timed(lambda: [experiment.unit_rows(row, "key", 0, fake, lpips_model, p, "bench", {})
                                  for _, row in pairs.iterrows()], p.device)
    return t_ot, t_lpips


def append_records(path: str | Path, records: list[dict[str, Any]]) -> None:
    """Add ``records`` to the JSON list in ``path`` (created if missing), atomically."""
    path = Path(path)
    old = json.loads(path.read_text()) if path.exists() else []
    if not isinstance(old, list):
        raise ValueError(f"{path} does not hold a JSON list of records")
    atomic_write(lambda tmp: Path(tmp).write_text(json.dumps(old + records, indent=1) + "\n"), path)


def parse_batch_size(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"batch size must be a positive integer or 'auto', got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"batch size must be >= 1, got {value}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny", help="tiny, sd15-random, sdxl-tiny, ... or a model id / folder")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--scheduler", default="default", choices=["default", "ddim", "dpm-solver++", "euler"])
    parser.add_argument("--size", type=int, default=64, help="image height and width in pixels")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--intervals", type=int, default=10, help="K (paper: 10)")
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--batch-size", type=parse_batch_size, nargs="+", default=[32],
                        help="otinterp batch sizes to time; 'auto' is the largest that fits the GPU")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each way; the median is reported")
    parser.add_argument("--channels-last", choices=["off", "on"], default="off")
    parser.add_argument("--compile", choices=["off", "on"], default="off",
                        help="torch.compile the denoiser (compilation happens in the untimed warm-up)")
    parser.add_argument("--naive", choices=["on", "off"], default="on", help="off: only otinterp (long GPU sweeps)")
    parser.add_argument("--peak-tflops", type=float, help="the device's dense peak, for an unlisted CUDA device")
    parser.add_argument("--json", help="add one record per batch size to the JSON list in this file")
    args = parser.parse_args(argv)
    for name in ("size", "steps", "intervals", "pairs", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    return args


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse_args(argv)
    base = params.make(model=args.model, device=args.device, dtype=args.dtype, scheduler=args.scheduler, seed=0,
                       n_intervals=args.intervals, steps=args.steps, height=args.size, width=args.size,
                       lpips_backbone="random", channels_last=args.channels_last == "on",
                       compile_unet=args.compile == "on")
    pipe = load_pipeline(base.model, device=base.device, dtype=base.dtype, scheduler=base.scheduler)
    family = family_of(pipe)
    uncond = family.unconditional(pipe)
    flops = tflop_per_image(pipe, base, uncond)  # before compiling: the counter sees eager ops
    prepare_for_speed(pipe, channels_last=base.channels_last, compile_unet=base.compile_unet)
    pairs = bench_pairs(args.pairs)
    prompts = pairs[["prompt_a", "prompt_b"]].to_numpy().ravel().tolist()
    encoded = family.encode(pipe, prompts)
    cond = {text: encoded[i] for i, text in enumerate(prompts)}
    units = [(pid, cond[a], cond[b]) for pid, a, b in pairs[["pair_id", "prompt_a", "prompt_b"]].itertuples(index=False)]
    setting = {b: experiment.with_batch_size(base.replace(batch_size=b), pipe) for b in args.batch_size}
    naive_on = args.naive == "on"

    def run(way: Callable, p: params.Params, todo=units) -> int:
        return sum(way(pipe, ca, cb, pid, p, seed=p.seed, uncond=uncond) for pid, ca, cb in todo)

    # Warm-up: kernels, autotuning and compilation for every batch shape.
    for way, p in ([(naive_unit, base)] if naive_on else []) + [(otinterp_unit, p) for p in setting.values()]:
        run(way, p.replace(steps=2), units[:1])

    n_paths = len(base.paths) * args.pairs
    device_label = device_name(args.device)
    cuda = str(args.device).startswith("cuda")
    peak = (args.peak_tflops or gpu_peak_tflops(device_label, args.dtype)) if cuda else None
    print(f"\n{args.model} {args.dtype} on {device_label} ({args.device}), {args.size} px, {args.steps} steps, "
          f"K = {args.intervals}, {args.pairs} pairs, compile {args.compile}: {flops:.3g} TFLOP per image, "
          f"median of {args.repeats}", flush=True)

    def measure(label: str, seconds: list[float], n_images: int) -> dict[str, float]:
        median = statistics.median(seconds)
        out = {"seconds": median, "images": n_images, "images_per_s": n_images / median,
               "paths_per_s": n_paths / median, "tflops": flops * n_images / median}
        text = (f"  {label:20s} {median:8.2f} s {out['images_per_s']:9.3f} images/s {out['paths_per_s']:8.3f} "
                f"paths/s {out['tflops']:9.3g} TFLOP/s")
        if cuda:
            out["peak_fraction"] = out["tflops"] / peak if peak else None
            text += (f", fraction of GPU peak {out['peak_fraction']:.1%} of {peak:g}" if peak
                     else ", fraction of GPU peak unknown (pass --peak-tflops)")
        print(text, flush=True)
        return out

    lpips_model = load_lpips(base.lpips_net, "random", device=args.device, seed=0)
    naive_seconds: list[float] = []
    naive, records = None, []
    # Per batch size, the ways alternate `repeats` times (the naive loop with the first batch size
    # only: it has none), so that drifts in clock or temperature hit both alike. Each batch size's
    # record is written as soon as it is measured, so a run stopped by a time limit keeps them.
    for b, p in setting.items():
        seconds = []
        for _ in range(args.repeats):
            if naive_on and len(naive_seconds) < args.repeats:
                elapsed, n_naive = timed(lambda: run(naive_unit, base), args.device)
                naive_seconds.append(elapsed)
            elapsed, n_images = timed(lambda: run(otinterp_unit, p), args.device)
            seconds.append(elapsed)
        if naive_on and naive is None:
            naive = measure("naive (batch 1)", naive_seconds, n_naive)
        result = measure(f"otinterp batch {b}", seconds, n_images)
        t_ot, t_lpips = scoring_seconds(pipe, cond, pairs, p, lpips_model)
        total = result["seconds"] + t_ot + t_lpips
        record = {
            "images_per_s": result["images_per_s"], "device_name": device_label, "model": args.model,
            "height": args.size, "width": args.size, "steps": args.steps, "dtype": args.dtype,
            "scheduler": args.scheduler, "paths_per_s": result["paths_per_s"], "batch_size": p.batch_size,
            "batch_size_asked": b, "n_intervals": args.intervals, "paths": list(base.paths),
            "pairs": args.pairs, "repeats": args.repeats, "device": args.device, "family": family.name,
            "compile_unet": base.compile_unet, "channels_last": base.channels_last,
            "tflop_per_image": flops, "tflops": result["tflops"], "peak_tflops": peak,
            "peak_fraction": result.get("peak_fraction"), "otinterp": result, "naive": naive,
            "ratio_paths_per_s": result["paths_per_s"] / naive["paths_per_s"] if naive else None,
            "ot_seconds": t_ot, "lpips_seconds": t_lpips, "ot_share": t_ot / total, "lpips_share": t_lpips / total,
            "lpips_ot_share": (t_ot + t_lpips) / total, "torch": torch.__version__,
            "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        if naive:
            print(f"    otinterp / naive, completed paths per second: {record['ratio_paths_per_s']:.2f}x")
        print(f"    scoring: LPIPS {t_lpips:.3f} s ({record['lpips_share']:.2%}) + OT {t_ot:.4f} s "
              f"({record['ot_share']:.2%}) of the run", flush=True)
        records.append(record)
        if args.json:
            append_records(args.json, [record])
    return records


if __name__ == "__main__":
    main()
