import itertools
import subprocess
import sys

import numpy as np
import ot
import pytest
import torch

from otinterp.couplings import (
    COUPLINGS, PATHS, clip_coupling, coupling, coupling_cost, interpolate, ot_coupling, pair_rng,
    path_cost, path_coupling, path_points, random_coupling, slerp, wasserstein2,
)


def clouds(n, d, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.normal(size=(n, d))


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7])
@pytest.mark.parametrize("seed", range(4))
def test_ot_coupling_equals_brute_force(n, seed):
    x, y = clouds(n, 3, seed)
    brute = min(coupling_cost(x, y, np.array(p)) for p in itertools.permutations(range(n)))
    assert coupling_cost(x, y, ot_coupling(x, y)) == pytest.approx(brute, rel=1e-12, abs=1e-12)


def test_w2_equals_pot_emd2_at_clip_size():
    x, y = clouds(77, 768, seed=1)
    w = np.full(77, 1 / 77)
    emd2 = ot.emd2(w, w, ot.dist(x, y, metric="sqeuclidean"))
    assert wasserstein2(x, y) == pytest.approx(np.sqrt(emd2), rel=1e-10)


def test_w2_bounded_by_other_couplings_and_symmetric():
    x, y = clouds(77, 64, seed=2)
    w2 = wasserstein2(x, y)
    assert w2 <= coupling_cost(x, y, clip_coupling(77)) + 1e-12
    for k in range(5):
        assert w2 <= coupling_cost(x, y, random_coupling(77, np.random.default_rng(k))) + 1e-12
    assert wasserstein2(y, x) == pytest.approx(w2, rel=1e-12)
    # The clip coupling is strictly worse on generic clouds: the inequality is not vacuous.
    assert coupling_cost(x, y, clip_coupling(77)) > 1.1 * w2


def test_w2_zero_for_row_permuted_copy_and_recovers_permutation():
    x, _ = clouds(77, 32, seed=3)
    q = np.random.default_rng(0).permutation(77)
    assert wasserstein2(x, x[q]) == 0.0
    perm = ot_coupling(x, x[q])
    np.testing.assert_array_equal(x[q][perm], x)
    np.testing.assert_array_equal(q[perm], np.arange(77))


@pytest.mark.parametrize("s,t", [(0.0, 1.0), (0.0, 0.3), (0.25, 0.75), (0.9, 0.1), (0.5, 0.5)])
def test_ot_path_is_a_constant_speed_geodesic(s, t):
    x, y = clouds(20, 8, seed=4)
    path = interpolate(x, y, ot_coupling(x, y), [s, t])
    assert wasserstein2(path[0], path[1]) == pytest.approx(abs(t - s) * wasserstein2(x, y), abs=1e-9)


def test_clip_path_is_not_a_geodesic():
    # Two clouds whose rows are listed in opposite order: the straight matrix path collapses
    # both points onto the midpoint, while OT keeps them apart, so W2(X_0, X_1/2) > W2 / 2 fails
    # for the identity coupling: its path is longer than the geodesic.
    x = np.array([[0.0, 0.0], [1.0, 0.0]])
    y = np.array([[1.1, 0.0], [0.1, 0.0]])
    clip_mid = interpolate(x, y, clip_coupling(2), [0.5])[0]
    w2 = wasserstein2(x, y)
    assert coupling_cost(x, y, clip_coupling(2)) > 5 * w2
    assert wasserstein2(x, clip_mid) > 0.5 * w2 + 0.1


def test_interpolate_endpoints_and_types():
    x, y = clouds(10, 4, seed=5)
    perm = random_coupling(10, np.random.default_rng(1))
    path = interpolate(x, y, perm, np.linspace(0, 1, 5))
    assert path.shape == (5, 10, 4) and isinstance(path, np.ndarray)
    np.testing.assert_allclose(path[0], x)
    np.testing.assert_allclose(path[-1], y[perm])
    tp = interpolate(torch.tensor(x, dtype=torch.float32), torch.tensor(y), perm, [0.0, 1.0])
    assert isinstance(tp, torch.Tensor) and tp.dtype == torch.float32 and tp.shape == (2, 10, 4)
    np.testing.assert_allclose(tp[1].numpy(), y[perm], rtol=1e-6)


