"""The manifest: the settings a results folder belongs to and its first run's provenance.

The parts are the truth (docs/definitions.md §11): :func:`open_results` never writes a manifest
that disagrees with the parts present, and rebuilds a missing (or, on repair, damaged) one from
them.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from otinterp.params import Params
from otinterp.store.errors import DamagedResults
from otinterp.store.index import ResultIndex
from otinterp.store.keys import differences, result_key, settings_sha256
from otinterp.store.parts import Part
from otinterp.store.records import PROVENANCE_FIELDS, first_record, now, provenance, read_json, write_json

__all__ = ["read_manifest", "open_results", "check_settings", "manifest_params", "trace_note"]


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest at ``path``.

    Raises
    ------
    DamagedResults
        For a manifest that cannot be read (naming it and the repair).
    ValueError
        For a folder made by an otinterp older than the per-pair results (not repairable).
    """
    path = Path(path)
    try:
        manifest = json.loads(path.read_text())
        if isinstance(manifest, dict) and "result_key" in manifest.get("key", {}):
            raise ValueError(f"{path.parent} was made by an older otinterp (results batched across pairs, not "
                             "keyed by settings alone); use another run folder or remove it")
        if not isinstance(manifest["key"], dict) or not isinstance(manifest["key_sha256"], str):
            raise TypeError("its settings key is not a mapping and a hash")
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as err:
        raise DamagedResults(
            f"{path} is damaged ({type(err).__name__}: {err}); run again with --repair to rebuild it from the parts "
            "(allowed only if they were made with the settings asked)") from None
    return manifest


def check_settings(out_dir: str | Path, manifest: dict[str, Any], key: dict[str, Any]) -> None:
    """Refuse, in one line naming each setting that differs, settings ``key`` other than the manifest's."""
    diffs = differences(manifest["key"], key)
    if diffs:
        raise ValueError(f"{out_dir} holds results of other settings ({'; '.join(diffs)}); use another run folder "
                         "(--set run_dir=…) or remove it")


def open_results(out_dir: str | Path, params: Params, pairs: pd.DataFrame, *,
                 repair: bool = False) -> tuple[dict[str, Any], ResultIndex]:
    """Open ``out_dir`` for a run with ``params``: its manifest and the index of its parts.

    The rule (docs/definitions.md §11): settings other than the manifest's are refused; parts of
    other settings than those asked are refused (and never moved); a missing manifest is created
    (rebuilt from the parts when there are any, keeping the provenance their run records hold);
    a damaged manifest is an error, or with ``repair=True`` rebuilt in the same way. With
    ``repair=True`` damaged parts are moved to ``damaged/``. A new manifest is written under a
    temporary name and hard-linked into place, so of two processes starting together exactly one
    creates it and the other reads a complete file.

    Raises
    ------
    ValueError
        One line naming each setting that differs (``steps: 8 there, 6 now`` for the manifest,
        ``steps: 8 in the parts, 6 asked`` for the parts).
    DamagedResults
        For a damaged manifest (without ``repair``) or part (without ``repair``), named.
    """
    out_dir = Path(out_dir)
    key = result_key(params)
    path = out_dir / "manifest.json"
    manifest, damage = _existing(path)
    if manifest is not None:
        check_settings(out_dir, manifest, key)
    elif damage is not None and not repair:
        raise damage
    index = ResultIndex(out_dir, key, repair=repair)
    if manifest is not None:
        return manifest, index
    why = "was damaged" if damage is not None else "was missing"
    rebuilding = damage is not None or bool(index.parts)
    manifest = _new_manifest(out_dir, key, params, pairs, index.parts, why if rebuilding else None)
    out_dir.mkdir(parents=True, exist_ok=True)
    if damage is not None:
        write_json(manifest, path)
    elif not _create(path, manifest):  # another process created it first
        manifest = read_manifest(path)
        check_settings(out_dir, manifest, key)
        return manifest, index
    if "rebuilt" in manifest:
        print(f"rebuilt {path} from {len(index.parts)} part(s) of the settings asked (it {why}; provenance from "
              f"{manifest['rebuilt']['provenance']})", flush=True)
    return manifest, index


