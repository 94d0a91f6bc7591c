import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import otinterp.render
from otinterp import experiment, params
from otinterp.couplings import COUPLINGS, ot_coupling, pair_rng, random_coupling
from otinterp.models import load_pipeline
from otinterp.ppl import load_lpips
from otinterp.render import render
from otinterp.text import encode

ROOT = Path(__file__).resolve().parents[1]
P = params.make(n_intervals=3, steps=3, height=32, width=32, batch_size=8, pairs_per_part=2)


@pytest.fixture(scope="module")
def pipe():
    return load_pipeline("tiny")


@pytest.fixture(scope="module")
def lpips_model():
    return load_lpips("alex", "random")


@pytest.fixture(scope="module")
def pairs():
    words = ["cat", "dog", "bus", "pizza", "horse"]
    return pd.DataFrame({
        "pair_id": [f"pair-{w}" for w in words],
        "prompt_a": [f"a photo of a {w} on a table" for w in words],
        "prompt_b": [f"a {w} running across a green field at dusk" for w in words],
        "group": [0.5, 1.0, 2.5, 4.0, 5.0],
        "score": [0.2, 0.9, 2.2, 3.8, 5.0],
        "source_a": None, "source_b": None,
    })


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, pipe, lpips_model, pairs):
    out = tmp_path_factory.mktemp("full")
    return experiment.run(P, pairs, out, pipe=pipe, lpips_model=lpips_model, disable=True)


def run(out, pairs, pipe, lpips_model, **kw):
    return experiment.run(P, pairs, out, pipe=pipe, lpips_model=lpips_model, disable=True, **kw)


def test_results_schema_and_values(full_run, pairs):
    assert len(full_run) == 3 * len(pairs)
    assert list(full_run.groupby("pair_id")["coupling"].apply(list).iloc[0]) == list(COUPLINGS)
    for _, r in full_run.iterrows():
        assert len(r["distances"]) == P.n_intervals
        assert r["ppl"] == pytest.approx(np.mean(r["distances"]))
        assert r["max_step"] == pytest.approx(max(r["distances"]))
        assert r["total_length"] == pytest.approx(sum(r["distances"]))
        assert 0 <= r["smoothness"] <= 1
        assert r["lpips_backbone"] == "random"
    ot = full_run[full_run.coupling == "ot"].set_index("pair_id")
    for name in ("clip", "random"):
        other = full_run[full_run.coupling == name].set_index("pair_id")
        assert (other["cost"] >= ot["cost"] - 1e-9).all()
    np.testing.assert_allclose(ot["cost_ratio"], 1.0)
    np.testing.assert_allclose(full_run["cost_ratio"], full_run["cost"] / full_run["w2"])


def test_costs_match_the_couplings_of_the_embeddings(full_run, pipe, pairs):
    row = pairs.iloc[2]
    x, y = (e.double().numpy() for e in encode(pipe, [row.prompt_a, row.prompt_b]))
    perm = random_coupling(77, pair_rng(P.seed, row.pair_id))
    got = full_run[full_run.pair_id == row.pair_id].set_index("coupling")["cost"]
    assert got["random"] == pytest.approx(np.sqrt(np.mean(np.sum((x - y[perm]) ** 2, 1))), rel=1e-6)
    assert got["ot"] == pytest.approx(np.sqrt(np.mean(np.sum((x - y[ot_coupling(x, y)]) ** 2, 1))), rel=1e-6)


def test_runner_renders_2_plus_3_times_k_minus_1_images_per_pair(tmp_path, pipe, lpips_model, pairs, monkeypatch):
    rendered = []

    def counting(pipe, embeds, **kw):
        rendered.append(len(embeds))
        return render(pipe, embeds, **kw)

    monkeypatch.setattr(otinterp.render, "render", counting)
    run(tmp_path, pairs.iloc[:2], pipe, lpips_model)
    assert sum(rendered) == 2 * (2 + 3 * (P.n_intervals - 1)) == 2 * experiment.images_per_pair(P.n_intervals)


def test_endpoint_sharing_is_valid(pipe, pairs):
    # The OT path ends at Y[σ], which must render as Y itself. Float32 attention over 77 keys in
    # another order changes the last bits: 1e-4 on [0, 1] pixels is 40x below one 8-bit level.
    x, y = encode(pipe, [pairs.prompt_a[0], pairs.prompt_b[0]])
    perm = torch.from_numpy(ot_coupling(x, y))
    rand = torch.from_numpy(random_coupling(77, np.random.default_rng(0)))
    kw = dict(seed=0, steps=3, guidance=7.5, height=32, width=32, batch_size=4, disable=True)
    images = render(pipe, torch.stack([y, y[perm], y[rand]]), **kw)
    torch.testing.assert_close(images[1], images[0], atol=1e-4, rtol=0)
    torch.testing.assert_close(images[2], images[0], atol=1e-4, rtol=0)


def test_resume_after_interruption_equals_uninterrupted_run(tmp_path, full_run, pipe, lpips_model, pairs):
    class Stop(Exception):
        pass

    def stop_after_first_part(done, total):
        raise Stop

    with pytest.raises(Stop):
        run(tmp_path, pairs, pipe, lpips_model, callback=stop_after_first_part)
    assert len(list(tmp_path.glob("part-*.parquet"))) == 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary files left behind"
    calls = []
    resumed = run(tmp_path, pairs, pipe, lpips_model, callback=lambda d, t: calls.append(d))
    assert calls == [4, 5]  # only the two parts that were missing
    pd.testing.assert_frame_equal(resumed, full_run)


