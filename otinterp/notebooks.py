"""Execute the notebooks headlessly with papermill, with one profile as the source of every parameter.

A notebook's ``parameters`` cell holds ``profile`` (a name or a YAML path) and ``overrides`` (a
dict), plus, for notebooks that need them, literals of their own (notebook 05's prompts). The
next cell calls :meth:`otinterp.run.Run.open`, so a notebook run by hand in JupyterLab, by
``papermill -p profile paper``, or by ``make paper`` sees the same values. :func:`execute` runs a
notebook in its own folder, as JupyterLab does, and streams its output to the terminal.

Command line (used by ``make paper``)::

    otinterp notebook notebooks/02_experiment.ipynb runs/smoke/notebooks/02_experiment.ipynb \\
        --profile smoke [--set seed=1]
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import papermill
from jupyter_client.manager import AsyncKernelManager

from otinterp import params as params_mod
from otinterp import products
__all__ = ["notebook_parameters", "execute", "run_notebook", "execute_compare"]

#: The names every notebook's parameters cell declares.
PROFILE_NAMES = ("profile", "overrides")


class LocalKernelManager(AsyncKernelManager):
    """A kernel reached over Unix sockets rather than TCP: headless runs open no network port
    (and the kernel has no reason to warn about unencrypted TCP on every notebook)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.transport = "ipc"


def notebook_parameters(notebook: str | Path, profile: str | Path, overrides: dict[str, Any] | None = None
                        ) -> dict[str, Any]:
    """The values for ``notebook``'s parameters cell: ``profile`` (as an absolute path) and ``overrides``.

    Raises
    ------
    ValueError
        If the notebook has no ``parameters`` cell or it does not declare ``profile`` and
        ``overrides``; for an unknown override name.
    FileNotFoundError
        For an unknown profile (naming those that exist).
    """
    declared = papermill.inspect_notebook(str(notebook))
    if not declared:
        raise ValueError(f"{notebook}: no cell tagged 'parameters'")
    missing = [n for n in PROFILE_NAMES if n not in declared]
    if missing:
        raise ValueError(f"{notebook}: its parameters cell must declare {' and '.join(PROFILE_NAMES)} "
                         f"(missing {', '.join(missing)})")
    overrides = dict(overrides or {})
    path = params_mod.profile_file(profile).resolve()
    params_mod.load(path, **overrides)  # a bad profile or override fails here, before the kernel starts
    return {"profile": str(path), "overrides": overrides}


def _papermill(source: Path, output: Path, parameters: dict[str, Any], *, log_output: bool) -> None:
    """Run ``source`` in its own folder with ``parameters``, writing ``output``, over a local kernel."""
    papermill.execute_notebook(
        str(source), str(output), parameters=parameters, cwd=str(source.parent), kernel_name="python3",
        log_output=log_output, progress_bar=False,
        **({"kernel_manager_class": LocalKernelManager} if os.name == "posix" else {}),
    )


def execute(notebook: str | Path, output: str | Path, profile: str | Path, overrides: dict[str, Any] | None = None, *,
            log_output: bool = False) -> None:
    """Run ``notebook`` with ``profile`` and ``overrides``; write the executed copy to ``output``.

    The executed notebook is written to a temporary file and renamed into place, so ``output``
    exists only when every cell ran. An older executed copy is removed when the run starts, so a
    failure leaves only ``*.failed.ipynb`` (the cells that ran, and the error) behind. Before the
    rename, what the notebook left in the run folder for later notebooks is recorded beside
    ``output`` (:func:`otinterp.products.record`), so ``make`` notices when it goes missing.
    """
    notebook, output = Path(notebook).resolve(), Path(output)
    parameters = notebook_parameters(notebook, profile, overrides)
    run_dir = params_mod.load(parameters["profile"], **parameters["overrides"]).run_dir
    output.parent.mkdir(parents=True, exist_ok=True)
    partial, failed = output.with_suffix(".partial.ipynb"), output.with_suffix(".failed.ipynb")
    for old in (failed, output, products.record_file(output)):
        old.unlink(missing_ok=True)
    try:
        _papermill(notebook, partial, parameters, log_output=log_output)
    except BaseException:
        if partial.exists():  # papermill saved the cells that ran, and the error: keep them to read
            os.replace(partial, failed)
        raise
    products.record(output, run_dir)
    os.replace(partial, output)


def run_notebook(source: str | Path, output: str | Path, profile: str | Path,
                 overrides: dict[str, Any] | None = None) -> None:
    """``otinterp notebook``: :func:`execute` with one line before and after on stderr.

    What the notebook writes to stderr (the experiment's progress lines, warnings) reaches the
    terminal as it is produced; its tables and figures stay in the executed notebook. A failed cell
    is one line naming the cell and the ``*.failed.ipynb`` to read, and exit status 1.
    """
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    source, output = Path(source), Path(output)
    name, start = source.stem, time.perf_counter()
    print(f"== {name} ({profile})", file=sys.stderr, flush=True)
    try:
        execute(source, output, profile, overrides, log_output=True)
    except papermill.PapermillExecutionError as err:
        print(f"error: {name} failed in cell {err.exec_count}: {err.ename}: {err.evalue} "
              f"(see {output.with_suffix('.failed.ipynb')})", file=sys.stderr)
        raise SystemExit(1) from None
    print(f"== {name} done in {time.perf_counter() - start:.0f} s -> {output}", file=sys.stderr, flush=True)


def execute_compare(source: str | Path, output: str | Path, *, runs: dict[str, str],
                    figures_dir: str | Path) -> None:
    """``otinterp compare``: notebook 06 on ``runs`` (label → run folder; empty: every finished run
    under the runs folder), writing its tables and figures to ``figures_dir``."""
    source, output = Path(source).resolve(), Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    print(f"== {source.stem}", file=sys.stderr, flush=True)
    try:
        _papermill(source, output, {"runs": runs, "figures_dir": str(Path(figures_dir).resolve())}, log_output=True)
    except papermill.PapermillExecutionError as err:
        print(f"error: {source.stem} failed in cell {err.exec_count}: {err.ename}: {err.evalue} (see {output})",
              file=sys.stderr)
        raise SystemExit(1) from None
    print(f"== {source.stem} done -> {output}; tables and figures in {figures_dir}", file=sys.stderr, flush=True)
