import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

import otinterp.render
from otinterp import experiment, params, store
from otinterp.store import result_key
from otinterp.couplings import COUPLINGS, ot_coupling, pair_rng, random_coupling
from otinterp.families import family_of
from otinterp.render import render

ROOT = Path(__file__).resolve().parents[1]
P = params.make(n_intervals=3, steps=3, height=32, width=32, batch_size=8, pairs_per_part=2, lpips_backbone="random")


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
    assert list(full_run.groupby("pair_id")["path"].apply(list).iloc[0]) == list(COUPLINGS)
    for _, r in full_run.iterrows():
        assert len(r["distances"]) == P.n_intervals
        assert r["ppl"] == pytest.approx(np.mean(r["distances"]))
        assert r["max_step"] == pytest.approx(max(r["distances"]))
        assert r["total_length"] == pytest.approx(sum(r["distances"]))
        assert 0 <= r["smoothness"] <= 1
        assert r["lpips_backbone"] == "random"
    ot = full_run[full_run.path == "ot"].set_index("pair_id")
    for name in ("clip", "random"):
        other = full_run[full_run.path == name].set_index("pair_id")
        assert (other["cost"] >= ot["cost"] - 1e-9).all()
    np.testing.assert_allclose(ot["cost_ratio"], 1.0)
    np.testing.assert_allclose(full_run["cost_ratio"], full_run["cost"] / full_run["w2"])


def test_costs_match_the_couplings_of_the_embeddings(full_run, pipe, pairs):
    row = pairs.iloc[2]
    x, y = (e.double().numpy() for e in family_of(pipe).encode(pipe, [row.prompt_a, row.prompt_b]).tokens)
    perm = random_coupling(77, pair_rng(P.seed, row.pair_id))
    got = full_run[full_run.pair_id == row.pair_id].set_index("path")["cost"]
    assert got["random"] == pytest.approx(np.sqrt(np.mean(np.sum((x - y[perm]) ** 2, 1))), rel=1e-6)
    assert got["ot"] == pytest.approx(np.sqrt(np.mean(np.sum((x - y[ot_coupling(x, y)]) ** 2, 1))), rel=1e-6)


def test_each_unit_renders_2_plus_k_minus_1_per_path_in_batches_of_its_own(tmp_path, pipe, lpips_model, pairs,
                                                                           monkeypatch):
    rendered = []

    def counting(pipe, embeds, **kw):
        rendered.append(len(embeds))
        return render(pipe, embeds, **kw)

    monkeypatch.setattr(otinterp.render, "render", counting)
    run(tmp_path, pairs.iloc[:2], pipe, lpips_model)
    assert sum(rendered) == 2 * (2 + 3 * (P.n_intervals - 1)) == 2 * experiment.images_per_pair(P.n_intervals)
    assert rendered == [2, 2, 2, 2] * 2  # endpoints, then each path's K - 1 interior points


def test_endpoint_sharing_is_valid(pipe, pairs):
    # The OT path ends at Y[σ], which must render as Y itself. Float32 attention over 77 keys in
    # another order changes the last bits: 1e-4 on [0, 1] pixels is 40x below one 8-bit level.
    x, y = family_of(pipe).encode(pipe, [pairs.prompt_a[0], pairs.prompt_b[0]]).tokens
    perm = torch.from_numpy(ot_coupling(x, y))
    rand = torch.from_numpy(random_coupling(77, np.random.default_rng(0)))
    kw = dict(seed=0, steps=3, guidance=7.5, height=32, width=32, batch_size=4, disable=True)
    images = render(pipe, torch.stack([y, y[perm], y[rand]]), **kw)
    torch.testing.assert_close(images[1], images[0], atol=1e-4, rtol=0)
    torch.testing.assert_close(images[2], images[0], atol=1e-4, rtol=0)


def test_resume_after_interruption_equals_uninterrupted_run(tmp_path, full_run, pipe, lpips_model, pairs, capsys):
    class Stop(Exception):
        pass

    def stop_after_first_part(done, total):
        raise Stop

    with pytest.raises(Stop):
        run(tmp_path, pairs, pipe, lpips_model, callback=stop_after_first_part)
    assert len(list(tmp_path.glob("parts/part-*.parquet"))) == 1
    assert not [p for p in tmp_path.rglob(".*") if p.is_file()], "temporary files left behind"
    assert not list(tmp_path.glob("locks/*.lock")), "locks left behind"
    capsys.readouterr()
    calls = []
    resumed = run(tmp_path, pairs, pipe, lpips_model, callback=lambda d, t: calls.append(d))
    assert calls == [4, 5]  # only the three pairs that were missing
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("experiment: 5 pairs, 5 pair×latent units, 2 done: 24 images to render, ")
    assert err[-1].startswith("experiment: 5/5 pair×latent units, 24/24 images, ")  # the last unit's line
    pd.testing.assert_frame_equal(resumed, full_run)