def _existing(path: Path) -> tuple[dict[str, Any] | None, DamagedResults | None]:
    """The manifest at ``path`` or None, and the damage found instead of it or None."""
    if not path.exists():
        return None, None
    try:
        return read_manifest(path), None
    except DamagedResults as err:
        return None, err


def _new_manifest(out_dir: Path, key: dict[str, Any], params: Params, pairs: pd.DataFrame, parts: list[Part],
                  why: str | None) -> dict[str, Any]:
    """A manifest for ``key``: this run's provenance, or, when rebuilding (``why``), the oldest run
    record's of these settings (this run's if none is left), marked ``rebuilt``."""
    key_sha = settings_sha256(key)
    head = {"key": key, "key_sha256": key_sha}
    if why is None:
        return {**head, "created": now(), **provenance(params, pairs)}
    found = first_record(out_dir, key_sha, {p.run for p in parts if p.run})
    if found is None:
        origin, created, record = "this run (no record of an earlier one is left)", now(), provenance(params, pairs)
    else:
        name, record = found
        origin, created = f"runs/{name}", record.get("started", record.get("time"))
    return {**head, "created": created, **{k: record[k] for k in PROVENANCE_FIELDS if k in record},
            "rebuilt": {"time": now(), "why": f"manifest.json {why}", "parts": len(parts), "provenance": origin}}


def _create(path: Path, manifest: dict[str, Any]) -> bool:
    """Create ``path`` exclusively, written whole; False if it exists."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, default=str))
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def manifest_params(out_dir: str | Path, params: Params | None = None) -> Params:
    """The parameters to re-render the results in ``out_dir`` with, exactly as they were scored.

    With ``params`` (the current profile's): check that its settings are the results' (a one-line
    ``ValueError`` naming each difference otherwise) and take the speed options that change images
    at float rounding (``channels_last``, ``compile_unet``, ``batch_size``) from the first run, the
    rest (file paths, device, paths, seeds) from ``params``; settings renamed since the record
    was written are read under their new names. Without it: the first run's parameters
    as recorded (for comparing finished runs, see :mod:`otinterp.compare`).
    """
    from otinterp.params import make, upgrade

    manifest = read_manifest(Path(out_dir) / "manifest.json")
    recorded = upgrade(manifest["params"], str(Path(out_dir) / "manifest.json"), warn=False)
    if params is None:
        gone = sorted(set(recorded) - set(Params.__dataclass_fields__))
        if gone:  # recorded by an older otinterp, unknown to this one: said, not dropped silently
            warnings.warn(f"{out_dir}: recorded setting(s) {', '.join(gone)} are unknown to this otinterp and "
                          "left out of the parameters read back", UserWarning, stacklevel=2)
        return make(**{k: v for k, v in recorded.items() if k in Params.__dataclass_fields__})
    diffs = differences(manifest["key"], result_key(params))
    if diffs:
        raise ValueError(f"{out_dir} holds results of other settings than profile {params.profile!r} "
                         f"({'; '.join(diffs)})")
    return params.replace(**{k: recorded[k] for k in ("channels_last", "compile_unet", "batch_size") if k in recorded})


def trace_note(out_dir: str | Path) -> str:
    """One line that ties a table or figure to its results: folder, settings hash, code versions.

    The code versions are every git commit that ran on the folder (the manifest's and each run
    record's), marked when a tree had uncommitted changes; a rebuilt manifest is said so.
    """
    out_dir = Path(out_dir)
    manifest = read_manifest(out_dir / "manifest.json")
    records = [manifest] + [r for p in sorted(out_dir.glob("runs/*.json")) if isinstance(r := read_json(p), dict)]
    versions: dict[str, bool] = {}
    for record in records:
        git = record.get("git") or {}
        commit = (git.get("commit") or "unknown")[:12]
        versions[commit] = versions.get(commit, False) or bool(git.get("dirty"))
    code = ", ".join(c + (" (uncommitted changes)" if dirty else "") for c, dirty in versions.items())
    rebuilt = f" (manifest rebuilt {manifest['rebuilt']['time']})" if "rebuilt" in manifest else ""
    return f"results {out_dir}, settings {manifest['key_sha256'][:12]}{rebuilt}, code {code}"
