"""The results folder: a manifest of the settings, parts of rows, claims, provenance (docs/definitions.md §11).

A results folder is tied to the settings that decide the numbers (:meth:`Params.result_key`) and
to nothing else: the pair table may grow, shrink or change between runs. Its layout::

    manifest.json         the settings key, created exclusively by the first run, and that run's
                          full provenance (parameters, profile text, pair table, versions, git)
    runs/<id>.json        one record per invocation: provenance, shard, images rendered, images/s
    parts/part-*.parquet  result rows, written atomically; each part's schema metadata holds the
                          settings key, its units (pair key, latent seed) and couplings
    locks/<unit>.lock     a unit being rendered (held by host/pid, refreshed while working)
    damaged/              parts moved aside by ``repair`` (their units are rendered again)

A *unit* is one pair (identified by :func:`pair_key`, a hash of its id and both prompts) under one
initial latent (``seed``). Its rows are the couplings rendered for it. Rows of pairs that are no
longer in the pair table stay on disk but are not returned by :func:`load_results`.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from otinterp.io import atomic_write
from otinterp.params import Params, profile_text

__all__ = [
    "pair_key", "pair_keys", "pairs_sha256", "settings_sha256", "open_results", "read_manifest", "manifest_params", "trace_note",
    "ResultIndex", "write_part", "Claims", "start_record", "finish_record", "measured_rate",
    "load_results", "DamagedResults",
]

_VERSIONED = ("otinterp", "torch", "diffusers", "transformers", "lpips", "pot", "scipy", "numpy")
_META = b"otinterp"

#: Offline specs whose speed stands for a released model's (same architecture, random weights).
SAME_ARCHITECTURE = {"sd15-random": "stable-diffusion-v1-5/stable-diffusion-v1-5"}

#: A lock not refreshed for this long is stale (its worker died on another machine).
LOCK_STALE_S = 30 * 60


class DamagedResults(ValueError):
    """A results folder's file cannot be used; the message names it and the repair."""


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


def settings_sha256(key: dict[str, Any]) -> str:
    """SHA-256 of a settings key (sorted JSON)."""
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


# --- provenance -------------------------------------------------------------------------------

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
    """Everything needed to trace a result back: parameters, profile, pairs, code, machine."""
    text, sha = profile_text(params)
    return {
        "params": params.to_dict(), "profile": params.profile, "profile_text": text, "profile_sha256": sha,
        "pairs_sha256": pairs_sha256(pairs), "n_pairs": len(pairs), "versions": _versions(), "git": _git(),
        "device_name": device_name(params.device), "host": socket.gethostname(),
        "python": platform.python_version(), "time": _now(),
    }


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


# --- the manifest -----------------------------------------------------------------------------

def read_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest at ``path``; a damaged one is a :class:`DamagedResults` naming it."""
    path = Path(path)
    try:
        manifest = json.loads(path.read_text())
        if isinstance(manifest, dict) and "result_key" in manifest.get("key", {}):
            raise DamagedResults(f"{path.parent} was made by an older otinterp (results batched across pairs, not "
                             "keyed by settings alone); use another run folder or remove it")
        manifest["key"], manifest["key_sha256"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as err:
        raise DamagedResults(
            f"{path} is damaged ({type(err).__name__}: {err}); run again with --repair to rewrite it from "
            "the current settings (allowed only if every part was made with them)") from None
    return manifest


def open_results(out_dir: str | Path, params: Params, pairs: pd.DataFrame, *, repair: bool = False) -> dict[str, Any]:
    """Create ``out_dir/manifest.json`` exclusively, or check that the existing one has our settings.

    The file is written completely under a temporary name and hard-linked into place, so of two
    processes starting together exactly one creates it and the other reads a complete file.

    Raises
    ------
    ValueError
        One line naming each setting that differs (``steps: 8 there, 6 now``).
    DamagedResults
        For a manifest that cannot be read (``repair=True`` rewrites it when every part agrees).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    key = params.result_key()
    manifest = {"key": key, "key_sha256": settings_sha256(key), "created": _now(), **provenance(params, pairs)}
    path = out_dir / "manifest.json"
    tmp = out_dir / f".manifest.{os.getpid()}.{time.monotonic_ns()}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, default=str))
    try:
        os.link(tmp, path)
        return manifest
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    try:
        old = read_manifest(path)
    except DamagedResults:
        if not repair:
            raise
        try:  # every part must carry our key, or the manifest cannot be rebuilt from our settings
            ResultIndex(out_dir, manifest["key_sha256"], repair=False)
        except DamagedResults as err:
            raise DamagedResults(f"{path} is damaged and cannot be rewritten from the current settings: "
                                 f"{str(err).split('; run again')[0]}") from None
        atomic_write(lambda t: Path(t).write_text(json.dumps(manifest, indent=2, default=str)), path)
        return manifest
    diffs = _differences(old["key"], key)
    if diffs:
        raise ValueError(f"{out_dir} holds results of other settings ({'; '.join(diffs)}); "
                         "use another run folder or remove it")
    return old