@pytest.fixture(scope="module")
def killed(tmp_path_factory, pairs):
    """A results folder whose run was killed (SIGKILL) while writing its second part: one valid
    part, half a part under its temporary name, a lock and an unfinished run record."""
    tmp = tmp_path_factory.mktemp("killed")
    pairs.iloc[:3].to_parquet(tmp / "pairs.parquet")
    code = f"""
import os, signal, pandas as pd, pyarrow.parquet as pq
from otinterp import experiment, params
P = params.make(n_intervals=3, steps=3, height=32, width=32, batch_size=8, pairs_per_part=2, lpips_backbone="random")
write, calls = pq.write_table, []
def write_half_then_die(table, where, **kw):
    calls.append(where)
    write(table, where, **kw)
    if len(calls) == 2:
        with open(where, "r+b") as f:
            f.truncate(os.path.getsize(where) // 2)
        os.kill(os.getpid(), signal.SIGKILL)
pq.write_table = write_half_then_die
experiment.run(P, pd.read_parquet({str(tmp / 'pairs.parquet')!r}), {str(tmp / 'out')!r}, disable=True)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr[-2000:]
    return tmp / "out"


@pytest.mark.slow
@pytest.mark.parametrize("manifest_lost", [False, True])
@pytest.mark.parametrize("then", ["run", "repair", "repair with other settings"])
def test_after_a_kill_no_valid_part_is_lost(killed, tmp_path, pipe, lpips_model, pairs, then, manifest_lost):
    out = tmp_path / "out"
    shutil.copytree(killed, out)
    (part,) = (out / "parts").glob("part-*.parquet")
    before = part.read_bytes()
    assert len(pd.read_parquet(part)) == 2 * 3
    assert list((out / "parts").glob(".part-*.tmp")) and list((out / "locks").glob("*.lock"))  # debris of the kill
    if manifest_lost:
        (out / "manifest.json").unlink()
    p = P.replace(steps=4) if then == "repair with other settings" else P
    if p is P:
        got = experiment.run(p, pairs.iloc[:3], out, pipe=pipe, lpips_model=lpips_model, disable=True,
                             repair=then == "repair")
        assert len(got) == 3 * 3 and store.read_manifest(out / "manifest.json")["key"] == result_key(P)
    else:
        refusal = "steps: 3 in the parts, 4 asked" if manifest_lost else "steps: 3 there, 4 now"
        with pytest.raises(ValueError, match=refusal):
            experiment.run(p, pairs.iloc[:3], out, pipe=pipe, lpips_model=lpips_model, disable=True, repair=True)
        assert (out / "manifest.json").exists() != manifest_lost
    assert part.read_bytes() == before and store.read_part(part).units
    assert not (out / "damaged").exists()


def test_shards_together_equal_a_single_run(tmp_path, full_run, pipe, lpips_model, pairs):
    a = run(tmp_path, pairs, pipe, lpips_model, shard="0/2")
    b = run(tmp_path, pairs, pipe, lpips_model, shard=(1, 2))
    assert set(a.pair_id).isdisjoint(b.pair_id) and len(a) and len(b)
    pd.testing.assert_frame_equal(experiment.load_results(tmp_path, pairs), full_run)
    many = [run(tmp_path / "many", pairs.iloc[:2], pipe, lpips_model, shard=(i, 4)) for i in range(4)]
    assert sum(m.empty for m in many) == 2  # two pairs over four shards


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
    with Image.open(tmp_path / "strips" / "pair-cat_ot.png") as strip:
        assert strip.size == (32 * (P.n_intervals + 1), 32)


def test_embeddings_are_cached_on_disk(tmp_path, pipe):
    first = experiment.encode_cached(pipe, ["a cat", "a dog", "a cat"], tmp_path, "key")
    assert len(first) == 2 and len(list((tmp_path / "key").glob("*.pt"))) == 2
    torch.testing.assert_close(first["a cat"].tokens, family_of(pipe).encode(pipe, ["a cat"]).tokens[0])
    assert first["a cat"].pooled is None  # SD 1.5 has no global vector
    again = experiment.encode_cached(None, ["a dog"], tmp_path, "key")  # no pipe needed: read from disk
    torch.testing.assert_close(again["a dog"].tokens, first["a dog"].tokens)


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


def test_folder_of_other_settings_is_refused_in_one_line(tmp_path, pipe, lpips_model, pairs):
    run(tmp_path, pairs.iloc[:2], pipe, lpips_model)
    with pytest.raises(ValueError, match=r"holds results of other settings \(steps: 3 there, 4 now\)"):
        experiment.run(P.replace(steps=4), pairs.iloc[:2], tmp_path, pipe=pipe, lpips_model=lpips_model)
    with pytest.raises(ValueError, match=r"scheduler: 'default' there, 'ddim' now"):
        experiment.run(P.replace(scheduler="ddim"), pairs.iloc[:2], tmp_path, pipe=pipe, lpips_model=lpips_model)


def test_adding_pairs_renders_only_the_new_ones_and_removing_hides_them(tmp_path, full_run, pipe, lpips_model,
                                                                        pairs):
    six = pd.concat([pairs, pairs.iloc[:1].assign(pair_id="pair-owl", prompt_a="an owl on a branch at night",
                                                   group=3.0, score=2.8)], ignore_index=True)
    first = run(tmp_path, six.iloc[:4], pipe, lpips_model)
    calls = []
    grown = run(tmp_path, six, pipe, lpips_model, callback=lambda d, t: calls.append((d, t)))
    assert calls == [(6, 6)]  # the two new pairs only, written as one part
    pd.testing.assert_frame_equal(grown.iloc[:len(first)], first)  # the first four: bit for bit
    pd.testing.assert_frame_equal(grown.iloc[:3 * 5], full_run)  # and as a single run over them
    fewer = experiment.load_results(tmp_path, six.iloc[1:])
    assert "pair-cat" not in set(fewer["pair_id"]) and len(fewer) == 3 * 5
    assert len(experiment.load_results(tmp_path)) == 3 * 6  # still on disk


def test_editing_a_prompt_renders_that_pair_again_and_groups_come_from_the_table(tmp_path, pipe, lpips_model, pairs):
    before = run(tmp_path, pairs.iloc[:2], pipe, lpips_model)
    edited = pairs.iloc[:2].copy()
    edited.loc[0, "prompt_b"] = "a cat asleep on a red sofa"
    edited.loc[1, "group"] = 3.0
    calls = []
    after = run(tmp_path, edited, pipe, lpips_model, callback=lambda d, t: calls.append(d))
    assert calls == [2]  # one pair rendered again; the regrouped one is not
    assert (after[after.pair_id == "pair-cat"]["ppl"].values != before[before.pair_id == "pair-cat"]["ppl"].values).any()
    assert set(after[after.pair_id == "pair-dog"]["group"]) == {3.0}


def test_latent_seeds_give_a_row_per_seed_and_the_paper_seed_is_unchanged(tmp_path, full_run, pipe, lpips_model,
                                                                            pairs):
    two = experiment.run(P.replace(seeds=[0, 1]), pairs.iloc[:2], tmp_path, pipe=pipe, lpips_model=lpips_model,
                         disable=True)
    assert len(two) == 2 * 2 * 3 and (two.groupby(["pair_id", "path"]).size() == 2).all()
    seed0 = two[two.seed == 0].reset_index(drop=True)
    pd.testing.assert_frame_equal(seed0, full_run[full_run.pair_id.isin(["pair-cat", "pair-dog"])].reset_index(drop=True))
    assert (two[two.seed == 1]["ppl"].values != seed0["ppl"].values).all()
    np.testing.assert_array_equal(two[two.seed == 1]["cost"].values, seed0["cost"].values)  # couplings ignore latents


def test_slerp_is_added_without_changing_the_paper_couplings(tmp_path, full_run, pipe, lpips_model, pairs):
    run(tmp_path, pairs.iloc[:2], pipe, lpips_model)
    four = experiment.run(P.replace(paths=["ot", "clip", "random", "slerp"]), pairs.iloc[:2], tmp_path, pipe=pipe,
                          lpips_model=lpips_model, disable=True)
    assert list(four.path[:4]) == ["ot", "clip", "random", "slerp"]
    paper = four[four.path != "slerp"].reset_index(drop=True)
    pd.testing.assert_frame_equal(paper, full_run[full_run.pair_id.isin(["pair-cat", "pair-dog"])].reset_index(drop=True))


def test_damaged_parts_are_named_and_repaired(tmp_path, full_run, pipe, lpips_model, pairs):
    run(tmp_path, pairs.iloc[:4], pipe, lpips_model)
    truncated, emptied = sorted((tmp_path / "parts").glob("part-*.parquet"))
    truncated.write_bytes(truncated.read_bytes()[:100])
    with pytest.raises(store.DamagedResults, match=rf"{truncated.name} cannot be read .*--repair"):
        experiment.load_results(tmp_path)
    pq.write_table(pq.read_table(emptied).slice(0, 0), emptied)  # valid parquet, settings record kept, no rows
    repaired = experiment.run(P, pairs, tmp_path, pipe=pipe, lpips_model=lpips_model, disable=True, repair=True)
    assert sorted(p.name for p in (tmp_path / "damaged").iterdir()) == sorted([truncated.name, emptied.name])
    pd.testing.assert_frame_equal(repaired, full_run)


def test_empty_part_is_an_error_naming_it(tmp_path, pipe, lpips_model, pairs):
    run(tmp_path, pairs.iloc[:1], pipe, lpips_model)
    (part,) = (tmp_path / "parts").glob("part-*.parquet")
    pq.write_table(pq.read_table(part).slice(0, 0), part)
    with pytest.raises(store.DamagedResults, match=rf"{part.name} holds 0 rows where its record names 3"):
        run(tmp_path, pairs.iloc[:1], pipe, lpips_model)


def test_truncated_manifest_is_named_and_repaired(tmp_path, pipe, lpips_model, pairs):
    done = run(tmp_path, pairs.iloc[:1], pipe, lpips_model)
    manifest = tmp_path / "manifest.json"
    manifest.write_text(manifest.read_text()[:50])
    with pytest.raises(store.DamagedResults, match=r"manifest.json is damaged \(JSONDecodeError"):
        run(tmp_path, pairs.iloc[:1], pipe, lpips_model)
    again = experiment.run(P, pairs.iloc[:1], tmp_path, pipe=pipe, lpips_model=lpips_model, disable=True, repair=True)
    pd.testing.assert_frame_equal(again, done)


def test_parts_record_their_settings_and_units(tmp_path, pipe, lpips_model, pairs):
    run(tmp_path, pairs.iloc[:1], pipe, lpips_model)
    (part,) = (tmp_path / "parts").glob("part-*.parquet")
    meta = json.loads(pq.read_schema(part).metadata[b"otinterp"])
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert meta["key_sha256"] == manifest["key_sha256"] == store.settings_sha256(result_key(P))
    assert meta["key"] == result_key(P) and meta["schema_version"] == store.SCHEMA_VERSION == 3
    assert meta["units"] == [[store.pair_key("pair-cat", pairs.prompt_a[0], pairs.prompt_b[0]), 0]]
    assert manifest["git"].keys() == {"commit", "dirty"} and manifest["pairs_sha256"] and manifest["n_pairs"] == 1


@pytest.mark.slow
def test_two_processes_with_other_settings_into_one_fresh_folder(tmp_path, pairs):
    pairs.iloc[:1].to_parquet(tmp_path / "pairs.parquet")
    code = """
