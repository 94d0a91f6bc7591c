"""Parts: parquet files of result rows that each record the settings and the units they hold.

A part's schema metadata (under ``otinterp``) is its record:

- version 3 (:data:`SCHEMA_VERSION`): ``schema_version``, the settings ``key`` itself and its
  ``key_sha256``, the ``units`` (pair key, latent seed), the ``paths`` and the ``run`` that
  wrote it; the rows name their path in a column ``path``;
- version 2: the same, with ``couplings`` for ``paths`` and the rows' column ``coupling``;
- version 1 (no ``schema_version``): version 2 without the settings themselves, only their hash.

Each version has a reader; all give a :class:`Part`, and :func:`read_rows` gives every version's
rows in the current layout, so an old valid part is read as it is: never damaged, never rendered
again, never moved.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from otinterp.io import atomic_write
from otinterp.store.errors import DamagedResults
from otinterp.store.keys import settings_sha256

__all__ = ["SCHEMA_VERSION", "Part", "write_part", "read_part", "read_rows"]

#: The version of the part record this otinterp writes.
SCHEMA_VERSION = 3

_META = b"otinterp"

Unit = tuple[str, int]


@dataclass(frozen=True)
class Part:
    """A part's record, after checking it against the part's rows.

    Attributes
    ----------
    key : dict or None
        The settings the part was made with; None for a version-1 part (only ``key_sha256``).
    units, paths
        The part holds one row per unit and path, and nothing else.
    path_column : str
        The rows' column naming the path: ``"path"``, or ``"coupling"`` in versions 1 and 2.
    """

    path: Path
    schema_version: int
    key_sha256: str
    key: dict[str, Any] | None
    units: tuple[Unit, ...]
    paths: tuple[str, ...]
    run: str | None
    path_column: str = "path"

    def done(self) -> dict[Unit, set[str]]:
        """``{unit: paths}`` this part holds."""
        return {unit: set(self.paths) for unit in self.units}


def write_part(out_dir: Path, rows: pd.DataFrame, units: Sequence[Unit], paths: Sequence[str],
               key: dict[str, Any], run: str) -> Path:
    """Write ``rows`` as one part under ``out_dir/parts``, atomically, with its version-3 record.

    The file's name hashes the settings, units and paths, so a part never replaces one of
    other settings, and writing the same units again replaces a part by an equal one.
    """
    meta = {"schema_version": SCHEMA_VERSION, "key": key, "key_sha256": settings_sha256(key),
            "units": [list(u) for u in units], "paths": list(paths), "run": run}
    table = pa.Table.from_pandas(rows, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                           _META: json.dumps(meta, default=str).encode()})
    name = "part-" + hashlib.sha256(json.dumps([meta["key_sha256"], meta["units"], meta["paths"]]).encode()
                                    ).hexdigest()[:16]
    return atomic_write(lambda tmp: pq.write_table(table, tmp), Path(out_dir) / "parts" / f"{name}.parquet")


def read_part(path: Path) -> Part:
    """The record of the part at ``path``, checked against its rows.

    Raises
    ------
    DamagedResults
        If the file cannot be read, has no or a malformed record, or holds other rows than its
        record names (none, missing, extra or repeated).
    ValueError
        For a part written by a newer otinterp (a record version this one cannot read).
    """
    try:
        raw = (pq.read_schema(path).metadata or {}).get(_META)
    except (pa.ArrowInvalid, OSError) as err:
        raise _unreadable(path, err) from None
    if raw is None:
        raise DamagedResults(f"{path} is not an otinterp part (no settings record)")
    try:
        meta = json.loads(raw)
        version = meta.get("schema_version", 1)
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as err:
        raise _bad_record(path, err) from None
    if isinstance(version, int) and version > SCHEMA_VERSION:
        raise ValueError(f"{path} was written by a newer otinterp (part schema version {version}, this one reads "
                         f"up to {SCHEMA_VERSION}); update otinterp")
    reader = _READERS.get(version) if isinstance(version, int) else None
    if reader is None:
        raise _bad_record(path, ValueError(f"schema_version {version!r}"))
    try:
        part = reader(path, meta)
    except (KeyError, TypeError, ValueError) as err:
        raise _bad_record(path, err) from None
    _check_rows(part)
    return part


def _read_v1(path: Path, meta: dict[str, Any]) -> Part:
    """The first layout: the settings hash, units, couplings and run; not the settings."""
    return Part(path, 1, _text(meta["key_sha256"]), None, _units(meta["units"]), _names(meta["couplings"]),
                meta.get("run"), "coupling")


def _read_keyed(path: Path, meta: dict[str, Any], version: int, names: str, column: str) -> Part:
    """A layout that records the settings themselves, which must hash to the recorded hash."""
    key = meta["key"]
    if not isinstance(key, dict) or settings_sha256(key) != meta["key_sha256"]:
        raise ValueError("its settings do not hash to its settings hash")
    return Part(path, version, _text(meta["key_sha256"]), key, _units(meta["units"]), _names(meta[names]),
                meta.get("run"), column)


_READERS: dict[int, Callable[[Path, dict[str, Any]], Part]] = {
    1: _read_v1,
    2: lambda path, meta: _read_keyed(path, meta, 2, "couplings", "coupling"),  # the first's, and the settings
    3: lambda path, meta: _read_keyed(path, meta, 3, "paths", "path"),  # slerp is a path, not a coupling
}


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {value!r}")
    return value


def _units(value: Any) -> tuple[Unit, ...]:
    units = tuple((_text(k), s) for k, s in value)
    if not all(type(s) is int for _, s in units):
        raise TypeError(f"latent seeds must be integers, got {[s for _, s in units]!r}")
    return units


def _names(value: Any) -> tuple[str, ...]:
    return tuple(_text(c) for c in value)


def _check_rows(part: Part) -> None:
    try:
        rows = pq.read_table(part.path, columns=["pair_key", "seed", part.path_column]).to_pandas()
    except (pa.ArrowInvalid, OSError, KeyError) as err:
        raise _unreadable(part.path, err) from None
    expected = {(k, s, c) for k, s in part.units for c in part.paths}
    found = set(zip(rows["pair_key"], rows["seed"].astype(int), rows[part.path_column]))
    if not expected or found != expected or len(rows) != len(expected):
        raise DamagedResults(f"{part.path} holds {len(rows)} rows where its record names {len(expected)}")


def read_rows(part: Part) -> pd.DataFrame:
    """The rows of ``part`` in the current layout, whatever its version (the path column ``path``)."""
    return pd.read_parquet(part.path).rename(columns={part.path_column: "path"})


def _unreadable(path: Path, err: Exception) -> DamagedResults:
    return DamagedResults(f"{path} cannot be read ({type(err).__name__}: {(str(err).splitlines() or [''])[0]})")


def _bad_record(path: Path, err: Exception) -> DamagedResults:
    return DamagedResults(f"{path} has a malformed settings record ({type(err).__name__}: {err})")