def manifest_params(out_dir: str | Path, params: Params | None = None) -> Params:
    """The parameters to re-render the results in ``out_dir`` with, exactly as they were scored.

    With ``params`` (the current profile's): check that its settings are the results' (a one-line
    ``ValueError`` naming each difference otherwise) and take the speed options that change images
    at float rounding (``channels_last``, ``compile_unet``, ``batch_size``) from the first run, the
    rest (paths, device, couplings, seeds) from ``params``. Without it: the first run's parameters
    as recorded (for comparing finished runs, see :mod:`otinterp.compare`).
    """
    from otinterp.params import make

    manifest = read_manifest(Path(out_dir) / "manifest.json")
    recorded = manifest["params"]
    if params is None:  # fields an older version recorded and this one no longer has are left out
        return make(**{k: v for k, v in recorded.items() if k in Params.__dataclass_fields__})
    diffs = _differences(manifest["key"], params.result_key())
    if diffs:
        raise ValueError(f"{out_dir} holds results of other settings than profile {params.profile!r} "
                         f"({'; '.join(diffs)})")
    return params.replace(**{k: recorded[k] for k in ("channels_last", "compile_unet", "batch_size") if k in recorded})


def _differences(there: dict[str, Any], now: dict[str, Any]) -> list[str]:
    diffs = [f"{name}: {there.get(name)!r} there, {value!r} now" for name, value in now.items() if there.get(name) != value]
    return diffs + [f"{name}: {value!r} there, not a setting now" for name, value in there.items() if name not in now]


def trace_note(out_dir: str | Path) -> str:
    """One line that ties a table or figure to its results: folder, settings hash, code versions.

    The code versions are every git commit that ran on the folder (the manifest's and each run
    record's), marked when a tree had uncommitted changes.
    """
    out_dir = Path(out_dir)
    manifest = read_manifest(out_dir / "manifest.json")
    records = [manifest] + [r for p in sorted(out_dir.glob("runs/*.json")) if isinstance(r := _read_json(p), dict)]
    versions = {}
    for record in records:
        git = record.get("git") or {}
        commit = (git.get("commit") or "unknown")[:12]
        versions[commit] = versions.get(commit, False) or bool(git.get("dirty"))
    code = ", ".join(c + (" (uncommitted changes)" if dirty else "") for c, dirty in versions.items())
    return f"results {out_dir}, settings {manifest['key_sha256'][:12]}, code {code}"


# --- per-run records --------------------------------------------------------------------------

