"""Time the exact OT coupling of 77 x 768 clouds (SD 1.5's embedding shape).

Prints the time per coupling for SciPy's assignment solver (what otinterp uses) and, as the
baseline run in the same process, POT's network-simplex ``ot.emd`` on uniform weights, and the
projected time for the paper profile's 10,000 pairs. Run: ``python bench/couplings.py [--pairs N]``.
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


def clip_like_pairs(n_pairs, rng):
    """Clouds with CLIP-like structure: shared position offsets plus per-prompt token rows."""
    position = rng.normal(size=(77, 768))
    return [(position + rng.normal(size=(77, 768)), position + rng.normal(size=(77, 768)))
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
    parser.add_argument("--pairs", type=int, default=1000, help="pairs timed per repetition")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    pairs = clip_like_pairs(args.pairs, np.random.default_rng(0))
    for x, y in pairs[:20]:
        assert np.array_equal(ot_coupling(x, y), pot_coupling(x, y)), "solvers disagree"
    t_scipy = seconds_per_call(ot_coupling, pairs, args.repeats)
    t_pot = seconds_per_call(pot_coupling, pairs, args.repeats)
    print(f"OT coupling, 77 x 768, one core, best of {args.repeats} x {args.pairs} pairs")
    print(f"  otinterp (scipy linear_sum_assignment): {t_scipy * 1e3:8.3f} ms/coupling")
    print(f"  baseline (POT ot.emd, same cost matrix): {t_pot * 1e3:8.3f} ms/coupling")
    print(f"  ratio baseline / otinterp: {t_pot / t_scipy:.2f}x")
    print(f"  10,000 pairs (paper profile): {t_scipy * 1e4:.1f} s")


if __name__ == "__main__":
    main()
