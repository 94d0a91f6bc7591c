from pathlib import Path

import pytest

from otinterp import params
from otinterp.run import Run
from otinterp.store import result_key

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("profile", ["smoke", "paper"])
def test_profiles_load(profile):
    p = params.load(ROOT / "params" / f"{profile}.yaml")
    assert p.profile == profile
    assert p.pairs_path == Path(p.run_dir) / "pairs.parquet"


def test_paper_profile_has_spec_values():
    p = params.load(ROOT / "params" / "paper.yaml")
    assert (p.n_intervals, p.steps, p.guidance, p.height, p.width) == (10, 50, 7.5, 512, 512)
    assert (p.per_group, p.pairs_source, p.lpips_backbone) == (1000, "cxc", "pretrained")
    assert p.model == "stable-diffusion-v1-5/stable-diffusion-v1-5"


def test_smoke_profile_is_offline():
    p = params.load(ROOT / "params" / "smoke.yaml")
    assert (p.model, p.device, p.dtype, p.lpips_backbone, p.pairs_source) == (
        "tiny", "cpu", "float32", "random", "bundled")


def test_overrides_and_int_to_float():
    p = params.load(ROOT / "params" / "smoke.yaml", seed=3, guidance=5)
    assert p.seed == 3 and p.guidance == 5.0 and isinstance(p.guidance, float)


