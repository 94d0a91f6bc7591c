"""What notebooks 01 and 02 leave in the run folder, recorded as they finish, so ``make`` sees it change.

``make`` judges an executed notebook by file times alone: it cannot see that ``results/`` was
deleted, or a part moved to ``results/damaged/``, after notebook 02 ran. So the notebook runner
(:func:`otinterp.notebooks.execute`) writes, beside each executed notebook that has products
(:data:`PRODUCTS`), their listing (file names and sizes) in ``<notebook>.products.json``;
``otinterp settings --profile PROFILE --stale`` names the executed notebooks whose products no
longer match, and the Makefile runs those again (and so everything after them). Only the file
system's listing is read (a glob and a ``stat`` per file), never the files themselves.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from otinterp.io import atomic_write

__all__ = ["PRODUCTS", "listing", "record_file", "record", "change", "stale"]

#: Glob patterns, relative to the run folder, of what each notebook (by name) writes there and a
#: later notebook reads.
PRODUCTS: dict[str, tuple[str, ...]] = {
    "01_dataset": ("pairs.parquet",),
    "02_experiment": ("results/parts/part-*.parquet",),
}


def listing(run_dir: str | os.PathLike, notebook: str) -> dict[str, int]:
    """The products of ``notebook`` (a name such as ``"02_experiment"``) now in ``run_dir``.

    Returns
    -------
    files : dict of str to int
        Each file's path relative to ``run_dir`` (POSIX form) to its size in bytes, sorted by path;
        empty for a notebook without products.
    """
    run_dir = Path(run_dir)
    found = (path for pattern in PRODUCTS.get(notebook, ()) for path in run_dir.glob(pattern))
    return dict(sorted((path.relative_to(run_dir).as_posix(), path.stat().st_size) for path in found))


def record_file(executed: str | os.PathLike) -> Path:
    """Where the products of the executed notebook ``executed`` are recorded: ``<name>.products.json``."""
    return Path(executed).with_suffix(".products.json")


def record(executed: str | os.PathLike, run_dir: str | os.PathLike) -> None:
    """Record beside ``executed`` the products its notebook left in ``run_dir`` (nothing if it has none)."""
    name = Path(executed).stem
    if name in PRODUCTS:
        text = json.dumps(listing(run_dir, name), indent=1)
        atomic_write(lambda tmp: Path(tmp).write_text(text, encoding="utf-8"), record_file(executed))


def change(executed: str | os.PathLike, run_dir: str | os.PathLike) -> str | None:
    """How the products of ``executed`` differ from its record, or None when they do not.

    None too when ``executed`` does not exist (``make`` runs it anyway) or its notebook has no
    products. An executed notebook without a record (run before records were kept, or by hand)
    counts as changed.
    """
    executed = Path(executed)
    if executed.stem not in PRODUCTS or not executed.is_file():
        return None
    try:
        recorded = json.loads(record_file(executed).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return f"no readable record of what it wrote ({record_file(executed).name})"
    now = listing(run_dir, executed.stem)
    differences = {
        "gone": sorted(recorded.keys() - now.keys()),
        "new": sorted(now.keys() - recorded.keys()),
        "changed size": sorted(k for k in now.keys() & recorded.keys() if now[k] != recorded[k]),
    }
    said = [f"{names[0]}{f' and {len(names) - 1} more' if len(names) > 1 else ''} {what}"
            for what, names in differences.items() if names]
    return "; ".join(said) or None


def stale(run_dir: str | os.PathLike) -> dict[Path, str]:
    """The executed notebooks in ``run_dir/notebooks`` whose products changed since they ran, with how."""
    folder = Path(run_dir) / "notebooks"
    changes = {folder / f"{name}.ipynb": change(folder / f"{name}.ipynb", run_dir) for name in PRODUCTS}
    return {path: why for path, why in changes.items() if why is not None}