import sys, time, pandas as pd
from otinterp import experiment, params
P = params.make(n_intervals=2, steps=int(sys.argv[1]), height=32, width=32, lpips_backbone="random")
pairs = pd.read_parquet(sys.argv[3])
while time.time() < float(sys.argv[2]):
    pass
experiment.run(P, pairs, sys.argv[4], disable=True)
"""
    start = str(time.time() + 8)
    procs = [subprocess.Popen([sys.executable, "-c", code, str(s), start, str(tmp_path / "pairs.parquet"),
                               str(tmp_path / "out")], stderr=subprocess.PIPE, text=True) for s in (2, 3)]
    errors = [p.communicate()[1] for p in procs]
    assert sorted(p.returncode != 0 for p in procs) == [False, True], errors
    (err,) = [e for p, e in zip(procs, errors) if p.returncode]
    assert re.search(r"holds results of other settings \(steps: [23] there, [23] now\)", err)


def test_claims_are_exclusive_and_stale_locks_are_taken_over(tmp_path):
    a, b = store.Claims(tmp_path), store.Claims(tmp_path)
    b.me = {**b.me, "pid": os.getppid()}  # another live worker on this host
    assert a.claim(("k", 0)) and not b.claim(("k", 0))
    a.release()
    assert b.claim(("k", 0))
    lock = tmp_path / "locks" / "k-1.lock"
    lock.write_text(json.dumps({"host": "elsewhere", "pid": 1}))
    assert not a.claim(("k", 1))
    os.utime(lock, (time.time() - store.LOCK_STALE_S - 1,) * 2)
    assert a.claim(("k", 1))


def test_dry_run_renders_nothing_and_counts(tmp_path, pipe, lpips_model, pairs):
    p = P.replace(seeds=[0, 1])
    plan = experiment.plan(p, pairs, tmp_path)
    assert plan == {"pairs": 5, "units": 10, "units_done": 0, "images": 10 * (2 + 3 * 2), "images_per_s": None,
                    "rate_from": None, "seconds": None}
    assert not (tmp_path / "manifest.json").exists()
    experiment.run(p, pairs.iloc[:1], tmp_path, pipe=pipe, lpips_model=lpips_model, disable=True)
    plan = experiment.plan(p, pairs, tmp_path)
    assert (plan["units_done"], plan["images"]) == (2, 8 * 8) and plan["seconds"] > 0
    assert "images to render, about" in experiment.describe_plan(plan)


def test_max_pairs_takes_every_group():
    groups = np.repeat(np.arange(1, 11) / 2, 4)
    table = pd.DataFrame({"pair_id": [f"p{i}" for i in range(40)], "prompt_a": "a", "prompt_b": "b",
                          "group": groups, "score": groups})
    chosen = experiment.select_pairs(P.replace(max_pairs=20), table)
    assert (chosen.groupby("group").size() == 2).all() and chosen["group"].nunique() == 10


def test_load_results_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist: run the experiment"):
        experiment.load_results(tmp_path / "nothing")


@pytest.mark.slow
def test_cli_runs_a_shard_and_a_dry_run(tmp_path, pairs):
    pairs.iloc[:2].to_parquet(tmp_path / "pairs.parquet")
    profile = tmp_path / "p.yaml"
    profile.write_text("n_intervals: 2\nsteps: 2\nheight: 32\nwidth: 32\npairs_per_part: 1\nlpips_backbone: random\n")
    cmd = [sys.executable, "-m", "otinterp", "run", "--profile", str(profile), "--pairs",
           str(tmp_path / "pairs.parquet"), "--out", str(tmp_path / "res")]
    env = {**os.environ, "TQDM_DISABLE": "1"}
    dry = subprocess.run(cmd + ["--dry-run"], capture_output=True, text=True, env=env)
    assert dry.returncode == 0 and "2 pairs, 2 pair×latent units, 0 done: 10 images to render" in dry.stdout
    assert not (tmp_path / "res").exists()
    keys = store.pair_keys(pairs.iloc[:2])
    shard = [i for i in range(2) if experiment.in_shard(keys[1], (i, 2))][0]
    proc = subprocess.run(cmd + ["--shard", f"{shard}/2"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "pair-dog" in set(experiment.load_results(tmp_path / "res")["pair_id"])
    bad = subprocess.run(cmd + ["--set", "steps=0"], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "steps" in bad.stderr


@pytest.mark.parametrize("spec", ["sd21-tiny", "sdxl-tiny", "sd3-tiny", "flux-tiny"])
def test_every_family_runs_the_experiment(tmp_path, spec, tiny_pipe, lpips_model, pairs):
    p = P.replace(model=spec, n_intervals=2, steps=2, guidance=0.0 if spec == "flux-tiny" else 5.0)
    pipe = tiny_pipe(spec)
    got = experiment.run(p, pairs.iloc[:2], tmp_path, pipe=pipe, lpips_model=lpips_model, disable=True)
    assert len(got) == 2 * 3 and set(got["family"]) == {family_of(pipe).name}
    for _, rows in got.groupby("pair_id"):
        cost = rows.set_index("path")["cost"]
        assert cost["ot"] == pytest.approx(rows["w2"].iloc[0]) and (cost >= cost["ot"] - 1e-9).all()
    assert np.isfinite(got["ppl"]).all() and (got["ppl"] > 0).all()
    assert set(got["global_path"]) == {"none" if spec == "sd21-tiny" else "linear"}
    cond = experiment.encode_cached(pipe, [pairs.prompt_a[0], pairs.prompt_b[0]], tmp_path / "enc", "k")
    a, b = cond[pairs.prompt_a[0]], cond[pairs.prompt_b[0]]
    paths = experiment.path_embeddings(a.tokens, b.tokens, "pair-cat", seed=0, n_intervals=4,
                                       pooled=None if a.pooled is None else (a.pooled, b.pooled))
    if spec in ("sd21-tiny",):
        assert a.pooled is None and all(v["pooled"] is None for v in paths.values())
    else:  # the global vector moves linearly from A's to B's, the same for every coupling
        assert got[got.pair_id == "pair-cat"]["global_distance"].iloc[0] == pytest.approx(
            float((a.pooled.double() - b.pooled.double()).norm()))
        first = paths["ot"]["pooled"]
        torch.testing.assert_close(first[1], (a.pooled + b.pooled) / 2)
        assert all(torch.equal(v["pooled"], first) for v in paths.values())


def test_dry_run_rate_from_a_benchmark_file(tmp_path, pairs):
    record = {"images_per_s": 5.0, "device_name": store.device_name("cpu"), "batch_size_asked": P.batch_size, **{
        k: getattr(P, k) for k in ("model", "height", "width", "steps", "dtype", "scheduler", "n_intervals",
                                   "channels_last", "compile_unet")}}
    bench = tmp_path / "rates.json"
    bench.write_text(json.dumps([record, {**record, "images_per_s": 9.0, "steps": 50},
                                 {**record, "images_per_s": 7.0, "compile_unet": True}]))
    rate, source = store.measured_rate(tmp_path / "none", P, benchmarks=[bench])
    assert rate == 5.0 and "benchmark" in source  # records of other steps or speed options do not count
    assert store.measured_rate(tmp_path / "none", P.replace(height=64), benchmarks=[bench]) is None
    # the plan reads a rate file only when rates_path names one
    assert experiment.plan(P, pairs, tmp_path / "res")["images_per_s"] is None
    named = experiment.plan(P.replace(rates_path=str(bench)), pairs, tmp_path / "res")
    assert named["images_per_s"] == 5.0 and str(bench) in named["rate_from"]
    with pytest.raises(FileNotFoundError, match=r"rates_path \S*missing.json does not exist"):
        experiment.plan(P.replace(rates_path=str(tmp_path / "missing.json")), pairs, tmp_path / "res")


def test_prompts_are_encoded_in_chunks_and_read_on_lookup(tmp_path, pipe, monkeypatch):
    fam = family_of(pipe)
    sizes = []
    original = type(fam).encode

    def counting(self, pipe, prompts, **kw):
        sizes.append(len(prompts))
        return original(self, pipe, prompts, **kw)

    monkeypatch.setattr(type(fam), "encode", counting)
    prompts = [f"a photo of {n} cats" for n in range(5)]
    got = experiment.encode_cached(pipe, prompts, tmp_path, "k", batch_size=2)
    assert sizes == [2, 2, 1] and len(got) == 5 and list(got) == prompts
    torch.testing.assert_close(got[prompts[4]].tokens, family_of(pipe).encode(pipe, prompts[4:]).tokens[0])


def test_manifest_params_check_the_profile_and_keep_the_speed_options(tmp_path, pipe, lpips_model, pairs):
    run(tmp_path, pairs.iloc[:1], pipe, lpips_model)
    faster = P.replace(batch_size=2, channels_last=True, device="cpu")
    again = store.manifest_params(tmp_path, faster)
    assert (again.batch_size, again.channels_last) == (P.batch_size, P.channels_last)  # as the images were made
    with pytest.raises(ValueError, match=r"other settings than profile 'smoke' \(steps: 3 there, 5 now\)"):
        store.manifest_params(tmp_path, P.replace(steps=5))
    assert "settings " + store.settings_sha256(result_key(P))[:12] in store.trace_note(tmp_path)


def test_a_pilot_run_reads_back_only_its_own_pairs(tmp_path, pipe, lpips_model, pairs):
    run(tmp_path, pairs, pipe, lpips_model)
    pilot = P.replace(max_pairs=2)
    got = experiment.load_results(tmp_path, pairs, params=pilot)
    assert list(got["pair_id"].unique()) == list(experiment.select_pairs(pilot, pairs)["pair_id"])


def test_a_stale_lock_is_taken_over_by_one_worker_only(tmp_path):
    lock = tmp_path / "locks" / "k-0.lock"
    workers = [store.Claims(tmp_path) for _ in range(2)]
    lock.write_text(json.dumps({"host": "elsewhere", "pid": 1}))
    os.utime(lock, (time.time() - store.LOCK_STALE_S - 1,) * 2)
    workers[1].me = {**workers[1].me, "pid": os.getppid()}
    assert [w.claim(("k", 0)) for w in workers] == [True, False]
    assert json.loads(lock.read_text())["pid"] == os.getpid()
    workers[0].release(("k", 0))
    assert not lock.exists() and not workers[0].held


def test_a_fresh_lock_moved_by_mistake_is_put_back(tmp_path, monkeypatch):
    # Worker B judged a lock stale, but worker A replaced it with a fresh one before B's rename.
    a, b = store.Claims(tmp_path), store.Claims(tmp_path)
    b.me = {**b.me, "pid": os.getppid()}
    lock = tmp_path / "locks" / "k-0.lock"
    lock.write_text(json.dumps({"host": "elsewhere", "pid": 1}))
    os.utime(lock, (time.time() - store.LOCK_STALE_S - 1,) * 2)
    stale = b._stale(lock)
    lock.unlink()
    assert a.claim(("k", 0))  # A's fresh lock
    monkeypatch.setattr(b, "_stale", lambda path: stale)
    assert not b.claim(("k", 0)) and lock.exists()
    assert json.loads(lock.read_text())["pid"] == os.getpid()  # still A's


def test_an_older_results_folder_is_named_as_such(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"key": {"result_key": {}, "pairs_per_part": 8}}))
    with pytest.raises(ValueError, match="made by an older otinterp") as err:
        store.read_manifest(tmp_path / "manifest.json")
    assert not isinstance(err.value, store.DamagedResults)  # not repairable: --repair leaves it alone


def test_progress_prints_the_plan_then_a_line_at_least_every_30_s(capsys):
    now = [100.0]
    plan = {"pairs": 5, "units": 10, "units_done": 7, "images": 33, "images_per_s": None, "rate_from": None,
            "seconds": None}
    progress = experiment.Progress(plan, every=30, disable=True, clock=lambda: now[0])
    assert capsys.readouterr().err == ("experiment: 5 pairs, 10 pair×latent units, 7 done: 33 images to render, "
                                       "no rate measured on this device yet (a short run measures one)\n")
    now[0] += 29
    progress.rendered(2)  # within a unit, 29 s on: nothing yet
    assert capsys.readouterr().err == ""
    now[0] += 1
    progress.rendered(9)  # still within the unit, 30 s on: a line
    assert capsys.readouterr().err == "experiment: 7/10 pair×latent units, 11/33 images, 0.37 images/s, ETA 1m00s\n"
    now[0] += 10
    progress.advance(1)
    assert capsys.readouterr().err == ""
    now[0] += 1
    progress.advance(2)  # the last unit: a line whenever it comes
    assert capsys.readouterr().err.startswith("experiment: 10/10 pair×latent units, 11/33 images")


def test_rows_carry_where_the_ot_saving_comes_from(tmp_path, pipe, lpips_model, pairs):
    from otinterp.couplings import coupling_cost, wasserstein2
    from otinterp.families import family_of

    got = experiment.run(P, pairs.iloc[:2], tmp_path, pipe=pipe, lpips_model=lpips_model, disable=True)
    for pid, rows in got.groupby("pair_id"):
        first = rows.iloc[0]
        assert (rows[["saving_content", "saving_padding", "content_to_padding"]].nunique() == 1).all()
        cond = family_of(pipe).encode(pipe, [first["prompt_a"], first["prompt_b"]])
        x, y = (c.double().numpy() for c in cond.tokens)
        total = coupling_cost(x, y, np.arange(len(x))) ** 2 - wasserstein2(x, y) ** 2
        assert first["saving_content"] + first["saving_padding"] == pytest.approx(total, rel=1e-6)
        content = family_of(pipe).content_rows(pipe, [first["prompt_a"], first["prompt_b"]])
        assert (first["content_rows_a"], first["content_rows_b"]) == tuple(content.sum(1).tolist())