def test_random_coupling_keeps_bos_and_is_a_permutation():
    for k in range(10):
        perm = random_coupling(77, np.random.default_rng(k))
        assert perm[0] == 0
        np.testing.assert_array_equal(np.sort(perm), np.arange(77))
    assert not np.array_equal(random_coupling(77, np.random.default_rng(0)), clip_coupling(77))


def test_pair_rng_is_stable_across_processes():
    here = random_coupling(77, pair_rng(7, "cxc:411553-5142"))
    code = (
        "from otinterp.couplings import pair_rng, random_coupling;"
        "print(list(random_coupling(77, pair_rng(7, 'cxc:411553-5142'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert eval(out.stdout) == list(here)
    assert not np.array_equal(here, random_coupling(77, pair_rng(7, "cxc:411553-5143")))
    assert not np.array_equal(here, random_coupling(77, pair_rng(8, "cxc:411553-5142")))


def test_coupling_by_name():
    x, y = clouds(12, 5, seed=6)
    np.testing.assert_array_equal(coupling("ot", x, y), ot_coupling(x, y))
    np.testing.assert_array_equal(coupling("clip", x, y), np.arange(12))
    np.testing.assert_array_equal(
        coupling("random", x, y, pair_rng(0, "a")), random_coupling(12, pair_rng(0, "a"))
    )
    np.testing.assert_array_equal(coupling("ot", torch.tensor(x), torch.tensor(y)), ot_coupling(x, y))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: ot_coupling(np.zeros((77, 768)), np.zeros((77, 1024))), r"same shape.*\(77, 768\).*\(77, 1024\)"),
        (lambda: ot_coupling(np.zeros(77), np.zeros(77)), r"x must be a 2-D"),
        (lambda: wasserstein2(np.zeros((3, 2)), np.full((3, 2), np.nan)), r"y contains NaN or inf"),
        (lambda: coupling_cost(np.zeros((3, 2)), np.zeros((3, 2)), [0, 0, 1]), r"permutation of 0..2"),
        (lambda: interpolate(np.zeros((3, 2)), np.zeros((3, 2)), [0, 1], [0.5]), r"permutation of 0..2"),
        (lambda: coupling("sinkhorn", np.zeros((3, 2)), np.zeros((3, 2))), r"unknown coupling 'sinkhorn'"),
        (lambda: coupling("random", np.zeros((3, 2)), np.zeros((3, 2))), r"needs rng"),
        (lambda: path_coupling("lerp", np.zeros((3, 2)), np.zeros((3, 2))), r"unknown path 'lerp'.*slerp"),
        (lambda: path_points("slerp", np.ones((3, 2)), np.ones((3, 2)), [0.5], perm=[1, 0, 2]), r"identity"),
        (lambda: slerp(np.zeros((3, 2)), np.zeros((4, 2)), [0.5]), r"same shape"),
    ],
)
def test_errors_name_the_problem(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def reference_slerp(x, y, t):
    """The community tools' slerp, written out on the flattened vectors."""
    u, v = x.ravel(), y.ravel()
    theta = np.arccos(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))
    return ((np.sin((1 - t) * theta) * u + np.sin(t * theta) * v) / np.sin(theta)).reshape(x.shape)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, torch.float32, torch.float16])
def test_slerp_starts_at_x_and_ends_at_y_exactly(dtype):
    x, y = clouds(77, 16, seed=8)
    if isinstance(dtype, torch.dtype):
        x, y = torch.tensor(x, dtype=dtype), torch.tensor(y, dtype=dtype)
    else:
        x, y = x.astype(dtype), y.astype(dtype)
    path = slerp(x, y, [0.0, 0.3, 1.0])
    assert path.dtype == x.dtype
    assert (path[0] == x).all() and (path[-1] == y).all()
    assert path_points("slerp", x, y, [1.0])[0].tolist() == y.tolist()


def test_slerp_equals_the_reference_formula_and_keeps_equal_norms():
    x, y = clouds(7, 5, seed=9)
    y *= np.linalg.norm(x) / np.linalg.norm(y)
    ts = np.linspace(0, 1, 9)
    path = slerp(x, y, ts)
    for t, p in zip(ts[1:-1], path[1:-1]):
        np.testing.assert_allclose(p, reference_slerp(x, y, t), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(path.reshape(9, -1), axis=1), np.linalg.norm(x), rtol=1e-12)
    # equal angular steps: the angle between consecutive points is constant
    flat = path.reshape(9, -1) / np.linalg.norm(x)
    np.testing.assert_allclose(np.sum(flat[1:] * flat[:-1], axis=1), np.sum(flat[1] * flat[0]), rtol=1e-12)


