"""`make paper` in the smoke profile, end to end, into a temporary folder (the slowest test)."""

import json
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ["00_permutation_invariance", "01_dataset", "02_experiment", "03_statistics", "04_figures", "05_explore",
             "07_barycenters"]

pytestmark = pytest.mark.slow


def make(*args, root):
    return subprocess.run(["make", "--no-print-directory", *args, f"RUNS={root}/runs", f"FIGURES={root}/figures"],
                          cwd=ROOT, capture_output=True, text=True)


def commands(proc):
    """The notebooks a `make -n` would run."""
    return [line.split()[2] for line in proc.stdout.splitlines() if "otinterp notebook " in line]


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("paper")
    proc = make("paper", root=root)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-8000:]
    return SimpleNamespace(root=root, run=root / "runs" / "smoke", figures=root / "figures" / "smoke",
                           stderr=proc.stderr)


def nonempty(path):
    assert path.is_file() and path.stat().st_size > 0, f"{path} is missing or empty"


def test_every_notebook_executed(smoke_run):
    for name in NOTEBOOKS:
        path = smoke_run.run / "notebooks" / f"{name}.ipynb"
        nonempty(path)
        nb = json.loads(path.read_text())
        errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, f"{name}: {errors}"
    assert not list((smoke_run.run / "notebooks").glob("*.failed.ipynb"))


def test_invariance_table(smoke_run):
    table = pd.read_csv(smoke_run.run / "tables" / "invariance.csv", comment="#")
    assert len(table) > 0
    assert "# model: tiny (sd family)" in (smoke_run.run / "tables" / "invariance.csv").read_text()


def test_measures_table_has_flat_columns_and_verdicts_use_five_words(smoke_run):
    measures = pd.read_csv(smoke_run.run / "tables" / "measures.csv", comment="#")
    assert "excursion_clip" in measures.columns and "perceptual_length_ot" in measures.columns
    padding = pd.read_csv(smoke_run.run / "tables" / "padding.csv", comment="#")
    assert (padding["pairs"] > 0).all() and (padding["content_rows_a"] < 77).all()
    verdicts = pd.read_csv(smoke_run.run / "tables" / "hypotheses.csv", comment="#")
    allowed = {"supported", "contradicted", "negligible", "inconclusive", "not testable"}
    assert set(verdicts["verdict_all"]) <= allowed and set(verdicts["verdict_disjoint"]) <= allowed


def test_pairs_table(smoke_run):
    pairs = pd.read_parquet(smoke_run.run / "pairs.parquet")
    assert {"pair_id", "prompt_a", "prompt_b", "score", "group"} <= set(pairs.columns)
    assert pairs["pair_id"].is_unique and len(pairs) >= 10


def test_results_cover_every_pair_and_coupling(smoke_run):
    from otinterp.experiment import load_results

    pairs = pd.read_parquet(smoke_run.run / "pairs.parquet")
    results = load_results(smoke_run.run / "results", pairs)
    assert len(results) == 3 * len(pairs)
    assert set(results["path"]) == {"ot", "clip", "random"}
    assert (results.groupby("pair_id")["path"].nunique() == 3).all()
    manifest = json.loads((smoke_run.run / "results" / "manifest.json").read_text())
    assert manifest["params"]["profile"] == "smoke" and manifest["versions"]["torch"]
    assert manifest["profile_text"] == (ROOT / "params" / "smoke.yaml").read_text()


@pytest.mark.parametrize("name", ["tests_ppl.csv", "tests_cost.csv", "table1.csv", "table1.md", "table1.tex",
                                  "table1_disjoint.csv", "hypothesis_tests.csv", "measures.csv",
                                  "hypotheses.csv"])
def test_statistics_tables(smoke_run, name):
    nonempty(smoke_run.run / "tables" / name)


@pytest.mark.parametrize("name", ["figure3_ppl_cost", "figure3_measures", "w2_vs_similarity",
                                  "excess_cost_vs_similarity"])
def test_figures(smoke_run, name):
    for suffix in (".png", ".pdf"):
        nonempty(smoke_run.figures / f"{name}{suffix}")
    assert list(smoke_run.figures.glob("figure2_*.png")), "no Figure 2 image strips"


def test_make_reruns_only_what_changed(smoke_run):
    assert commands(make("-n", "paper", root=smoke_run.root)) == [], "a finished run is not up to date"
    # -W does not pass to the second make (GNU make keeps it out of MAKEFLAGS): ask that one directly.
    inner = ["notebooks", f"RUN={smoke_run.run}", f"PARAMS={ROOT / 'params' / 'smoke.yaml'}"]
    dry = commands(make("-n", *inner, "-W", "notebooks/03_statistics.ipynb", root=smoke_run.root))
    assert dry == ["notebooks/03_statistics.ipynb"]
    dry = commands(make("-n", *inner, "-W", "notebooks/01_dataset.ipynb", root=smoke_run.root))
    assert sorted(dry) == [f"notebooks/{n}.ipynb" for n in NOTEBOOKS[1:5]]  # 05 explores prompts, not results


