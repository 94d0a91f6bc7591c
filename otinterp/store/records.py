"""Provenance and run records: what ran, where, with which code, and how fast (``runs/<id>.json``)."""

from __future__ import annotations

import datetime
import json
import os
import platform
import socket
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd

from otinterp.io import atomic_write
from otinterp.params import Params, profile_text
from otinterp.store.keys import pairs_sha256, result_key, settings_sha256

__all__ = [
    "SAME_ARCHITECTURE", "PROVENANCE_FIELDS", "device_name", "provenance", "start_record", "finish_record",
    "first_record", "measured_rate",
]

_VERSIONED = ("otinterp", "torch", "diffusers", "transformers", "lpips", "pot", "scipy", "numpy")

#: Offline specs whose speed stands for a released model's (same architecture, random weights).
SAME_ARCHITECTURE = {"sd15-random": "stable-diffusion-v1-5/stable-diffusion-v1-5"}

#: The fields of :func:`provenance`, which the manifest and every run record hold.
PROVENANCE_FIELDS = ("params", "profile", "profile_text", "profile_sha256", "pairs_sha256", "n_pairs", "versions",
                     "git", "device_name", "host", "python", "time")


def now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def read_json(path: Path) -> Any:
    """The JSON in ``path``, or None if it cannot be read."""
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def write_json(record: dict[str, Any], path: Path) -> Path:
    """Write ``record`` to ``path`` atomically (indented, values JSON cannot hold as text)."""
    return atomic_write(lambda tmp: Path(tmp).write_text(json.dumps(record, indent=2, default=str)), path)


def _versions() -> dict[str, str]:
    out = {}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _git() -> dict[str, Any]:
    """The package's git commit and whether its tree had uncommitted changes (None outside git).

    New files not yet committed under ``otinterp/``, ``notebooks/`` or ``params/`` count as changes.
    """
    here = Path(__file__).parent

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True, cwd=here).stdout.strip()

    try:
        top = git("rev-parse", "--show-toplevel")
        tracked_changes = git("status", "--porcelain", "--untracked-files=no")
        new_files = git("status", "--porcelain", "--", *(f"{top}/{d}" for d in ("otinterp", "notebooks", "params")))
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(tracked_changes or new_files)}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}


def device_name(device: str) -> str:
    """A readable name of ``device``: the GPU's model for CUDA, the processor otherwise."""
    import torch

    if str(device).startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return platform.processor() or platform.machine() or "cpu"


def provenance(params: Params, pairs: pd.DataFrame) -> dict[str, Any]:
    """Everything needed to trace a result back: parameters, profile, pairs, code, machine
    (the keys of :data:`PROVENANCE_FIELDS`)."""
    text, sha = profile_text(params)
    return {
        "params": params.to_dict(), "profile": params.profile, "profile_text": text, "profile_sha256": sha,
        "pairs_sha256": pairs_sha256(pairs), "n_pairs": len(pairs), "versions": _versions(), "git": _git(),
        "device_name": device_name(params.device), "host": socket.gethostname(),
        "python": platform.python_version(), "time": now(),
    }


def start_record(out_dir: Path, params: Params, pairs: pd.DataFrame, shard: tuple[int, int]) -> Path:
    """Write ``runs/<id>.json`` for this invocation (its provenance, settings hash and shard); return its path."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S.%f")  # two runs in a second differ
    path = out_dir / "runs" / f"{stamp}-{socket.gethostname()}-{os.getpid()}.json"
    record = {**provenance(params, pairs), "key_sha256": settings_sha256(result_key(params)), "shard": list(shard),
              "started": now()}
    return write_json(record, path)


def finish_record(path: Path, *, images: int, seconds: float, units: int) -> None:
    """Add what the run did to its record: units and images rendered, seconds, images per second."""
    record = json.loads(path.read_text())
    record.update(finished=now(), units=units, images=images, seconds=round(seconds, 3),
                  images_per_s=images / seconds if images and seconds > 0 else None)
    write_json(record, path)


def first_record(out_dir: Path, key_sha: str, runs: Iterable[str]) -> tuple[str, dict[str, Any]] | None:
    """The oldest run record of the settings hashed ``key_sha``, and its file name; None if there is none.

    A record is of these settings if it says so (``key_sha256``) or if it wrote one of the parts
    named by ``runs`` (their ``run`` field: older records do not hold the settings hash).
    """
    runs = set(runs)
    for path in sorted(Path(out_dir).glob("runs/*.json")):  # named by start time: oldest first
        record = read_json(path)
        if (isinstance(record, dict) and "params" in record
                and (record.get("key_sha256") == key_sha or path.stem in runs)):
            return path.name, record
    return None


def measured_rate(out_dir: str | Path, params: Params, *, benchmarks: Sequence[str | Path] = ()) -> tuple[float, str] | None:
    """Images per second measured on this kind of device for these settings, and where.

    Looks at the run records in ``out_dir`` (``runs/*.json``), then at benchmark rate files
    (``bench/render_throughput.py --json``: a list of records), keeping only those of the same
    device name, model (or an offline spec of its architecture), image size, steps, K, dtype,
    scheduler, batch size and speed options. None if there are none.
    """
    name = device_name(params.device)
    keys = ("height", "width", "steps", "dtype", "scheduler", "n_intervals", "channels_last", "compile_unet")

    def matches(record: dict, settings: dict) -> bool:
        model = settings.get("model")
        batch = settings.get("batch_size_asked", settings.get("batch_size"))
        return (record.get("device_name") == name and bool(record.get("images_per_s"))
                and (model == params.model or SAME_ARCHITECTURE.get(model) == params.model)
                and batch == params.batch_size and all(settings.get(k) == getattr(params, k) for k in keys))

    runs, benched = [], []
    for path in sorted(Path(out_dir).glob("runs/*.json")):  # oldest first: the newest run wins
        record = read_json(path)
        if isinstance(record, dict) and matches(record, record.get("params", {})):
            runs.append((record["images_per_s"], f"{path.name} on {name}"))
    for path in map(Path, benchmarks):
        records = read_json(path) if path.is_file() else None
        for record in records if isinstance(records, list) else []:
            if isinstance(record, dict) and matches(record, record):
                benched.append((record["images_per_s"], f"benchmark {path} on {name}"))
    return (runs or benched or [None])[-1]
