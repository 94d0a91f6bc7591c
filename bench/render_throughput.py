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
    return len(pairs) * (2 + 3 * (p.n_intervals - 1))


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
    parser.add_argument("--batch-size", type=int, nargs="+", default=[32])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile the UNet (warm-up excluded)")
    parser.add_argument("--skip-naive", action="store_true", help="only otinterp (for long GPU sweeps)")
    parser.add_argument("--json", help="append the results as JSON lines to this file")
    args = parser.parse_args()

    pipe = load_pipeline(args.model, device=args.device, dtype=args.dtype)
    prepare_for_speed(pipe, channels_last=args.channels_last, compile_unet=args.compile)
    pairs = experiment.check_pairs(__import__("pandas").DataFrame({
        "pair_id": [f"bench-{i}" for i in range(args.pairs)],
        "prompt_a": [PROMPTS[i % len(PROMPTS)][0] for i in range(args.pairs)],
        "prompt_b": [PROMPTS[i % len(PROMPTS)][1] for i in range(args.pairs)],
        "group": 1.0, "score": 1.0}))
    prompts = pairs[["prompt_a", "prompt_b"]].to_numpy().ravel().tolist()
    embeds = dict(zip(prompts, encode(pipe, prompts).cpu()))
    flops = tflop_per_image(pipe, params.make(steps=args.steps, height=args.size, width=args.size))
    lpips_model = load_lpips("alex", "random", device=args.device)

    for batch_size in args.batch_size:
        p = params.make(seed=0, n_intervals=args.intervals, steps=args.steps,
                        height=args.size, width=args.size, batch_size=batch_size)
        otinterp_paths(pipe, embeds, pairs.iloc[:1], p)  # warm-up (and compile)
        runs = {"naive": [], "otinterp": []}
        for _ in range(args.repeats):
            for name, fn in (("naive", naive), ("otinterp", otinterp_paths)):
                if name == "naive" and args.skip_naive:
                    continue
                n_images = 0

                def call(fn=fn):
                    nonlocal n_images
                    n_images = fn(pipe, embeds, pairs, p)

                runs[name].append((time_call(call, args.device), n_images))
        # LPIPS and OT on the same paths, for their share of the run time.
        images = torch.rand(3 * args.pairs, args.intervals + 1, 3, args.size, args.size)
        t_lpips = time_call(lambda: path_distances(images, lpips_model, batch_size=batch_size), args.device)
        x, y = (e.double().numpy() for e in encode(pipe, list(PROMPTS[0])))
        t_ot = time_call(lambda: [C.ot_coupling(x, y) for _ in range(args.pairs)], "cpu")

        report = {"model": args.model, "device": args.device, "dtype": args.dtype, "size": args.size,
                  "steps": args.steps, "K": args.intervals, "pairs": args.pairs, "batch_size": batch_size,
                  "channels_last": args.channels_last, "compile": args.compile,
                  "tflop_per_image": flops}
        print(f"\n{args.model} {args.dtype} on {args.device}, {args.size} px, {args.steps} steps, "
              f"K = {args.intervals}, {args.pairs} pairs, batch {batch_size}: median of {args.repeats}")
        for name, timings in runs.items():
            if not timings:
                continue
            seconds = statistics.median(t for t, _ in timings)
            n_images = timings[0][1]
            report[name] = {"seconds": seconds, "images_per_s": n_images / seconds,
                            "paths_per_s": 3 * args.pairs / seconds, "tflops": flops * n_images / seconds}
            print(f"  {name:9s} {seconds:8.2f} s  {n_images / seconds:8.2f} images/s  "
                  f"{3 * args.pairs / seconds:7.3f} paths/s  {flops * n_images / seconds:8.3g} TFLOP/s")
        if runs["naive"]:
            report["ratio_paths_per_s"] = report["otinterp"]["paths_per_s"] / report["naive"]["paths_per_s"]
            print(f"  otinterp / naive, completed paths per second: {report['ratio_paths_per_s']:.2f}x")
        share = (t_lpips + t_ot) / (report["otinterp"]["seconds"] + t_lpips + t_ot)
        report["lpips_ot_share"] = share
        print(f"  LPIPS {t_lpips:.3f} s + OT {t_ot:.4f} s = {100 * share:.1f} % of the otinterp run")
        if args.json:
            with open(args.json, "a") as fh:
                fh.write(json.dumps(report) + "\n")


if __name__ == "__main__":
    main()