def test_make_progress_reaches_the_terminal(smoke_run):
    err = smoke_run.stderr
    assert "== 02_experiment" in err and "pair×latent units" in err and "images/s, ETA" in err
    assert "Kernel is running over TCP" not in err  # local kernels talk over Unix sockets
    assert "    max_abs_diff" not in err  # tables stay in the executed notebooks


def test_copied_profile_with_a_csv_is_recorded_as_itself(tmp_path):
    # A profile copied from smoke, pointed at a CSV: its run lives in runs/mine, and the manifest
    # records its own settings, not a notebook's defaults.
    csv = tmp_path / "pairs.csv"
    csv.write_text("prompt_a,prompt_b,score\na cat on a mat,a dog on a mat,2.0\na red bus,a blue bus,4.5\n")
    text = (ROOT / "params" / "smoke.yaml").read_text()
    for old, new in (("pairs_source: bundled", f"pairs_source: csv\npairs_csv: {csv}"), ("per_group: 2", "per_group: 1"),
                     ("n_intervals: 4", "n_intervals: 2"), ("steps: 8", "steps: 2"), ("height: 64", "height: 32"),
                     ("width: 64", "width: 32"), ("n_perms: 3", "n_perms: 1")):
        assert old in text
        text = text.replace(old, new)
    (tmp_path / "mine.yaml").write_text(text)
    proc = make("paper", f"PROFILE={tmp_path / 'mine.yaml'}", root=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    manifest = json.loads((tmp_path / "runs" / "mine" / "results" / "manifest.json").read_text())
    recorded = manifest["params"]
    assert (recorded["profile"], recorded["pairs_source"], recorded["pairs_csv"], recorded["per_group"]) == (
        "mine", "csv", str(csv), 1)
    assert manifest["profile_text"] == text and not (tmp_path / "runs" / "smoke").exists()


@pytest.mark.parametrize("profile, message", [("nonexistent", "unknown profile 'nonexistent'"),
                                              ("missing_csv", "missing.csv does not exist")])
def test_bad_profiles_fail_in_seconds_with_one_line(tmp_path, profile, message):
    if profile == "missing_csv":
        profile = tmp_path / "missing_csv.yaml"
        profile.write_text(f"pairs_source: csv\npairs_csv: {tmp_path / 'missing.csv'}\n")
    proc = make("paper", f"PROFILE={profile}", root=tmp_path)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode != 0 and len(errors) == 1 and message in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "runs").exists()


def test_random_weight_tables_carry_the_caveat(smoke_run):
    for name in ("table1.csv", "hypotheses.csv", "tests_ppl.csv", "invariance.csv"):
        notes = [line for line in (smoke_run.run / "tables" / name).read_text().splitlines() if line.startswith("#")]
        assert any("random weights" in line for line in notes), name
    notes = (smoke_run.run / "tables" / "table1.md").read_text()
    assert "model: tiny (sd family)" in notes and "settings " in notes  # the model, and the trace to the run
    assert len(pd.read_csv(smoke_run.run / "tables" / "table1.csv", comment="#")) == 3  # OT vs CLIP, vs random, n


def test_explorer_outputs(smoke_run):
    for name in ("paths_seed0.gif", "paths_seed0.mp4", "coupling.png", "measures.json"):
        nonempty(smoke_run.figures / "explore" / name)


def test_barycenter_outputs(smoke_run):
    for name in ("close_pair_and_outsider", "unrelated", "cats"):
        nonempty(smoke_run.figures / "barycenters" / f"triangle_{name}.png")
    table = pd.read_csv(smoke_run.run / "tables" / "barycenters.csv", comment="#")
    assert len(table) == 6 and set(table["method"]) == {"ot", "mean"}


def result_rows(run):
    """Every result row in a fixed order; parts are read as files, their names differ between runs."""
    parts = sorted((run / "results" / "parts").glob("part-*.parquet"))
    rows = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    return rows.sort_values(["pair_id", "seed", "path"], ignore_index=True)


def test_deleted_results_are_rendered_again_then_nothing_is_to_be_done(smoke_run):
    # Runs last: it deletes the results the tests above read.
    rows = result_rows(smoke_run.run)
    tables = {p.name: p.read_bytes() for p in sorted((smoke_run.run / "tables").glob("*.csv"))}
    shutil.rmtree(smoke_run.run / "results")
    proc = make("paper", root=smoke_run.root)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "02_experiment.ipynb runs again: results/parts/" in proc.stderr
    assert re.findall(r"^== (\S+) done", proc.stderr, flags=re.M) == ["02_experiment", "03_statistics", "04_figures"]
    pd.testing.assert_frame_equal(result_rows(smoke_run.run), rows, check_exact=True)
    assert {p.name: p.read_bytes() for p in sorted((smoke_run.run / "tables").glob("*.csv"))} == tables
    again = make("paper", root=smoke_run.root)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout and "== " not in again.stderr, again.stderr
