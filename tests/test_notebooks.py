"""The papermill runner: which values reach a notebook's parameters cell."""

from pathlib import Path

import nbformat
import pytest

from otinterp import params
from otinterp.notebooks import notebook_parameters

ROOT = Path(__file__).resolve().parents[1]
META = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"}}


def notebook(tmp_path, source):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source, metadata={"tags": ["parameters"]})],
                                  metadata=META)
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    return path


def test_only_declared_names_are_passed_and_paths_are_absolute(tmp_path):
    nb = notebook(tmp_path, 'seed = 0\nrun_dir = "../runs/smoke"\ncxc_paths = []\npairs_csv = None\nmodel = "tiny"')
    (tmp_path / "models" / "sd").mkdir(parents=True)
    p = params.make(seed=3, run_dir="runs/x", cxc_paths=["data/a.csv"], model="models/sd")
    got = notebook_parameters(nb, p, root=tmp_path)
    assert got == {"seed": 3, "run_dir": str(tmp_path / "runs" / "x"), "cxc_paths": [str(tmp_path / "data" / "a.csv")],
                   "pairs_csv": None, "model": str(tmp_path / "models" / "sd")}
    assert notebook_parameters(nb, p.replace(model="tiny"), root=tmp_path)["model"] == "tiny"


def test_unknown_parameter_names_are_errors(tmp_path):
    nb = notebook(tmp_path, "seed = 0\nnum_steps = 10")
    with pytest.raises(ValueError, match=r"nb.ipynb: parameters cell names 'num_steps', not fields of Params"):
        notebook_parameters(nb, params.make())


def test_notebook_without_parameters_cell(tmp_path):
    nb = tmp_path / "bare.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")],
                                            metadata=META), nb)
    with pytest.raises(ValueError, match="no cell tagged 'parameters'"):
        notebook_parameters(nb, params.make())


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.stem)
def test_committed_notebooks_are_clean_and_their_parameters_are_fields(path):
    nb = nbformat.read(path, as_version=4)
    assert not [c for c in nb.cells if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert notebook_parameters(path, params.load(ROOT / "params" / "paper.yaml"))