def test_unknown_key_is_named(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("seed: 1\nnum_steps: 20\n")
    with pytest.raises(ValueError, match=r"p.yaml: unknown parameter\(s\) 'num_steps'"):
        params.load(f)


@pytest.mark.parametrize(
    "text, match",
    [
        ("seed: one\n", r"'seed' must be int, got 'one'"),
        ("steps: 2.5\n", r"'steps' must be int"),
        ("dtype: float64\n", r"'dtype' must be one of 'float32', 'float16', 'bfloat16'"),
        ("invariance_prompts: a cat\n", r"'invariance_prompts' must be a list of str"),
        ("channels_last: 1\n", r"'channels_last' must be bool"),
        ("max_pairs: many\n", r"'max_pairs' must be int or None"),
    ],
)
def test_wrong_types_are_named(tmp_path, text, match):
    f = tmp_path / "p.yaml"
    f.write_text(text)
    with pytest.raises(TypeError, match=match):
        params.load(f)


@pytest.mark.parametrize(
    "values, match",
    [
        ({"steps": 0}, r"'steps' must be >= 1"),
        ({"height": 60}, r"'height' must be a multiple of 8"),
        ({"alpha": 1.5}, r"'alpha' must be in \(0, 0.5\)"),
        ({"max_pairs": -1}, r"'max_pairs' must be >= 1, got -1"),
        ({"lpips_resize": 0}, r"'lpips_resize' must be >= 1"),
        ({"seed": -3}, r"'seed' must be >= 0"),
        ({"pairs_source": "csv"}, r"'pairs_csv' is required"),
    ],
)
def test_invalid_values(values, match):
    with pytest.raises(ValueError, match=match):
        params.make(**values)


def test_missing_file_and_non_mapping(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml does not exist"):
        params.load(tmp_path / "nope.yaml")
    f = tmp_path / "list.yaml"
    f.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="must be a YAML mapping"):
        params.load(f)


def test_result_key_changes_with_result_fields_only():
    a = params.make()
    assert result_key(a) == result_key(a.replace(batch_size=7, device="cuda"))
    assert result_key(a) != result_key(a.replace(steps=9))


def test_resolved_makes_paths_absolute_and_finds_local_models(tmp_path):
    (tmp_path / "models" / "sd").mkdir(parents=True)
    p = params.make(run_dir="runs/x", cxc_paths=["data/a.csv"], model="models/sd").resolved(tmp_path)
    assert p.run_dir == str(tmp_path / "runs" / "x") and p.cxc_paths == [str(tmp_path / "data" / "a.csv")]
    assert p.model == str(tmp_path / "models" / "sd") and p.pairs_csv is None
    assert params.make(model="tiny").resolved(tmp_path).model == "tiny"
    assert params.make(model="owner/name").resolved(tmp_path).model == "owner/name"


def test_input_files_per_source(tmp_path):
    assert params.make().input_files() == []
    assert params.make(pairs_source="csv", pairs_csv="mine.csv").input_files() == ["mine.csv"]
    paper = params.load(ROOT / "params" / "paper.yaml")
    assert paper.input_files() == [str(ROOT / f) for f in ("data/cxc/sts_val.csv", "data/cxc/sts_test.csv",
                                                           "data/dataset_coco.json")]


def test_defaults_measure_with_the_pretrained_lpips_backbone():
    assert params.Params().lpips_backbone == "pretrained" and "LPIPS" not in params.Params().caveat
    assert params.load("smoke").lpips_backbone == "random"  # an explicit offline opt-in


def test_run_and_figure_folders_follow_the_profile_name(tmp_path, monkeypatch):
    mine = tmp_path / "params" / "mine.yaml"
    mine.parent.mkdir()
    mine.write_text((ROOT / "params" / "smoke.yaml").read_text())
    p = params.load(mine)
    assert (p.profile, p.run_dir, p.figures_dir) == ("mine", str(ROOT / "runs" / "mine"), str(ROOT / "figures" / "mine"))
    assert p.profile_path == str(mine)
    monkeypatch.setenv("OTINTERP_RUNS", str(tmp_path / "elsewhere"))
    assert params.load(mine).run_dir == str(tmp_path / "elsewhere" / "mine")
    mine.write_text("run_dir: my_runs/x\npairs_source: csv\npairs_csv: data/p.csv\n")
    p = params.load(mine)  # relative paths are relative to the folder above params/
    assert (p.run_dir, p.pairs_csv) == (str(tmp_path / "my_runs" / "x"), str(tmp_path / "data" / "p.csv"))


def test_a_profile_line_that_disagrees_with_the_file_name_is_an_error(tmp_path):
    (tmp_path / "mine.yaml").write_text("profile: smoke\n")
    with pytest.raises(ValueError, match=r"says profile: 'smoke', but a profile's name is its file's name \('mine'\)"):
        params.load(tmp_path / "mine.yaml")


def test_unknown_profile_names_the_existing_ones():
    with pytest.raises(FileNotFoundError, match=r"unknown profile .nope.*profiles: demo, flux, paper, sd21, sd3, sdxl, smoke"):
        params.load("nope")
    assert Run.open("smoke", seed=2).config.seed == 2


@pytest.mark.parametrize("field, value, match", [
    ("paths", ["clip", "random"], "including 'ot'"),
    ("paths", ["ot", "sl3rp"], "must list distinct names"),
    ("seeds", [], "non-empty list"),
    ("seeds", [1, 1], "distinct seeds"),
    ("scheduler", "pndm", "one of 'default'"),
    ("min_effect", 1.5, r"in \[0, 1\]"),
])
def test_new_fields_are_validated(field, value, match):
    with pytest.raises((TypeError, ValueError), match=match):
        params.make(**{field: value})


def test_seeds_default_to_the_experiment_seed():
    assert params.make(seed=3).latent_seeds == [3] and params.make(seeds=[0, 1]).latent_seeds == [0, 1]


def test_check_command_fails_in_one_line(tmp_path):
    import subprocess
    import sys

    bad = tmp_path / "bad.yaml"
    bad.write_text("pairs_source: csv\npairs_csv: missing.csv\n")
    for profile, message in (("nope", "unknown profile 'nope'"), (str(bad), "missing.csv does not exist")):
        proc = subprocess.run([sys.executable, "-m", "otinterp", "check", "--profile", profile], capture_output=True,
                              text=True)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr
    ok = subprocess.run([sys.executable, "-m", "otinterp", "check", "--profile", "smoke"], capture_output=True,
                        text=True)
    assert ok.returncode == 0 and "profile smoke: model tiny" in ok.stdout


def test_demo_profile_is_the_paper_on_the_bundled_pairs():
    from otinterp import data

    demo, paper = params.load("demo"), params.load("paper")
    same = ("model", "n_intervals", "steps", "guidance", "height", "width", "dtype", "lpips_backbone", "scheduler")
    assert {k: getattr(demo, k) for k in same} == {k: getattr(paper, k) for k in same}
    assert demo.pairs_source == "bundled" and demo.run_dir.endswith("runs/demo")
    pairs = data.pairs_table(demo)
    assert sorted(pairs["pair_id"]) == sorted(data.bundled_pairs()["pair_id"])


@pytest.mark.parametrize("profile", ["sd21", "sdxl", "sd3", "flux", "demo", "paper", "smoke"])
def test_every_shipped_profile_validates(profile):
    p = params.load(profile)
    assert p.profile == profile and p.run_dir.endswith(f"runs/{profile}")


def test_replace_keys_integers_as_floats_like_make():
    p = params.make().replace(guidance=8)
    assert p.guidance == 8.0 and isinstance(p.guidance, float)
    assert result_key(p) == result_key(params.make(guidance=8.0))


def test_a_local_model_keys_by_its_configs_not_its_path(tmp_path):
    for place in ("login", "compute"):
        folder = tmp_path / place / "stable-diffusion-v1-5"
        (folder / "unet").mkdir(parents=True)
        (folder / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
        (folder / "unet" / "config.json").write_text('{"sample_size": 64}')
    keys = [result_key(params.make(model=str(tmp_path / p / "stable-diffusion-v1-5")))["model"]
            for p in ("login", "compute")]
    assert keys[0] == keys[1] and keys[0].startswith("local:stable-diffusion-v1-5@")
    (tmp_path / "compute" / "stable-diffusion-v1-5" / "unet" / "config.json").write_text('{"sample_size": 96}')
    assert result_key(params.make(model=str(tmp_path / "compute" / "stable-diffusion-v1-5")))["model"] != keys[0]
    assert result_key(params.make(model="tiny"))["model"] == "tiny"


def test_an_old_profile_says_couplings_is_now_paths_and_is_read(tmp_path):
    old = tmp_path / "old.yaml"
    old.write_text("couplings: [ot, clip, random, slerp]\n")
    with pytest.warns(FutureWarning, match=r"the setting 'couplings' is now 'paths' \(read as paths: \['ot'") as seen:
        p = params.load(old)
    assert p.paths == ["ot", "clip", "random", "slerp"] and len(seen) == 1
    with pytest.warns(FutureWarning, match="--set: the setting 'couplings'"):
        assert params.load("smoke", couplings=["ot", "clip"]).paths == ["ot", "clip"]
    both = tmp_path / "both.yaml"
    both.write_text("couplings: [ot]\npaths: [ot]\n")
    with pytest.raises(ValueError, match="gives both 'couplings' and its new name 'paths'"):
        params.load(both)
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) 'couplings' \(did you mean 'paths'\?\)"):
        params.make(couplings=["ot"])
