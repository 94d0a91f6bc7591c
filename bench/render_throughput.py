"""Rendering throughput: otinterp's path renderer against the naive diffusers loop, same process.

*naive*: what a user would write with diffusers alone: for each pair and coupling, one
``pipe(prompt_embeds=...)`` call per point ``t_0..t_K`` of the path, endpoints rendered again for
every coupling (``3 (K + 1)`` images per pair).
*otinterp*: :func:`otinterp.experiment.render_paths`: endpoints shared by the three couplings
(``2 + 3 (K − 1)`` images per pair) and every image of the pairs batched together.

The two run alternately, ``--repeats`` times each, on the same pairs, model and params; the
median of each is printed with their ratio in completed paths per second, the achieved TFLOP/s
(FLOPs counted once with ``torch.utils.flop_counter``) and the share of LPIPS and OT in the run.

    python bench/render_throughput.py --model tiny                       # CPU
    python bench/render_throughput.py --model sd15-random --device cuda --dtype float16 \\
        --size 512 --steps 50 --batch-size 1 8 16 32 --json out.json       # GPU
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

from otinterp import couplings as C
from otinterp import experiment, params
from otinterp.models import load_pipeline, prepare_for_speed
from otinterp.ppl import load_lpips, path_distances
from otinterp.render import initial_latent
from otinterp.text import encode, uncond_embedding

PROMPTS = [
    ("a photo of a cat on a sofa", "a dog running on a beach"),
    ("a red bus on a city street", "a bowl of fruit on a kitchen table"),
    ("a man riding a wave on a surfboard", "two giraffes next to a tall building"),
    ("a plate of pasta with tomato sauce", "a train crossing a bridge over a river"),
]


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def naive(pipe, embeds, pairs, p: params.Params) -> int:
    """One pipeline call per image, endpoints recomputed per coupling; returns images rendered."""
    latent = initial_latent(pipe, p.seed, p.height, p.width).to(pipe.device, pipe.unet.dtype)
    uncond = uncond_embedding(pipe)
    ts = np.arange(p.n_intervals + 1) / p.n_intervals
    n = 0
    for pid, a, b in pairs[["pair_id", "prompt_a", "prompt_b"]].itertuples(index=False):
        x, y = embeds[a].double().numpy(), embeds[b].double().numpy()
        rng = C.pair_rng(p.seed, pid)
        for name in C.COUPLINGS:
            perm = C.coupling(name, x, y, rng if name == "random" else None)
            for e in C.interpolate(x, y, perm, ts):
                pipe(prompt_embeds=torch.from_numpy(e)[None].to(pipe.device, pipe.unet.dtype),
                     negative_prompt_embeds=uncond, latents=latent, num_inference_steps=p.steps,
                     guidance_scale=p.guidance, height=p.height, width=p.width, output_type="pt")
                n += 1
    return n


def otinterp_paths(pipe, embeds, pairs, p: params.Params) -> int:
    experiment.render_paths(pipe, embeds, pairs, p, uncond=uncond_embedding(pipe))
    return len(pairs) * experiment.images_per_pair(p.n_intervals)


def tflop_per_image(pipe, p: params.Params) -> float:
    """FLOPs of one image: ``steps`` guided UNet calls (batch 2) and one VAE decode."""
    latent = initial_latent(pipe, 0, p.height, p.width).to(pipe.device, pipe.unet.dtype)
    cond = torch.zeros(2, 77, pipe.unet.config.cross_attention_dim, device=pipe.device, dtype=pipe.unet.dtype)
    with torch.inference_mode(), FlopCounterMode(display=False) as unet:
        pipe.unet(latent.repeat(2, 1, 1, 1), 500, encoder_hidden_states=cond)
    with torch.inference_mode(), FlopCounterMode(display=False) as vae:
        pipe.vae.decode(latent)
    return (p.steps * unet.get_total_flops() + vae.get_total_flops()) / 1e12


def time_call(fn, device: str) -> float:
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--intervals", type=int, default=10, help="K (paper: 10)")
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, nargs="+", default=[32], help="otinterp batch sizes to time")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile the UNet (warm-up excluded)")
    parser.add_argument("--skip-naive", action="store_true", help="only otinterp (for long GPU sweeps)")
    parser.add_argument("--peak-tflops", type=float, default=989.0,
                        help="dense fp16/bf16 peak of the device, for the fraction of the floor (H100 SXM: 989)")
    parser.add_argument("--json", help="append one JSON line per batch size to this file")
    args = parser.parse_args()

    pipe = load_pipeline(args.model, device=args.device, dtype=args.dtype)
    prepare_for_speed(pipe, channels_last=args.channels_last, compile_unet=args.compile)
    pairs = experiment.check_pairs(pd.DataFrame({
        "pair_id": [f"bench-{i}" for i in range(args.pairs)],
        "prompt_a": [PROMPTS[i % len(PROMPTS)][0] for i in range(args.pairs)],
        "prompt_b": [PROMPTS[i % len(PROMPTS)][1] for i in range(args.pairs)],
        "group": 1.0, "score": 1.0}))
    prompts = pairs[["prompt_a", "prompt_b"]].to_numpy().ravel().tolist()
    embeds = dict(zip(prompts, encode(pipe, prompts).cpu()))
    setting = {b: params.make(seed=0, n_intervals=args.intervals, steps=args.steps, height=args.size,
                              width=args.size, batch_size=b) for b in args.batch_size}
    first = setting[args.batch_size[0]]
    flops = tflop_per_image(pipe, first)
    for p in setting.values():  # warm-up: kernels, autotuning, compilation for each batch shape
        otinterp_paths(pipe, embeds, pairs.iloc[:1], p.replace(steps=2))

    # Alternate the two ways, `repeats` times: naive once (it has no batch size), then otinterp at
    # every batch size, so drifts in clock or temperature hit both alike.
    naive_runs, runs = [], {b: [] for b in args.batch_size}
    for _ in range(args.repeats):
        if not args.skip_naive:
            naive_runs.append(time_call(lambda: naive(pipe, embeds, pairs, first), args.device))
        for b, p in setting.items():
            runs[b].append(time_call(lambda p=p: otinterp_paths(pipe, embeds, pairs, p), args.device))

    n_paths = len(C.COUPLINGS) * args.pairs
    images = {"naive": n_paths * (args.intervals + 1), "otinterp": len(pairs) * experiment.images_per_pair(args.intervals)}
    print(f"\n{args.model} {args.dtype} on {args.device}, {args.size} px, {args.steps} steps, K = {args.intervals}, "
          f"{args.pairs} pairs ({flops:.3g} TFLOP per image): median of {args.repeats}")

    def line(name: str, seconds: float, n_images: int) -> dict:
        out = {"seconds": seconds, "images_per_s": n_images / seconds, "paths_per_s": n_paths / seconds,
               "tflops": flops * n_images / seconds, "floor_fraction": flops * n_images / seconds / args.peak_tflops}
        print(f"  {name:18s} {seconds:8.2f} s {out['images_per_s']:9.2f} images/s {out['paths_per_s']:8.3f} paths/s "
              f"{out['tflops']:9.3g} TFLOP/s ({100 * out['floor_fraction']:.2g} % of {args.peak_tflops:g})")
        return out

    naive_result = line("naive (batch 1)", statistics.median(naive_runs), images["naive"]) if naive_runs else None
    # LPIPS and OT on the same number of paths, for their share of the run time.
    lpips_model = load_lpips("alex", "random", device=args.device)
    path_images = torch.rand(n_paths, args.intervals + 1, 3, args.size, args.size)
    x, y = (e.double().numpy() for e in encode(pipe, list(PROMPTS[0])))
    t_ot = time_call(lambda: [C.ot_coupling(x, y) for _ in range(args.pairs)], "cpu")
    for b in args.batch_size:
        result = line(f"otinterp batch {b}", statistics.median(runs[b]), images["otinterp"])
        t_lpips = time_call(lambda: path_distances(path_images, lpips_model, batch_size=b), args.device)
        share = (t_lpips + t_ot) / (result["seconds"] + t_lpips + t_ot)
        report = {"model": args.model, "device": args.device, "dtype": args.dtype, "size": args.size,
                  "steps": args.steps, "K": args.intervals, "pairs": args.pairs, "batch_size": b,
                  "channels_last": args.channels_last, "compile": args.compile, "tflop_per_image": flops,
                  "otinterp": result, "naive": naive_result, "lpips_ot_share": share}
        if naive_result:
            report["ratio_paths_per_s"] = result["paths_per_s"] / naive_result["paths_per_s"]
            print(f"    otinterp / naive, completed paths per second: {report['ratio_paths_per_s']:.2f}x")
        print(f"    LPIPS {t_lpips:.3f} s + OT {t_ot:.4f} s = {100 * share:.2f} % of the run")
        if args.json:
            with open(args.json, "a") as fh:
                fh.write(json.dumps(report) + "\n")


if __name__ == "__main__":
    main()
