"""Identities in a results folder: pair keys, settings hashes, and how two settings differ."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["pair_key", "pair_keys", "pairs_sha256", "model_identity", "result_key", "settings_sha256", "differences"]


def pair_key(pair_id: str, prompt_a: str, prompt_b: str) -> str:
    """A pair's identity in a results folder: a hash of its id and both prompts.

    Editing a prompt makes a new key (the pair is rendered again); changing only its score or
    group does not (those are read from the current pair table).
    """
    return hashlib.sha256("\x1f".join((pair_id, prompt_a, prompt_b)).encode()).hexdigest()[:20]


def pair_keys(pairs: pd.DataFrame) -> list[str]:
    """:func:`pair_key` of every row of a pair table, in its order."""
    return [pair_key(*r) for r in pairs[["pair_id", "prompt_a", "prompt_b"]].itertuples(index=False)]


def pairs_sha256(pairs: pd.DataFrame) -> str:
    """SHA-256 of a pair table's ids, prompts, scores and groups (its provenance fingerprint)."""
    cols = [c for c in ("pair_id", "prompt_a", "prompt_b", "score", "group") if c in pairs.columns]
    return hashlib.sha256(pairs[cols].to_csv(index=False).encode()).hexdigest()


def model_identity(model: str) -> str:
    """``model`` for a spec or hub id; for a local folder or file, its name and a fingerprint.

    A folder is fingerprinted by its ``model_index.json`` and the config files beside it, a single
    checkpoint file by its size (hashing gigabytes of weights would take minutes), so the same
    weights mounted elsewhere (a login node and a compute node, a moved repository) key the same.
    """
    path = Path(model)
    if not path.exists():
        return model
    digest = hashlib.sha256()
    if path.is_dir():
        for config in sorted(path.glob("*.json")) + sorted(path.glob("*/config.json")):
            digest.update(config.relative_to(path).as_posix().encode() + config.read_bytes())
    else:
        digest.update(str(path.stat().st_size).encode())
    return f"local:{path.name}@{digest.hexdigest()[:16]}"


def result_key(config: Any) -> dict[str, Any]:
    """The settings that decide a run's numbers (:data:`otinterp.params.RESULT_FIELDS`), the model
    by its :func:`model_identity`: the key a results folder is tied to."""
    from otinterp.params import RESULT_FIELDS

    return {name: model_identity(config.model) if name == "model" else getattr(config, name)
            for name in RESULT_FIELDS}


def _as_json(key: dict[str, Any]) -> str:
    return json.dumps(key, sort_keys=True, default=str)


def settings_sha256(key: dict[str, Any]) -> str:
    """SHA-256 of a settings key (sorted JSON)."""
    return hashlib.sha256(_as_json(key).encode()).hexdigest()


def differences(there: dict[str, Any], now: dict[str, Any], labels: tuple[str, str] = ("there", "now")) -> list[str]:
    """Each setting in which two settings keys differ, as ``"steps: 8 there, 6 now"``.

    Both keys are compared as they are stored (through JSON), so a tuple equals its list.
    ``labels`` name the two sides.
    """
    there, now = json.loads(_as_json(there)), json.loads(_as_json(now))
    old, new = labels
    diffs = [f"{name}: {there.get(name)!r} {old}, {value!r} {new}" for name, value in now.items()
             if there.get(name) != value]
    return diffs + [f"{name}: {value!r} {old}, not a setting {new}" for name, value in there.items() if name not in now]
