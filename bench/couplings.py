"""Time the exact OT coupling of token sets: SD 1.5's 77 x 768 and the larger families' clouds.

For each shape (SD 1.5 77 x 768; SD3's 333 x 4096; Flux's 256 and 512 x 4096) prints the time per
coupling for SciPy's assignment solver (what otinterp uses) and, as the baseline run in the same
process, POT's network-simplex ``ot.emd`` on uniform weights, and the projected time for the paper
profile's 10,000 pairs. Run: ``python bench/couplings.py [--pairs N] [--large-pairs M]``.
"""

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core, as the issue asks

import numpy as np
import ot

from otinterp.couplings import ot_coupling, pairwise_sq_dists


def pot_coupling(x, y):
    w = np.full(len(x), 1 / len(x))
    return ot.emd(w, w, pairwise_sq_dists(x, y)).argmax(axis=1)


#: (label, rows, width) of the token sets timed.
SHAPES = [
    ("SD 1.x", 77, 768),
    ("SD3 (77 CLIP + 256 T5)", 333, 4096),
    ("Flux schnell (256 T5)", 256, 4096),
    ("Flux dev (512 T5)", 512, 4096),
]


def clip_like_pairs(n_pairs, rng, rows=77, width=768):
    """Clouds with CLIP-like structure: shared position offsets plus per-prompt token rows."""
    position = rng.normal(size=(rows, width))
    return [(position + rng.normal(size=(rows, width)), position + rng.normal(size=(rows, width)))
            for _ in range(n_pairs)]


def seconds_per_call(fn, pairs, repeats):
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        for x, y in pairs:
            fn(x, y)
        best = min(best, (time.perf_counter() - t0) / len(pairs))
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=1000, help="pairs timed per repetition at 77 x 768")
    parser.add_argument("--large-pairs", type=int, default=20, help="pairs timed per repetition at the larger shapes")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    for label, rows, width in SHAPES:
        n_pairs = args.pairs if rows == 77 else args.large_pairs
        pairs = clip_like_pairs(n_pairs, rng, rows, width)
        for x, y in pairs[:20]:
            assert np.array_equal(ot_coupling(x, y), pot_coupling(x, y)), "solvers disagree"
        t_scipy = seconds_per_call(ot_coupling, pairs, args.repeats)
        t_pot = seconds_per_call(pot_coupling, pairs, args.repeats)
        print(f"OT coupling, {label}: {rows} x {width}, one core, best of {args.repeats} x {n_pairs} pairs")
        print(f"  otinterp (scipy linear_sum_assignment): {t_scipy * 1e3:8.3f} ms/coupling")
        print(f"  baseline (POT ot.emd, same cost matrix): {t_pot * 1e3:8.3f} ms/coupling")
        print(f"  ratio baseline / otinterp: {t_pot / t_scipy:.2f}x")
        print(f"  10,000 pairs (paper profile): {t_scipy * 1e4:.1f} s")


if __name__ == "__main__":
    main()