def start_record(out_dir: Path, params: Params, pairs: pd.DataFrame, shard: tuple[int, int]) -> Path:
    """Write ``runs/<id>.json`` for this invocation and return its path."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S")
    path = out_dir / "runs" / f"{stamp}-{socket.gethostname()}-{os.getpid()}.json"
    record = {**provenance(params, pairs), "shard": list(shard), "started": _now()}
    atomic_write(lambda t: Path(t).write_text(json.dumps(record, indent=2, default=str)), path)
    return path


def finish_record(path: Path, *, images: int, seconds: float, units: int) -> None:
    """Add what the run did to its record: units and images rendered, seconds, images per second."""
    record = json.loads(path.read_text())
    record.update(finished=_now(), units=units, images=images, seconds=round(seconds, 3),
                  images_per_s=images / seconds if images and seconds > 0 else None)
    atomic_write(lambda t: Path(t).write_text(json.dumps(record, indent=2, default=str)), path)


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
        record = _read_json(path)
        if isinstance(record, dict) and matches(record, record.get("params", {})):
            runs.append((record["images_per_s"], f"{path.name} on {name}"))
    for path in map(Path, benchmarks):
        records = _read_json(path) if path.is_file() else None
        for record in records if isinstance(records, list) else []:
            if isinstance(record, dict) and matches(record, record):
                benched.append((record["images_per_s"], f"benchmark {path} on {name}"))
    return (runs or benched or [None])[-1]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None


# --- parts ------------------------------------------------------------------------------------

def _part_meta(path: Path) -> dict[str, Any]:
    meta = (pq.read_schema(path).metadata or {}).get(_META)
    if meta is None:
        raise DamagedResults(f"{path} is not an otinterp part (no settings record)")
    return json.loads(meta)


def write_part(out_dir: Path, rows: pd.DataFrame, units: Sequence[tuple[str, int]], couplings: Sequence[str],
               key_sha: str, run: str) -> Path:
    """Write ``rows`` as one part, atomically, recording the settings key, units and couplings."""
    meta = {"key_sha256": key_sha, "units": [list(u) for u in units], "couplings": list(couplings), "run": run}
    table = pa.Table.from_pandas(rows, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), _META: json.dumps(meta).encode()})
    name = "part-" + hashlib.sha256(json.dumps(meta["units"] + [meta["couplings"]]).encode()).hexdigest()[:16]
    return atomic_write(lambda tmp: pq.write_table(table, tmp), out_dir / "parts" / f"{name}.parquet")


@dataclass
class ResultIndex:
    """Which couplings of which units a results folder holds; checks every part it reads.

    A part that cannot be read, carries other settings, is empty or holds other rows than its
    record says is a :class:`DamagedResults` naming it, or, with ``repair=True``, is moved to
    ``damaged/`` (its units are then rendered again).
    """

    out_dir: Path
    key_sha: str
    repair: bool = False
    done: dict[tuple[str, int], set[str]] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        self.refresh()

    def refresh(self) -> None:
        """Read the parts written since the last call (by this or another process)."""
        seen = set(self.files)
        for path in sorted((self.out_dir / "parts").glob("part-*.parquet")):
            if path in seen:
                continue
            try:
                units = self._check(path)
            except DamagedResults as err:
                if not self.repair:
                    raise DamagedResults(f"{err}; run again with --repair (repair=True) to move it to "
                                         f"{self.out_dir / 'damaged'} and render its pairs again") from None
                (self.out_dir / "damaged").mkdir(exist_ok=True)
                shutil.move(path, self.out_dir / "damaged" / path.name)
                print(f"moved the damaged part {path.name} to damaged/ ({err})", flush=True)
                continue
            self.files.append(path)
            for unit, couplings in units.items():
                self.done.setdefault(unit, set()).update(couplings)

    def _check(self, path: Path) -> dict[tuple[str, int], set[str]]:
        try:
            meta = _part_meta(path)
            rows = pq.read_table(path, columns=["pair_key", "seed", "coupling"]).to_pandas()
        except (pa.ArrowInvalid, OSError, json.JSONDecodeError, KeyError) as err:
            raise DamagedResults(f"{path} cannot be read ({type(err).__name__}: {str(err).splitlines()[0]})") from None
        if meta["key_sha256"] != self.key_sha:
            raise DamagedResults(f"{path} was made with other settings than {self.out_dir / 'manifest.json'}")
        expected = {(k, int(s), c) for k, s in meta["units"] for c in meta["couplings"]}
        found = set(zip(rows["pair_key"], rows["seed"].astype(int), rows["coupling"]))
        if not expected or found != expected or len(rows) != len(expected):
            raise DamagedResults(f"{path} holds {len(rows)} rows where its record names {len(expected)}")
        units: dict[tuple[str, int], set[str]] = {}
        for k, s in meta["units"]:
            units.setdefault((k, int(s)), set()).update(meta["couplings"])
        return units

    def missing(self, unit: tuple[str, int], couplings: Iterable[str]) -> list[str]:
        """The couplings of ``unit`` not yet on disk, in the order given."""
        have = self.done.get(unit, set())
        return [c for c in couplings if c not in have]


# --- claims -----------------------------------------------------------------------------------

class Claims:
    """Exclusive lock files ``locks/<unit>.lock``, so that workers can join late or be preempted.

    A lock names its host and process and is refreshed while its worker renders; one whose process
    is gone (same host) or that was not refreshed for :data:`LOCK_STALE_S` seconds is taken over.
    """

    def __init__(self, out_dir: Path) -> None:
        self.folder = Path(out_dir) / "locks"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.held: list[Path] = []
        self.me = {"host": socket.gethostname(), "pid": os.getpid()}

    def _path(self, unit: tuple[str, int]) -> Path:
        return self.folder / f"{unit[0]}-{unit[1]}.lock"

    def claim(self, unit: tuple[str, int]) -> bool:
        """Take ``unit``'s lock; False if another live worker holds it.

        A lock is written whole under a temporary name and hard-linked into place, so it is never
        seen empty. A stale lock is renamed to a name of our own and checked to be the very file
        judged stale (same inode and time); if a fresh lock was moved instead, it is put back.
        """
        path = self._path(unit)
        if self._create(path):
            return True
        seen = self._stale(path)
        if seen is None:
            return False
        grave = path.with_name(f".{path.name}.{self.me['host']}.{self.me['pid']}.stale")
        try:
            os.rename(path, grave)
        except FileNotFoundError:  # another worker took it over first
            return False
        moved = os.stat(grave)
        if (moved.st_ino, moved.st_mtime_ns) != (seen.st_ino, seen.st_mtime_ns):  # a fresh lock: put it back
            try:
                os.link(grave, path)
            except FileExistsError:
                pass
            grave.unlink(missing_ok=True)
            return False
        grave.unlink(missing_ok=True)
        return self._create(path)

    def _create(self, path: Path) -> bool:
        tmp = path.with_name(f".{path.name}.{self.me['host']}.{self.me['pid']}.tmp")
        tmp.write_text(json.dumps({**self.me, "time": _now()}))
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)
        self.held.append(path)
        return True

    def _stale(self, path: Path) -> os.stat_result | None:
        """The lock file's status if it is stale (its process is gone, or it was not refreshed for
        :data:`LOCK_STALE_S` seconds), else None."""
        try:
            status = path.stat()
            owner = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError):  # locks are written whole: an unreadable one is debris
            return path.stat() if path.exists() else None
        if owner.get("host") == self.me["host"]:
            if owner.get("pid") == self.me["pid"]:
                return status
            try:
                os.kill(owner["pid"], 0)
            except ProcessLookupError:
                return status
            except (PermissionError, KeyError, TypeError):
                pass
        return status if time.time() - status.st_mtime > LOCK_STALE_S else None

    def refresh(self) -> None:
        """Mark the held locks as alive."""
        for path in self.held:
            path.touch(exist_ok=True)

    def release(self, unit: tuple[str, int] | None = None) -> None:
        """Remove ``unit``'s lock, or every held lock."""
        for path in [self._path(unit)] if unit is not None else list(self.held):
            path.unlink(missing_ok=True)
            self.held.remove(path)


