"""`make paper` in the smoke profile, end to end, into a temporary folder (the slowest test)."""

import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ["00_permutation_invariance", "01_dataset", "02_experiment", "03_statistics", "04_figures"]

pytestmark = pytest.mark.slow


def make(*args, root):
    return subprocess.run(["make", *args, f"RUNS={root}/runs", f"FIGURES={root}/figures"],
                          cwd=ROOT, capture_output=True, text=True)


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("paper")
    proc = make("paper", root=root)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-8000:]
    return SimpleNamespace(root=root, run=root / "runs" / "smoke", figures=root / "figures" / "smoke")


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
    table = pd.read_csv(smoke_run.run / "tables" / "invariance.csv")
    assert len(table) > 0


def test_pairs_table(smoke_run):
    pairs = pd.read_parquet(smoke_run.run / "pairs.parquet")
    assert {"pair_id", "prompt_a", "prompt_b", "score", "group"} <= set(pairs.columns)
    assert pairs["pair_id"].is_unique and len(pairs) >= 10


def test_results_cover_every_pair_and_coupling(smoke_run):
    from otinterp.experiment import load_results

    pairs = pd.read_parquet(smoke_run.run / "pairs.parquet")
    results = load_results(smoke_run.run / "results")
    assert len(results) == 3 * len(pairs)
    assert set(results["coupling"]) == {"ot", "clip", "random"}
    assert (results.groupby("pair_id")["coupling"].nunique() == 3).all()
    manifest = json.loads((smoke_run.run / "results" / "manifest.json").read_text())
    assert manifest["params"]["profile"] == "smoke" and manifest["versions"]["torch"]


@pytest.mark.parametrize("name", ["tests_ppl.csv", "tests_cost.csv", "table1.csv", "table1.md", "table1.tex",
                                  "hypotheses.csv"])
def test_statistics_tables(smoke_run, name):
    nonempty(smoke_run.run / "tables" / name)


@pytest.mark.parametrize("name", ["figure3_ppl_cost", "w2_vs_similarity", "excess_cost_vs_similarity"])
def test_figures(smoke_run, name):
    for suffix in (".png", ".pdf"):
        nonempty(smoke_run.figures / f"{name}{suffix}")
    assert list(smoke_run.figures.glob("figure2_*.png")), "no Figure 2 image strips"


def test_make_reruns_only_what_changed(smoke_run):
    assert make("-q", "paper", root=smoke_run.root).returncode == 0, "a finished run is not up to date"
    dry = make("-n", "paper", "-W", "notebooks/03_statistics.ipynb", root=smoke_run.root).stdout
    assert "03_statistics" in dry
    for name in ("00_permutation_invariance", "01_dataset", "02_experiment", "04_figures"):
        assert f"notebooks/{name}.ipynb " not in dry
    dry = make("-n", "paper", "-W", "notebooks/01_dataset.ipynb", root=smoke_run.root).stdout
    assert all(f"notebooks/{n}.ipynb " in dry for n in ("01_dataset", "02_experiment", "03_statistics", "04_figures"))
    assert "notebooks/00_permutation_invariance.ipynb " not in dry
