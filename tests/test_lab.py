"""`make lab` works on copies in the run folder; the tracked notebooks stay clean."""

import hashlib
import os
import shutil
from pathlib import Path

import nbformat
import pytest

from otinterp import cli, lab

ROOT = Path(__file__).resolve().parents[1]
PROFILE_NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb") if not p.name.startswith("06_"))


def digests(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.ipynb"))}


@pytest.fixture
def runs(tmp_path, monkeypatch):
    monkeypatch.setenv("OTINTERP_RUNS", str(tmp_path / "runs"))
    return tmp_path / "runs"


def test_lab_copies_are_the_executed_notebooks_or_fresh_sources(runs):
    executed = runs / "smoke" / "notebooks" / "02_experiment.ipynb"
    executed.parent.mkdir(parents=True)
    executed.write_text((ROOT / "notebooks" / "02_experiment.ipynb").read_text().replace("Run (or resume)", "RAN"))
    sources = digests(ROOT / "notebooks")
    folder, notes = lab.prepare("smoke")
    assert folder == runs / "smoke" / "lab" and notes == []
    assert sorted(p.name for p in folder.glob("*.ipynb")) == PROFILE_NOTEBOOKS  # 06 takes no profile
    assert (folder / "02_experiment.ipynb").read_bytes() == executed.read_bytes()
    fresh = nbformat.read(folder / "01_dataset.ipynb", as_version=4)
    (injected,) = [c for c in fresh.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert f'profile = "{ROOT / "params" / "smoke.yaml"}"' in injected.source
    assert not [c for c in fresh.cells if c.cell_type == "code" and c.outputs]  # prepared, not run
    assert digests(ROOT / "notebooks") == sources


def test_lab_copies_are_never_replaced_and_outdated_ones_are_named(runs, tmp_path):
    sources = tmp_path / "notebooks"
    shutil.copytree(ROOT / "notebooks", sources)
    folder, _ = lab.prepare("smoke", sources)
    mine = folder / "03_statistics.ipynb"
    mine.write_text(mine.read_text().replace("Table 1", "my edit"))
    edited = mine.read_bytes()
    later = mine.stat().st_mtime + 10
    os.utime(sources / "03_statistics.ipynb", (later, later))
    _, notes = lab.prepare("smoke", sources)
    assert mine.read_bytes() == edited
    assert notes == [f"{mine} is older than {sources / '03_statistics.ipynb'}: delete it and run make lab again "
                     "for a fresh copy"]


def test_lab_command_prints_the_folder_and_fails_in_one_line(runs, capsys):
    cli.main(["lab", "--profile", "smoke"])
    assert capsys.readouterr().out.strip() == str(runs / "smoke" / "lab")
    with pytest.raises(SystemExit) as stop:
        cli.main(["lab", "--profile", "nope"])
    assert stop.value.code == 2 and capsys.readouterr().err.startswith("error: unknown profile 'nope'")

