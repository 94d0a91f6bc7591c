"""Identities in a results folder: pair keys, settings hashes, and how two settings differ."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pandas as pd

__all__ = ["pair_key", "pair_keys", "pairs_sha256", "settings_sha256", "differences"]


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
