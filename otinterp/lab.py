"""JupyterLab on copies of a profile's notebooks in its run folder (``make lab``).

``make lab PROFILE=p`` opens JupyterLab on ``<run_dir>/lab/`` (``runs/p/lab``), which holds a copy
of each notebook that takes a profile (00–05): the executed one from ``<run_dir>/notebooks/`` when
``make paper`` has run it (its outputs to read), else the source from ``notebooks/`` with the
profile filled in (a cell of injected parameters, as papermill writes). A copy already there is
never replaced: it is the user's, with their edits and outputs. The tracked ``notebooks/`` stay as
committed, and ``make paper`` neither reads nor writes ``lab/``, so it never runs or overwrites an
edited copy. A copy older than its source or its executed notebook is named on stderr: delete it
and run ``make lab`` again for a fresh one.

Command line (used by ``make lab``; prints the lab folder)::

    otinterp lab --profile PROFILE
"""

from __future__ import annotations

import shutil
from pathlib import Path

import papermill

from otinterp import params as params_mod
from otinterp.notebooks import PROFILE_NAMES, notebook_parameters

__all__ = ["lab_folder", "prepare"]


def lab_folder(P: params_mod.Params) -> Path:
    """The folder of the profile's lab copies: ``<run_dir>/lab``."""
    return Path(P.run_dir) / "lab"


def prepare(profile: str | Path, sources: str | Path = params_mod.REPO_ROOT / "notebooks") -> tuple[Path, list[str]]:
    """Copy into the lab folder of ``profile`` each notebook of ``sources`` that takes a profile and is not there yet.

    Parameters
    ----------
    profile : str or Path
        A profile name (``params/<name>.yaml``) or a YAML path.
    sources : str or Path
        The folder of the tracked notebooks.

    Returns
    -------
    folder : Path
        The lab folder (:func:`lab_folder`).
    notes : list of str
        One line per copy older than its source or its executed notebook.

    Raises
    ------
    FileNotFoundError, ValueError, TypeError
        For a bad profile (as :func:`otinterp.params.load`).
    """
    P = params_mod.load(profile)
    folder, executed_dir = lab_folder(P), Path(P.run_dir) / "notebooks"
    folder.mkdir(parents=True, exist_ok=True)
    notes = []
    for source in sorted(Path(sources).glob("*.ipynb")):
        if not set(PROFILE_NAMES) <= set(papermill.inspect_notebook(str(source))):
            continue  # 06 compares runs: it takes no profile
        copy, executed = folder / source.name, executed_dir / source.name
        if not copy.exists():
            _copy(source, executed, copy, P.profile_path)
        newer = [path for path in (source, executed) if path.is_file() and path.stat().st_mtime > copy.stat().st_mtime]
        if newer:
            notes.append(f"{copy} is older than {newer[-1]}: delete it and run make lab again for a fresh copy")
    return folder, notes


def _copy(source: Path, executed: Path, copy: Path, profile: str) -> None:
    """``executed`` to ``copy`` if ``make paper`` has run it, else ``source`` with ``profile`` injected."""
    if executed.is_file():
        shutil.copyfile(executed, copy)
    else:
        papermill.execute_notebook(str(source), str(copy), parameters=notebook_parameters(source, profile),
                                   prepare_only=True, progress_bar=False)
