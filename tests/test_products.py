"""What 01 and 02 wrote is recorded, so `make paper` runs them again when it goes missing."""

import os
import shutil
import subprocess
import sys

import pytest

from otinterp import products


@pytest.fixture
def run(tmp_path):
    """A run folder with two parts and an executed 02 whose record matches them."""
    parts = tmp_path / "results" / "parts"
    parts.mkdir(parents=True)
    for name, size in (("part-a.parquet", 10), ("part-b.parquet", 20)):
        (parts / name).write_bytes(b"x" * size)
    executed = tmp_path / "notebooks" / "02_experiment.ipynb"
    executed.parent.mkdir()
    executed.write_text("{}")
    products.record(executed, tmp_path)
    return tmp_path


def test_the_record_lists_names_and_sizes(run):
    assert products.listing(run, "02_experiment") == {"results/parts/part-a.parquet": 10,
                                                      "results/parts/part-b.parquet": 20}
    assert products.listing(run, "03_statistics") == {}
    assert products.change(run / "notebooks" / "02_experiment.ipynb", run) is None
    assert products.stale(run) == {}


@pytest.mark.parametrize("damage, said", [
    (lambda run: shutil.rmtree(run / "results"), "results/parts/part-a.parquet and 1 more gone"),
    (lambda run: (run / "results" / "parts" / "part-b.parquet").unlink(), "results/parts/part-b.parquet gone"),
    (lambda run: (run / "results" / "damaged").mkdir() or os.replace(run / "results" / "parts" / "part-a.parquet",
                                                                     run / "results" / "damaged" / "part-a.parquet"),
     "results/parts/part-a.parquet gone"),
    (lambda run: (run / "results" / "parts" / "part-c.parquet").write_bytes(b"y"), "results/parts/part-c.parquet new"),
    (lambda run: (run / "results" / "parts" / "part-a.parquet").write_bytes(b"x"), "part-a.parquet changed size"),
    (lambda run: products.record_file(run / "notebooks" / "02_experiment.ipynb").unlink(), "no readable record"),
], ids=["results-deleted", "part-deleted", "part-damaged", "part-added", "part-truncated", "no-record"])
def test_changed_products_make_the_notebook_stale(run, damage, said):
    damage(run)
    (why,) = products.stale(run).values()
    assert said in why
    assert list(products.stale(run)) == [run / "notebooks" / "02_experiment.ipynb"]


def test_a_notebook_not_run_yet_is_not_stale(run):
    (run / "notebooks" / "02_experiment.ipynb").unlink()
    shutil.rmtree(run / "results")
    assert products.stale(run) == {}


def test_pairs_are_recorded_for_notebook_01(tmp_path):
    executed = tmp_path / "notebooks" / "01_dataset.ipynb"
    executed.parent.mkdir()
    executed.write_text("{}")
    (tmp_path / "pairs.parquet").write_bytes(b"p" * 5)
    products.record(executed, tmp_path)
    assert products.stale(tmp_path) == {}
    (tmp_path / "pairs.parquet").unlink()
    assert products.stale(tmp_path) == {executed: "pairs.parquet gone"}


def test_stale_command_prints_the_notebooks_to_run_again(tmp_path):
    run = tmp_path / "smoke"
    (run / "notebooks").mkdir(parents=True)
    (run / "notebooks" / "02_experiment.ipynb").write_text("{}")
    proc = subprocess.run([sys.executable, "-m", "otinterp", "settings", "--profile", "smoke", "--stale"],
                          capture_output=True,
                          text=True, env={**os.environ, "OTINTERP_RUNS": str(tmp_path)})
    assert proc.returncode == 0 and proc.stdout.split() == [str(run / "notebooks" / "02_experiment.ipynb")]
    assert proc.stderr.startswith("02_experiment.ipynb runs again: no readable record"), proc.stderr