# --- reading ----------------------------------------------------------------------------------

def load_results(out_dir: str | Path, pairs: pd.DataFrame | None = None, *, params: Params | None = None,
                 repair: bool = False) -> pd.DataFrame:
    """The result rows in ``out_dir``: one per (pair, latent seed, coupling), with the path measures
    derived from the stored LPIPS distances (:func:`otinterp.ppl.add_measures`).

    Parameters
    ----------
    out_dir : path
        A results folder.
    pairs : DataFrame, optional
        The current pair table: only its pairs are returned (in its order), with its prompts,
        scores, groups and ``draw`` (each pair's place in its group's sampled order, which the
        caption-disjoint subset follows). Without it, every row on disk, sorted by pair id.
    params : Params, optional
        Keep only its latent seeds and couplings.
    repair : bool
        Move damaged parts aside instead of raising.

    Raises
    ------
    FileNotFoundError
        If there is no results folder or it holds no parts.
    DamagedResults
        For a damaged manifest or part (named).
    """
    from otinterp.couplings import PATHS
    from otinterp.ppl import add_measures

    out_dir = Path(out_dir)
    if not (out_dir / "manifest.json").is_file():
        raise FileNotFoundError(f"results folder {out_dir} does not exist: run the experiment (notebook 02) first")
    index = ResultIndex(out_dir, read_manifest(out_dir / "manifest.json")["key_sha256"], repair=repair)
    if not index.files:
        raise FileNotFoundError(f"results folder {out_dir} holds no parts yet: run the experiment (notebook 02) first")
    df = pd.concat([pd.read_parquet(p) for p in index.files], ignore_index=True)
    df = df.drop_duplicates(["pair_key", "seed", "coupling"], ignore_index=True)
    if params is not None:
        df = df[df["seed"].isin(params.latent_seeds) & df["coupling"].isin(params.couplings)]
    if pairs is not None:
        if params is not None and params.max_pairs is not None:  # a pilot's pairs, as the run drew them
            from otinterp.data import balanced_subset

            pairs = balanced_subset(pairs, params.max_pairs)
        current = pairs.assign(pair_key=pair_keys(pairs), _order=range(len(pairs)),
                               draw=pairs.groupby("group", sort=False).cumcount().to_numpy())
        current = current[["pair_key", "_order", "draw", "group", "score"]]
        df = df.drop(columns=["group", "score"]).merge(current, on="pair_key", how="inner")
    else:
        df = df.assign(_order=df["pair_id"].rank(method="dense"))
    order = {c: i for i, c in enumerate(PATHS)}
    df = df.assign(_c=df["coupling"].map(order)).sort_values(["_order", "seed", "_c"], ignore_index=True)
    return add_measures(df.drop(columns=["_order", "_c"]))
