"""The papermill runner: one profile is the source of every notebook's parameters."""

import subprocess
import sys
from pathlib import Path

import nbformat
import papermill
import pytest

from otinterp import params
from otinterp.notebooks import notebook_parameters

ROOT = Path(__file__).resolve().parents[1]
META = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"}}
PROFILE_CELL = 'profile = "smoke"\noverrides = {}'


def notebook(tmp_path, *sources):
    cells = [nbformat.v4.new_code_cell(sources[0], metadata={"tags": ["parameters"]}),
             *(nbformat.v4.new_code_cell(s) for s in sources[1:])]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata=META), path)
    return path


def test_profile_and_overrides_are_passed(tmp_path):
    nb = notebook(tmp_path, PROFILE_CELL)
    got = notebook_parameters(nb, "smoke", {"seed": 3})
    assert got == {"profile": str(ROOT / "params" / "smoke.yaml"), "overrides": {"seed": 3}}


def test_bad_profiles_and_overrides_fail_before_the_kernel_starts(tmp_path):
    nb = notebook(tmp_path, PROFILE_CELL)
    with pytest.raises(FileNotFoundError, match=r"unknown profile 'nope'.*profiles: .*smoke"):
        notebook_parameters(nb, "nope")
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) 'num_steps'"):
        notebook_parameters(nb, "smoke", {"num_steps": 3})


def test_parameters_cell_must_declare_profile_and_overrides(tmp_path):
    with pytest.raises(ValueError, match="must declare profile and overrides"):
        notebook_parameters(notebook(tmp_path, "seed = 0"), "smoke")
    bare = tmp_path / "bare.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")], metadata=META), bare)
    with pytest.raises(ValueError, match="no cell tagged 'parameters'"):
        notebook_parameters(bare, "smoke")


PROFILE_NOTEBOOKS = sorted(p for p in (ROOT / "notebooks").glob("*.ipynb") if not p.name.startswith("06_"))


@pytest.mark.parametrize("path", PROFILE_NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebooks_are_clean_and_take_a_profile(path):
    nb = nbformat.read(path, as_version=4)
    assert not [c for c in nb.cells if c.cell_type == "code" and (c.outputs or c.execution_count)]
    declared = papermill.inspect_notebook(str(path))
    assert {"profile", "overrides"} <= set(declared)
    assert declared["profile"]["default"] == '"smoke"' and declared["overrides"]["default"] == "{}"
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert "run = Run.open(profile, **overrides)" in code[1], "the cell after parameters opens the run of the profile"


def test_comparison_notebook_is_clean():
    nb = nbformat.read(ROOT / "notebooks" / "06_compare_models.ipynb", as_version=4)
    assert not [c for c in nb.cells if c.cell_type == "code" and (c.outputs or c.execution_count)]


@pytest.mark.slow
def test_notebook_run_by_hand_does_not_touch_another_profiles_run(tmp_path, monkeypatch):
    # A notebook's defaults name the smoke profile; its run folder is the profile's, never a literal
    # in the notebook, so running 01 with another profile writes only that profile's folder.
    monkeypatch.setenv("OTINTERP_RUNS", str(tmp_path / "runs"))
    other = tmp_path / "mine.yaml"
    other.write_text((ROOT / "params" / "smoke.yaml").read_text().replace("per_group: 2", "per_group: 1"))
    out = tmp_path / "01.ipynb"
    papermill.execute_notebook(str(ROOT / "notebooks" / "01_dataset.ipynb"), str(out), cwd=str(ROOT / "notebooks"),
                               parameters={"profile": str(other)}, kernel_name="python3", progress_bar=False)
    assert (tmp_path / "runs" / "mine" / "pairs.parquet").is_file()
    assert not (tmp_path / "runs" / "smoke").exists()


def test_runner_command_line_fails_in_one_line_for_a_bad_profile(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "otinterp", "notebook", str(ROOT / "notebooks" / "01_dataset.ipynb"),
                           str(tmp_path / "out.ipynb"), "--profile", "nope"], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: unknown profile 'nope'")