def test_killed_process_leaves_no_half_written_part(tmp_path, pairs):
    pairs.to_parquet(tmp_path / "pairs.parquet")
    code = f"""
import os, pandas as pd
from otinterp import experiment, params
P = params.make(n_intervals=3, steps=3, height=32, width=32, batch_size=8, pairs_per_part=2)
def kill(done, total):
    os._exit(9)  # as abrupt as SIGKILL: no cleanup, no exception handling
experiment.run(P, pd.read_parquet({str(tmp_path / 'pairs.parquet')!r}), {str(tmp_path / 'out')!r},
               callback=kill, disable=True)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr[-2000:]
    parts = list((tmp_path / "out").glob("part-*.parquet"))
    assert len(parts) == 1 and len(pd.read_parquet(parts[0])) == 2 * 3


def test_shards_together_equal_a_single_run(tmp_path, full_run, pipe, lpips_model, pairs):
    a = run(tmp_path, pairs, pipe, lpips_model, shard="0/2")
    b = run(tmp_path, pairs, pipe, lpips_model, shard=(1, 2))
    assert set(a.pair_id).isdisjoint(b.pair_id)
    union = pd.concat([a, b]).sort_values(["pair_id"], kind="stable", ignore_index=True)
    pd.testing.assert_frame_equal(union, full_run)
    pd.testing.assert_frame_equal(experiment.load_results(tmp_path), full_run)
    assert run(tmp_path / "many", pairs.iloc[:2], pipe, lpips_model, shard="3/4").empty


def test_shard_from_launcher_environment():
    assert experiment.shard_from_env({"RANK": "2", "WORLD_SIZE": "4"}) == (2, 4)
    env = {"SLURM_ARRAY_TASK_ID": "12", "SLURM_ARRAY_TASK_MIN": "10", "SLURM_ARRAY_TASK_COUNT": "8"}
    assert experiment.shard_from_env(env) == (2, 8)
    with pytest.raises(ValueError, match="--shard auto needs"):
        experiment.shard_from_env({})


def test_unknown_strip_pair_ids_are_errors(tmp_path, pairs):
    with pytest.raises(ValueError, match="strip_pair_ids not in the pair table: pair-zebra"):
        experiment.run(P.replace(strip_pair_ids=["pair-zebra"]), pairs, tmp_path, pipe=object(), disable=True)


def test_strips_are_saved_for_chosen_pairs(tmp_path, pipe, lpips_model, pairs):
    p = P.replace(strip_pair_ids=["pair-cat"])
    experiment.run(p, pairs.iloc[:2], tmp_path, pipe=pipe, lpips_model=lpips_model, disable=True)
    from PIL import Image

    strips = sorted(f.name for f in (tmp_path / "strips").iterdir())
    assert strips == ["pair-cat_clip.png", "pair-cat_ot.png", "pair-cat_random.png"]
    assert Image.open(tmp_path / "strips" / "pair-cat_ot.png").size == (32 * (P.n_intervals + 1), 32)


def test_embeddings_are_cached_on_disk(tmp_path, pipe):
    first = experiment.encode_cached(pipe, ["a cat", "a dog", "a cat"], tmp_path, "key")
    assert len(first) == 2 and len(list((tmp_path / "key").glob("*.pt"))) == 2
    torch.testing.assert_close(first["a cat"], encode(pipe, ["a cat"])[0])
    again = experiment.encode_cached(None, ["a dog"], tmp_path, "key")  # no pipe needed: read from disk
    torch.testing.assert_close(again["a dog"], first["a dog"])


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda p: p.drop(columns="prompt_b"), r"pair table: missing column\(s\) 'prompt_b'"),
        (lambda p: pd.concat([p, p.iloc[:1]]), r"pair table: pair_id 'pair-cat' appears 2 times"),
    ],
)
def test_bad_pair_tables(tmp_path, pairs, change, match):
    with pytest.raises(ValueError, match=match):
        experiment.run(P, change(pairs), tmp_path, pipe=object(), lpips_model=object(), disable=True)


@pytest.mark.parametrize("shard", ["3/2", "-1/2", "1/0", "half", (2, 2)])
def test_bad_shards(shard):
    with pytest.raises(ValueError, match="shard"):
        experiment.parse_shard(shard)


def test_folder_of_other_params_is_refused(tmp_path, pipe, lpips_model, pairs):
    run(tmp_path, pairs.iloc[:2], pipe, lpips_model)
    with pytest.raises(ValueError, match=r"holds results of different settings.*'steps': 3"):
        experiment.run(P.replace(steps=4), pairs.iloc[:2], tmp_path, pipe=pipe, lpips_model=lpips_model)
    with pytest.raises(ValueError, match=r"different settings.*pairs_sha256"):
        run(tmp_path, pairs.iloc[:3], pipe, lpips_model)


def test_load_results_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist: run the experiment"):
        experiment.load_results(tmp_path / "nothing")
    with pytest.raises(FileNotFoundError, match="no part-"):
        experiment.load_results(tmp_path)


def test_cli_runs_a_shard(tmp_path, pairs):
    pairs.iloc[:2].to_parquet(tmp_path / "pairs.parquet")
    profile = tmp_path / "p.yaml"
    profile.write_text("n_intervals: 2\nsteps: 2\nheight: 32\nwidth: 32\npairs_per_part: 1\n")
    cmd = [sys.executable, "-m", "otinterp.experiment", "--params", str(profile), "--pairs",
           str(tmp_path / "pairs.parquet"), "--out", str(tmp_path / "res"), "--shard", "1/2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert list(experiment.load_results(tmp_path / "res")["pair_id"].unique()) == ["pair-dog"]
