import numpy as np
import pytest
import torch
import torchvision

import pandas as pd

from otinterp.ppl import (
    MEASURES, RAW_COLUMNS, add_measures, excursion, gini, load_lpips, pair_distances, path_distances,
    path_efficiency, path_measures, perceptual_length, perceptual_path_length,
)


def path(k=5, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(k + 1, 3, size, size, generator=g)


def test_ppl_equals_lpips_pair_by_pair(lpips_model):
    images = path()
    d = path_distances(images, lpips_model, batch_size=2)
    direct = [lpips_model(images[k:k + 1] * 2 - 1, images[k + 1:k + 2] * 2 - 1).item() for k in range(5)]
    np.testing.assert_allclose(d, direct, rtol=1e-6)
    assert perceptual_path_length(d) == pytest.approx(np.mean(direct), rel=1e-6)


def test_distances_of_many_paths_and_batch_size_independent(lpips_model):
    stack = torch.stack([path(seed=s) for s in range(3)])
    d = path_distances(stack, lpips_model, batch_size=4)
    assert d.shape == (3, 5)
    np.testing.assert_allclose(d[1], path_distances(stack[1], lpips_model, batch_size=32), rtol=1e-6)
    np.testing.assert_allclose(perceptual_path_length(d), d.mean(axis=1))


def test_constant_path_has_zero_length_and_resize_is_applied(lpips_model):
    images = path(k=2).clone()
    images[:] = images[0]
    np.testing.assert_allclose(path_distances(images, lpips_model), 0.0, atol=1e-7)
    varied = path(k=2, size=64)
    assert not np.allclose(path_distances(varied, lpips_model), path_distances(varied, lpips_model, resize=32))


def test_random_backbone_is_seeded_and_labelled():
    a, b, c = load_lpips("alex", "random"), load_lpips("alex", "random"), load_lpips("alex", "random", seed=1)
    assert a.backbone == "random"
    images = path()
    np.testing.assert_array_equal(path_distances(images, a), path_distances(images, b))
    assert not np.allclose(path_distances(images, a), path_distances(images, c))


def test_pretrained_backbone_loads_from_torch_hub_cache(tmp_path, monkeypatch):
    # The real path up to the download: torchvision finds AlexNet's checkpoint in the hub cache.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torch.manual_seed(3)
    weights = torchvision.models.alexnet().state_dict()
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(weights, tmp_path / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth")
    m = load_lpips("alex", "pretrained")
    assert m.backbone == "pretrained"
    torch.testing.assert_close(m.net.slice1[0].weight, weights["features.0.weight"])


def test_pretrained_backbone_missing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    def offline(*args, **kwargs):
        raise OSError("network unreachable")
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(RuntimeError, match=r"pretrained alex weights.*alexnet-owt-7be5be79.pth.*lpips_backbone: random"):
        load_lpips("alex", "pretrained")


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown LPIPS backbone 'imagenet'"):
        load_lpips("alex", "imagenet")
    with pytest.raises(ValueError, match=r"images must be \(..., K\+1, 3, H, W\)"):
        path_distances(torch.rand(1, 3, 8, 8), None)


def test_gini_properties():
    assert gini(np.ones(6)) == pytest.approx(0.0)
    assert gini(np.zeros(4)) == 0.0
    assert gini(np.array([0, 0, 0, 1.0])) == pytest.approx(0.75)  # (K - 1) / K for one jump
    v = np.random.default_rng(0).random(9)
    brute = np.abs(v[:, None] - v[None, :]).sum() / (2 * 9 * 9 * v.mean())
    assert gini(v) == pytest.approx(brute)
    np.testing.assert_allclose(gini(np.stack([v, 2 * v])), [brute, brute])  # scale invariant


def test_path_efficiency_equals_its_definition_on_hand_made_distances():
    d = np.array([[0.01, 0.04, 0.09, 0.16], [0.25, 0.25, 0.25, 0.25]])
    span = np.array([0.25, 4.0])
    np.testing.assert_allclose(perceptual_length(d), [1.0, 2.0])
    np.testing.assert_allclose(path_efficiency(d, span), [0.5 / 1.0, 2.0 / 2.0])
    assert path_efficiency([0.0, 0.0], 0.0) == 1.0  # a constant path makes no detour


def test_excursion_equals_its_definition_on_hand_made_distances():
    # K = 4: to_start[k] = LPIPS(I_k, I_0), to_end[k] = LPIPS(I_k, I_K); LPIPS(I_0, I_K) = 0.4
    to_start = np.array([0.0, 0.3, 0.9, 0.5, 0.4])
    to_end = np.array([0.4, 0.6, 0.7, 0.1, 0.0])
    expected = np.sqrt(max(min(s, e) for s, e in zip(to_start, to_end)) / 0.4)  # k = 2: min(0.9, 0.7) = 0.7
    assert excursion(to_start, to_end) == pytest.approx(expected) == pytest.approx(np.sqrt(1.75))
    np.testing.assert_allclose(excursion(np.stack([to_start, to_start]), np.stack([to_end, to_end])),
                               [np.sqrt(1.75)] * 2)
    assert excursion(np.zeros(3), np.zeros(3)) == 0.0
    with pytest.raises(ValueError, match="to_start and to_end must both be"):
        excursion(np.zeros(3), np.zeros(4))


def blend(a: torch.Tensor, b: torch.Tensor, k: int) -> torch.Tensor:
    """The straight pixel blend from ``a`` to ``b`` in ``k`` intervals."""
    t = torch.linspace(0, 1, k + 1)[:, None, None, None]
    return (1 - t) * a + t * b


def test_efficiency_is_at_most_one_and_never_rises_when_a_path_is_refined(lpips_model):
    """√LPIPS obeys the triangle inequality, so Σ √d_k only grows as a path gains images."""
    g = torch.Generator().manual_seed(3)
    wander = torch.rand(17, 3, 32, 32, generator=g)  # a path that jumps around
    ends = torch.rand(2, 3, 32, 32, generator=g)
    for images in (wander, blend(ends[0], ends[1], 16)):
        efficiencies, lengths = [], []
        for step in (16, 8, 4, 2, 1):  # K = 1, 2, 4, 8, 16 on the same path
            m = path_measures(images[::step][None], lpips_model)
            efficiencies.append(m["path_efficiency"][0])
            lengths.append(m["perceptual_length"][0])
        assert efficiencies[0] == pytest.approx(1.0)
        assert all(e <= 1 + 1e-6 for e in efficiencies)
        assert all(later <= earlier + 1e-6 for earlier, later in zip(efficiencies, efficiencies[1:]))
        assert all(later >= earlier - 1e-6 for earlier, later in zip(lengths, lengths[1:]))
    # the measures on LPIPS itself would not be efficiencies: Σ d_k falls like 1/K on a blend
    fine = path_measures(blend(ends[0], ends[1], 32)[None], lpips_model)
    assert fine["end_to_end"][0] / fine["total_length"][0] > 2
    assert 0.3 < fine["path_efficiency"][0] < 0.8


def test_add_measures_derives_every_measure_and_converts_old_rows(lpips_model):
    images = torch.stack([path(k=4, size=32, seed=s) for s in range(3)])
    m = path_measures(images, lpips_model)
    rows = pd.DataFrame({c: list(m[c]) for c in RAW_COLUMNS}).assign(distances=[list(d) for d in m["distances"]])
    new = add_measures(rows)
    for name in MEASURES:
        np.testing.assert_allclose(new[name], m[name], rtol=1e-12)
    # a row of the old layout stored LPIPS-based efficiency and excursion, and no raw columns
    old = rows.drop(columns=["end_to_end", "farthest_from_ends"]).assign(
        path_efficiency=m["end_to_end"] / m["total_length"], excursion=m["farthest_from_ends"] / m["end_to_end"],
        ppl=99.0)
    converted = add_measures(old)
    for name in MEASURES:
        np.testing.assert_allclose(converted[name], m[name], rtol=1e-12)
    np.testing.assert_allclose(converted["excursion"], np.sqrt(old["excursion"]), rtol=1e-12)
    with pytest.raises(ValueError, match="cannot be measured"):
        add_measures(rows.drop(columns=["end_to_end"]))


def test_path_measures_match_direct_lpips_calls(lpips_model):
    images = torch.stack([path(k=4, size=32, seed=s) for s in range(3)])
    images[2] = images[2, :1]  # a constant path
    m = path_measures(images, lpips_model, batch_size=5)
    assert set(m) == {"to_start", "to_end", *RAW_COLUMNS, *MEASURES}
    assert m["distances"].shape == (3, 4) and m["to_start"].shape == m["to_end"].shape == (3, 5)
    assert all(m[name].shape == (3,) for name in MEASURES)
    np.testing.assert_allclose(m["distances"], path_distances(images, lpips_model), rtol=1e-6)

    def lpips(p, i, j):
        return pair_distances(images[p, i:i + 1], images[p, j:j + 1], lpips_model)[0]

    for p in range(2):
        np.testing.assert_allclose(m["to_start"][p], [0.0] + [lpips(p, k, 0) for k in range(1, 5)], rtol=1e-6)
        np.testing.assert_allclose(m["to_end"][p], [lpips(p, k, 4) for k in range(4)] + [0.0], rtol=1e-6)
        d = m["distances"][p]
        assert m["ppl"][p] == pytest.approx(d.mean()) and m["max_step"][p] == d.max()
        assert m["total_length"][p] == pytest.approx(d.sum()) and m["smoothness"][p] == pytest.approx(1 - gini(d))
        assert m["perceptual_length"][p] == pytest.approx(np.sqrt(d).sum())
        assert m["path_efficiency"][p] == pytest.approx(np.sqrt(lpips(p, 0, 4)) / np.sqrt(d).sum(), rel=1e-6)
        assert m["excursion"][p] == pytest.approx(excursion(m["to_start"][p], m["to_end"][p]))
    assert m["ppl"][2] == 0 and m["path_efficiency"][2] == 1 and m["excursion"][2] == 0
    again = path_measures(images, lpips_model, batch_size=2)
    for name in MEASURES:
        np.testing.assert_allclose(again[name], m[name], rtol=1e-6)
    with pytest.raises(ValueError, match=r"images must be \(P, K\+1, 3, H, W\)"):
        path_measures(images[0], lpips_model)
