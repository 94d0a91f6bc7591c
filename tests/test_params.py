from pathlib import Path

import pytest

from otinterp import params

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
        ({"alpha": 1.5}, r"'alpha' must be in \(0, 1\)"),
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
    assert a.result_key() == a.replace(batch_size=7, device="cuda").result_key()
    assert a.result_key() != a.replace(steps=9).result_key()


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
    assert paper.input_files() == ["data/cxc/sts_val.csv", "data/cxc/sts_test.csv", "data/dataset_coco.json"]
