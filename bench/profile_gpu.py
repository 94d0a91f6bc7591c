"""One model on one device: row-permutation invariance, the automatic batch size and a profiler summary.

What ``bench/gpu_check.sh`` asks of SD 1.5's architecture at full size in 16-bit, in one process
(the random-weight model is built once):

1. invariance: :func:`otinterp.invariance.check_unet` (three timesteps) and
   :func:`otinterp.invariance.check_images` (rendered images) for the original and row-permuted
   token sets; PASS when the denoiser's worst relative difference is within ``--rtol`` and the
   images' worst pixel difference within ``--pixel-tol``;
2. ``batch_size: auto``: :func:`otinterp.render.largest_batch_size` at the image size (on a CPU it
   is the start value, 64);
3. a ``torch.profiler`` summary of one render call of ``--batch-size`` images (one path's interior
   at K = 10): the top operators by self device time (CUDA), or by self CPU time on a CPU.

Prints PASS / FAIL lines and writes everything to ``--json``.

    python bench/profile_gpu.py --model sd15-random --device cuda --dtype float16 --size 512 --json out.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

from otinterp.families import family_of
from otinterp.invariance import check_images, check_unet
from otinterp.models import load_pipeline, prepare_for_speed
from otinterp.render import largest_batch_size, render
from otinterp.store import device_name

PROMPTS = ["a photo of a cat", "a red double decker bus on a city street"]


def invariance(pipe, *, size: int, steps: int, rtol: float, pixel_tol: float) -> dict[str, Any]:
    """Worst differences of the denoiser (relative) and of the images (pixels in [0, 1]) under row permutations."""
    cond = family_of(pipe).encode(pipe, PROMPTS)
    unet = check_unet(pipe, cond.tokens, pooled=cond.pooled, n_perms=2, timesteps=[999, 500, 1], seed=0,
                      height=size, width=size)
    images, _ = check_images(pipe, PROMPTS, n_perms=2, seed=0, steps=steps, guidance=7.5, height=size, width=size)
    worst_unet, worst_pixel = float(unet["rel_max_diff"].max()), float(images["max_abs_diff"].max())
    return {"denoiser_rel_max_diff": worst_unet, "image_max_abs_diff": worst_pixel, "rtol": rtol,
            "pixel_tol": pixel_tol, "steps": steps, "passed": worst_unet <= rtol and worst_pixel <= pixel_tol}


def auto_batch_size(pipe, *, size: int) -> dict[str, Any]:
    """:func:`otinterp.render.largest_batch_size` at ``size`` px, the seconds it took and the peak memory."""
    if pipe.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(pipe.device)
    start = time.perf_counter()
    found = largest_batch_size(pipe, height=size, width=size)
    out = {"batch_size": found, "seconds": time.perf_counter() - start}
    if pipe.device.type == "cuda":
        out["peak_memory_gib"] = torch.cuda.max_memory_allocated(pipe.device) / 2**30
        out["device_memory_gib"] = torch.cuda.get_device_properties(pipe.device).total_memory / 2**30
    return out


def profile_render(pipe, *, size: int, steps: int, batch_size: int, top: int) -> dict[str, Any]:
    """Top operators of one guided render of ``batch_size`` images (after one untimed warm-up call).

    Returns ``{"sort_by", "total_ms", "top": [{"name", "self_ms", "share", "calls"}], "table"}``;
    times are self device times on CUDA, self CPU times otherwise.
    """
    cuda = pipe.device.type == "cuda"
    cond = family_of(pipe).encode(pipe, PROMPTS[:1]).expand(batch_size)

    def call() -> None:
        render(pipe, cond.tokens, pooled=cond.pooled, seed=0, steps=steps, guidance=7.5, height=size, width=size,
               batch_size=batch_size, disable=True)
        if cuda:
            torch.cuda.synchronize(pipe.device)

    call()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        call()
    events = prof.key_averages()
    key = "self_device_time_total" if cuda else "self_cpu_time_total"
    if cuda and not hasattr(events[0], key):  # older torch names it after CUDA
        key = "self_cuda_time_total"
    times = [(e.key, getattr(e, key), e.count) for e in events]
    total = sum(t for _, t, _ in times) or 1.0
    ranked = sorted(times, key=lambda item: -item[1])[:top]
    return {"sort_by": key, "total_ms": total / 1e3, "steps": steps, "batch_size": batch_size,
            "top": [{"name": n, "self_ms": t / 1e3, "share": t / total, "calls": c} for n, t, c in ranked],
            "table": events.table(sort_by=key, row_limit=top)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--size", type=int, default=64, help="image height and width in pixels")
    parser.add_argument("--steps", type=int, default=20, help="steps of the invariance images")
    parser.add_argument("--profile-steps", type=int, default=5, help="steps of the profiled render")
    parser.add_argument("--batch-size", type=int, default=9, help="images of the profiled render (K - 1 at K = 10)")
    parser.add_argument("--channels-last", choices=["off", "on"], default="on")
    parser.add_argument("--rtol", type=float, help="worst relative denoiser difference accepted "
                        "(default 1e-2 in 16-bit, 1e-5 in float32)")
    parser.add_argument("--pixel-tol", type=float, help="worst image difference accepted on [0, 1] pixels "
                        "(default 0.05 in 16-bit, 1e-4 in float32)")
    parser.add_argument("--top", type=int, default=15, help="operators in the profile summary")
    parser.add_argument("--json", help="write the results to this file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    half = args.dtype != "float32"
    rtol = args.rtol if args.rtol is not None else (1e-2 if half else 1e-5)
    pixel_tol = args.pixel_tol if args.pixel_tol is not None else (0.05 if half else 1e-4)
    pipe = load_pipeline(args.model, device=args.device, dtype=args.dtype)
    prepare_for_speed(pipe, channels_last=args.channels_last == "on")
    report: dict[str, Any] = {"device_name": device_name(args.device), "device": args.device, "model": args.model,
                              "dtype": args.dtype, "height": args.size, "width": args.size,
                              "channels_last": args.channels_last == "on", "torch": torch.__version__}

    inv = report["invariance"] = invariance(pipe, size=args.size, steps=args.steps, rtol=rtol, pixel_tol=pixel_tol)
    print(f"{'PASS' if inv['passed'] else 'FAIL'} invariance {args.model} {args.dtype} {args.size} px: denoiser "
          f"{inv['denoiser_rel_max_diff']:.2e} relative (<= {rtol:g}), images {inv['image_max_abs_diff']:.2e} "
          f"(<= {pixel_tol:g})", flush=True)

    auto = report["auto_batch_size"] = auto_batch_size(pipe, size=args.size)
    memory = (f", peak {auto['peak_memory_gib']:.1f} of {auto['device_memory_gib']:.1f} GiB"
              if "peak_memory_gib" in auto else " (a CPU: the start value)")
    print(f"PASS batch_size auto = {auto['batch_size']} at {args.size} px in {auto['seconds']:.1f} s{memory}",
          flush=True)

    prof = report["profile"] = profile_render(pipe, size=args.size, steps=args.profile_steps,
                                              batch_size=args.batch_size, top=args.top)
    print(f"profile: one render of {args.batch_size} images, {args.profile_steps} steps, "
          f"{prof['total_ms']:.0f} ms of {prof['sort_by']}; top operators:")
    for op in prof["top"]:
        print(f"  {op['share']:6.1%} {op['self_ms']:10.1f} ms {op['calls']:6d}x  {op['name']}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return report


if __name__ == "__main__":
    main()
