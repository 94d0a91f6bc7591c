"""Execute the notebooks headlessly with papermill, injecting a profile's parameters.

Each notebook declares the parameters it uses as literals in its ``parameters`` cell; every name
there must be a field of :class:`otinterp.params.Params`. :func:`execute` passes the profile's
value for exactly those names, with path fields made absolute, and runs the notebook with its own
folder as the working directory, as JupyterLab does.

Command line (used by ``make paper``)::

    python -m otinterp.notebooks notebooks/02_experiment.ipynb runs/smoke/notebooks/02_experiment.ipynb \\
        --profile smoke [--set run_dir=/tmp/run --set seed=1]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any, Sequence

import papermill

from otinterp import params as params_mod
from otinterp.params import Params, parse_overrides

__all__ = ["notebook_parameters", "execute", "main"]

REPO_ROOT = Path(__file__).resolve().parents[1]


def notebook_parameters(notebook: str | Path, params: Params, *, root: str | Path = REPO_ROOT) -> dict[str, Any]:
    """The values of ``params`` for the names in ``notebook``'s parameters cell.

    Relative paths (path fields, and ``model`` when it names an existing folder or file) are
    resolved against ``root`` (the repository), see :meth:`Params.resolved`. A name that is not a
    parameter field is an error naming it and the notebook.
    """
    declared = papermill.inspect_notebook(str(notebook))
    if not declared:
        raise ValueError(f"{notebook}: no cell tagged 'parameters'")
    values = params.resolved(root).to_dict()
    unknown = sorted(set(declared) - set(values))
    if unknown:
        raise ValueError(f"{notebook}: parameters cell names {', '.join(map(repr, unknown))}, not fields of Params")
    return {name: values[name] for name in declared}


def execute(notebook: str | Path, output: str | Path, params: Params, *, root: str | Path = REPO_ROOT,
            log_output: bool = False) -> None:
    """Run ``notebook`` with ``params`` and write the executed copy to ``output``.

    The executed notebook is written to a temporary file and renamed into place, so ``output``
    exists only when every cell ran (``make`` then never mistakes a failed run for a done one).
    """
    notebook, output = Path(notebook).resolve(), Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial, failed = output.with_suffix(".partial.ipynb"), output.with_suffix(".failed.ipynb")
    failed.unlink(missing_ok=True)
    try:
        papermill.execute_notebook(
            str(notebook), str(partial), parameters=notebook_parameters(notebook, params, root=root),
            cwd=str(notebook.parent), kernel_name="python3", log_output=log_output, progress_bar=False,
        )
    except BaseException:
        if partial.exists():  # papermill saved the cells that ran, and the error: keep them to read
            os.replace(partial, failed)
        raise
    os.replace(partial, output)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m otinterp.notebooks", description=__doc__.split("\n\n")[0])
    parser.add_argument("notebook", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--profile", default="smoke", help="name of params/<profile>.yaml, or a path to a YAML file")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="override one parameter (YAML value), e.g. --set run_dir=/tmp/run")
    args = parser.parse_args(argv)
    path = Path(args.profile)
    if not path.suffix:
        path = REPO_ROOT / "params" / f"{args.profile}.yaml"
    params = params_mod.load(path, **parse_overrides(args.set))
    execute(args.notebook, args.output, params, log_output=True)


if __name__ == "__main__":
    main()