@pytest.mark.parametrize("y_of_x", [lambda x: 2 * x, lambda x: -x, lambda x: np.zeros_like(x)])
def test_slerp_falls_back_to_linear_for_parallel_or_zero(y_of_x):
    x, _ = clouds(5, 3, seed=10)
    y = y_of_x(x)
    ts = np.array([0.0, 0.25, 1.0])
    np.testing.assert_allclose(slerp(x, y, ts), (1 - ts[:, None, None]) * x + ts[:, None, None] * y, atol=1e-15)
    assert np.isfinite(slerp(np.zeros_like(x), x, ts)).all()


def test_path_points_by_name_and_slerp_leaves_the_other_paths_unchanged():
    x, y = clouds(12, 5, seed=11)
    ts = np.arange(1, 4) / 4
    np.testing.assert_array_equal(path_points("ot", x, y, ts), interpolate(x, y, ot_coupling(x, y), ts))
    np.testing.assert_array_equal(path_points("clip", x, y, ts), interpolate(x, y, np.arange(12), ts))
    np.testing.assert_array_equal(path_points("slerp", x, y, ts), slerp(x, y, ts))

    def draw(names):
        rng = pair_rng(0, "p")
        return {n: path_points(n, x, y, ts, rng) for n in names}

    with_slerp, without = draw(PATHS), draw(COUPLINGS)
    for name in COUPLINGS:
        np.testing.assert_array_equal(with_slerp[name], without[name])
    perm = random_coupling(12, pair_rng(0, "p"))
    np.testing.assert_array_equal(without["random"], interpolate(x, y, perm, ts))


def test_path_cost_of_slerp_is_the_identity_pairing():
    x, y = clouds(12, 5, seed=12)
    perm = path_coupling("slerp", x, y)
    np.testing.assert_array_equal(perm, np.arange(12))
    assert path_cost("slerp", x, y, perm) == coupling_cost(x, y, clip_coupling(12))
    assert path_cost("ot", x, y, path_coupling("ot", x, y)) == wasserstein2(x, y)
    with pytest.raises(ValueError, match="unknown path 'geodesic'"):
        path_cost("geodesic", x, y, perm)


def test_random_coupling_keeps_the_fixed_rows_and_its_historic_draw():
    from otinterp.couplings import random_coupling

    rng = lambda: np.random.default_rng(7)  # noqa: E731
    legacy = np.concatenate([[0], 1 + rng().permutation(76)])
    np.testing.assert_array_equal(random_coupling(77, rng()), legacy)  # BOS kept: results stay valid
    free = random_coupling(77, rng(), fixed=0)
    assert sorted(free) == list(range(77)) and free[0] != 0  # a token set without BOS (Flux)
    with pytest.raises(ValueError, match="0 <= fixed <= n"):
        random_coupling(3, rng(), fixed=4)


def test_saving_by_rows_splits_the_ot_saving_between_content_and_padding():
    from otinterp.couplings import saving_by_rows

    rng = np.random.default_rng(4)
    for n, k in ((12, 4), (30, 30), (9, 0)):
        x, y = rng.normal(size=(2, n, 5))
        cx = np.arange(n) < k
        cy = rng.random(n) < 0.5
        perm = ot_coupling(x, y)
        split = saving_by_rows(x, y, perm, cx, cy)
        total = coupling_cost(x, y, np.arange(n)) ** 2 - wasserstein2(x, y) ** 2
        assert split["saving_padding"] + split["saving_content"] == pytest.approx(total)
        assert total >= -1e-12
        assert split["content_rows_a"] == k and split["content_rows_b"] == cy.sum()
        assert split["content_to_padding"] == sum(cx[i] and not cy[perm[i]] for i in range(n))
        assert split["padding_to_content"] == sum(not cx[i] and cy[perm[i]] for i in range(n))
    # the identity saves nothing, on either kind of row
    same = saving_by_rows(x, y, np.arange(9), cx, cy)
    assert same["saving_padding"] == same["saving_content"] == 0
    with pytest.raises(ValueError, match="one entry per row"):
        saving_by_rows(x, y, perm, cx[:-1], cy)
