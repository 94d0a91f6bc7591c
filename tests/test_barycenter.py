"""W2 barycenters of point clouds: the geodesic for two, order-free, below the row-wise mean, as POT iterates."""

import numpy as np
import ot
import pytest
import torch

from otinterp.barycenter import (
    BarycenterResult, barycenter, barycenter_objective, mix_conditioning, rowwise_mean,
)
from otinterp.couplings import interpolate, ot_coupling, wasserstein2
from otinterp.families import Conditioning


def clouds(m, n, d, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(n, d)) for _ in range(m)]


def sorted_rows(z):
    z = np.asarray(z)
    return z[np.lexsort(z.T[::-1])]


def objective(z, xs, lam):
    """``Σ λ_i W2²`` from :func:`wasserstein2`, independently of the module's own bookkeeping."""
    return sum(w * wasserstein2(z, x) ** 2 for w, x in zip(lam, xs))


@pytest.mark.parametrize("t", [0.0, 0.1, 0.25, 0.5, 0.7, 1.0])
def test_two_clouds_give_exactly_the_geodesic_point(t):
    x, y = clouds(2, 77, 16, seed=1)
    result = barycenter([x, y], [1 - t, t])
    geodesic = interpolate(x, y, ot_coupling(x, y), [t])[0]
    np.testing.assert_array_equal(sorted_rows(result.points), sorted_rows(geodesic))
    assert result.iterations == 0  # the anchored start is already a fixed point
    assert result.objective == pytest.approx(t * (1 - t) * wasserstein2(x, y) ** 2, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_permuting_the_rows_of_any_cloud_leaves_the_barycenter_unchanged(seed):
    xs, lam = clouds(3, 30, 4, seed), [0.2, 0.5, 0.3]
    base = barycenter(xs, lam)
    rng = np.random.default_rng(10 + seed)
    for i in range(3):
        shuffled = list(xs)
        shuffled[i] = xs[i][rng.permutation(30)]
        other = barycenter(shuffled, lam)
        assert other.objective == pytest.approx(base.objective, rel=1e-12)
        np.testing.assert_allclose(sorted_rows(other.points), sorted_rows(base.points), rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_three_clouds_beat_the_rowwise_mean_and_end_at_a_fixed_point(seed):
    xs = clouds(3, 40, 6, seed)
    lam = np.random.default_rng(seed).dirichlet(np.ones(3))
    result = barycenter(xs, lam)
    mean = rowwise_mean(xs, lam)
    assert result.objective == pytest.approx(objective(result.points, xs, lam), rel=1e-12)
    assert result.objective <= barycenter_objective(mean, xs, lam) + 1e-12
    assert result.objective <= objective(mean, xs, lam) + 1e-12
    # a fixed point: Z is the weighted mean of the clouds in their optimal couplings with Z
    z = result.points
    np.testing.assert_allclose(sum(w * x[ot_coupling(z, x)] for w, x in zip(lam, xs)), z, rtol=0, atol=1e-12)
    assert 0 <= result.reference < 3


@pytest.mark.parametrize("seed", range(3))
def test_pot_s_iteration_from_the_same_start_reaches_the_same_objective(seed):
    xs, lam = clouds(3, 25, 3, seed), np.array([0.5, 0.3, 0.2])
    start = rowwise_mean(xs, lam)
    ours = barycenter(xs, lam, init=start, max_iter=1000, tol=0.0)
    uniform = [np.full(25, 1 / 25)] * 3
    pot = ot.lp.free_support_barycenter(xs, uniform, start, weights=lam, numItermax=1000, stopThr=0.0)
    assert ours.iterations > 0 and ours.reference == -1
    assert ours.objective == pytest.approx(objective(pot, xs, lam), rel=1e-6)


def test_zero_weights_drop_a_cloud():
    x, y, z = clouds(3, 20, 5, seed=4)
    corner = barycenter([x, y, z], [0.0, 1.0, 0.0])
    np.testing.assert_array_equal(corner.points, y)
    assert corner.objective == 0.0 and corner.reference == 1
    edge = barycenter([x, y, z], [0.6, 0.0, 0.4])
    geodesic = interpolate(x, z, ot_coupling(x, z), [0.4])[0]
    np.testing.assert_array_equal(sorted_rows(edge.points), sorted_rows(geodesic))


def test_types_follow_the_input():
    xs = clouds(3, 10, 4, seed=5)
    lam = [0.3, 0.3, 0.4]
    assert isinstance(barycenter(xs, lam), BarycenterResult)
    single = barycenter([x.astype(np.float32) for x in xs], lam).points
    assert isinstance(single, np.ndarray) and single.dtype == np.float32
    tensors = [torch.from_numpy(x).to(torch.float16) for x in xs]
    out = barycenter(tensors, torch.tensor(lam)).points
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float16 and out.shape == (10, 4)
    mean = rowwise_mean(torch.stack(tensors), lam)
    assert isinstance(mean, torch.Tensor) and mean.dtype == torch.float16
    np.testing.assert_allclose(mean.double().numpy(), sum(w * x for w, x in zip(lam, xs)), atol=1e-2)


def test_bad_input_fails_in_one_line():
    xs = clouds(3, 10, 4)
    cases = [
        (lambda: barycenter(xs[:1], [1.0]), "at least 2 point clouds"),
        (lambda: barycenter([xs[0], xs[1][:9]], [0.5, 0.5]), "one shape"),
        (lambda: barycenter([xs[0], xs[1][0]], [0.5, 0.5]), "2-D"),
        (lambda: barycenter([xs[0], np.full((10, 4), np.nan)], [0.5, 0.5]), "NaN"),
        (lambda: barycenter(xs, [0.5, 0.5]), r"shape \(3,\)"),
        (lambda: barycenter(xs, [1.2, -0.1, -0.1]), ">= 0"),
        (lambda: barycenter(xs, [0.5, 0.5, 0.5]), "sum to 1"),
        (lambda: barycenter(xs, [0.5, 0.5, np.nan]), "finite"),
        (lambda: barycenter(xs, [0.2, 0.3, 0.5], init=xs[0][:5]), "init must have"),
        (lambda: barycenter(xs, [0.2, 0.3, 0.5], max_iter=-1), "max_iter >= 0"),
        (lambda: barycenter_objective(xs[0][:5], xs, [0.2, 0.3, 0.5]), "points must have"),
        (lambda: rowwise_mean(xs, [0.2, 0.3]), r"shape \(3,\)"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message) as err:
            call()
        assert "\n" not in str(err.value)


def test_mix_conditioning_mixes_tokens_by_method_and_the_global_vector_linearly():
    xs = clouds(3, 12, 4, seed=6)
    pooled = clouds(1, 3, 5, seed=7)[0]
    conds = [Conditioning(torch.from_numpy(x).float(), torch.from_numpy(p).float()) for x, p in zip(xs, pooled)]
    lam = [0.2, 0.5, 0.3]
    ot_mix, mean_mix = (mix_conditioning(conds, lam, method) for method in ("ot", "mean"))
    expected_pooled = sum(w * p for w, p in zip(lam, pooled))
    for mix in (ot_mix, mean_mix):
        assert mix.tokens.shape == (12, 4) and mix.tokens.dtype == torch.float32
        np.testing.assert_allclose(mix.pooled.numpy(), expected_pooled, rtol=1e-6)
    np.testing.assert_allclose(ot_mix.tokens.numpy(), barycenter(xs, lam).points, rtol=1e-6)
    np.testing.assert_allclose(mean_mix.tokens.numpy(), rowwise_mean(xs, lam), rtol=1e-6)
    assert mix_conditioning([Conditioning(c.tokens) for c in conds], lam).pooled is None
    with pytest.raises(ValueError, match="unknown method 'slerp'"):
        mix_conditioning(conds, lam, "slerp")
    with pytest.raises(ValueError, match="every conditioning has a global vector"):
        mix_conditioning([conds[0], Conditioning(conds[1].tokens), conds[2]], lam)


def test_anchored_starts_end_at_different_fixed_points_and_the_best_is_kept():
    """For three clouds the objective is not convex: the starts reach different local minima."""
    xs, lam = clouds(3, 77, 64, seed=0), [0.3, 0.3, 0.4]
    ends = []
    for ref in xs:
        start = sum(w * x[ot_coupling(ref, x)] for w, x in zip(lam, xs))
        ends.append(barycenter(xs, lam, init=start).objective)
    result = barycenter(xs, lam)
    assert max(ends) - min(ends) > 1e-3 * min(ends)
    assert result.objective == pytest.approx(min(ends), rel=1e-12)
    assert result.reference == int(np.argmin(ends))
