"""Run profiles: one flat, typed, validated set of parameters, the single source of a run's settings.

A profile is a YAML file ``params/<name>.yaml`` of ``key: value`` lines; its name is the file's
name. Every key is a field of :class:`Params`; an unknown key or a value of the wrong type is an
error naming the key. The run folder and the figure folder follow from the name
(``runs/<name>``, ``figures/<name>`` under the repository, or under ``$OTINTERP_RUNS`` and
``$OTINTERP_FIGURES`` when set) unless the profile sets ``run_dir`` / ``figures_dir``. Relative
paths in a profile are relative to the repository (the folder above ``params/``). The notebooks,
the command line and ``make`` all reach a run through :meth:`otinterp.run.Run.open`, which calls
:func:`load`, so they agree.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import types
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml


__all__ = [
    "Params", "load", "make", "upgrade", "RENAMED", "profile_file", "profiles", "runs_root", "figures_root", "REPO_ROOT", "parse_overrides", "RESULT_FIELDS", "PATH_FIELDS", "RANDOM_WEIGHT_MODELS",
    "RANDOM_WEIGHTS_NOTE",
]


#: The repository: profiles live in ``REPO_ROOT / "params"``.
REPO_ROOT = Path(__file__).resolve().parents[1]

#: Model specs that :mod:`otinterp.models` builds offline with seeded random weights.
RANDOM_WEIGHT_MODELS = ("tiny", "sd15-random", "sd21-tiny", "sdxl-tiny", "sd3-tiny", "flux-tiny")

#: What every image, figure and table made from such a model must say.
RANDOM_WEIGHTS_NOTE = "random weights: images and numbers mean nothing"


@dataclass(frozen=True)
class Params:
    """Every parameter of a run (the defaults measure with the pretrained LPIPS backbone)."""

    # --- the run as a whole -----------------------------------------------------------------
    profile: str = "smoke"
    seed: int = 0
    model: str = "tiny"
    model_config: Optional[str] = None  # a local diffusers folder that lets a single-file checkpoint load offline
    device: str = "cpu"
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    run_dir: Optional[str] = None      # None: runs/<profile>
    figures_dir: Optional[str] = None  # None: figures/<profile>
    profile_path: Optional[str] = None  # the YAML file the values came from (set by load)

    # --- 00 permutation invariance ----------------------------------------------------------
    invariance_prompts: list[str] = field(
        default_factory=lambda: ["a photo of a cat", "a red double decker bus on a city street"]
    )
    n_perms: int = 3
    invariance_timesteps: list[int] = field(default_factory=lambda: [999, 500, 1])
    invariance_rtol: float = 1e-4

    # --- 01 dataset -------------------------------------------------------------------------
    pairs_source: Literal["bundled", "cxc", "csv"] = "bundled"
    cxc_paths: list[str] = field(
        default_factory=lambda: ["data/cxc/sts_val.csv", "data/cxc/sts_test.csv"]
    )
    karpathy_path: str = "data/dataset_coco.json"
    pairs_csv: Optional[str] = None
    per_group: int = 1000
    disjoint_captions: bool = False

    # --- 02 experiment ----------------------------------------------------------------------
    n_intervals: int = 4
    steps: int = 8
    guidance: float = 7.5
    scheduler: Literal["default", "ddim", "dpm-solver++", "euler"] = "default"
    seeds: Optional[list[int]] = None
    paths: list[str] = field(default_factory=lambda: ["ot", "clip", "random"])
    height: int = 64
    width: int = 64
    batch_size: Union[int, Literal["auto"]] = 32
    max_pairs: Optional[int] = None
    lpips_net: Literal["alex", "vgg", "squeeze"] = "alex"
    lpips_backbone: Literal["pretrained", "random"] = "pretrained"
    lpips_resize: Optional[int] = None
    pairs_per_part: int = 8
    strip_pair_ids: list[str] = field(default_factory=list)
    channels_last: bool = False
    compile_unet: bool = False
    rates_path: Optional[str] = None  # a benchmark's rates (bench/render_throughput.py --json) for the time estimate

    # --- 03 statistics, 04 figures ----------------------------------------------------------
    alpha: float = 0.05
    min_effect: float = 0.1
    n_figure_pairs: int = 2
    figure_pair_ids: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _check_type(f.name, getattr(self, f.name), _hints()[f.name])
        positive = ("n_perms", "per_group", "n_intervals", "steps", "height", "width", "batch_size",
                    "pairs_per_part", "max_pairs", "lpips_resize", "n_figure_pairs")
        for name in positive:
            value = getattr(self, name)
            if value is not None and value != "auto" and value < 1:
                raise ValueError(f"parameter {name!r} must be >= 1, got {value}")
        if self.seed < 0:
            raise ValueError(f"parameter 'seed' must be >= 0, got {self.seed}")
        for name in ("height", "width"):
            if getattr(self, name) % 8:
                raise ValueError(f"parameter {name!r} must be a multiple of 8, got {getattr(self, name)}")
        if not 0 < self.alpha < 0.5:  # the verdicts' intervals are at 1 − 2α (docs/definitions.md §9)
            raise ValueError(f"parameter 'alpha' must be in (0, 0.5), got {self.alpha}")
        if not 0 <= self.min_effect <= 1:
            raise ValueError(f"parameter 'min_effect' must be in [0, 1], got {self.min_effect}")
        known = ("ot", "clip", "random", "slerp")
        if not set(self.paths) <= set(known) or "ot" not in self.paths or len(set(self.paths)) < len(self.paths):
            raise ValueError(f"parameter 'paths' must list distinct names of {', '.join(known)} including 'ot', got {self.paths}")
        if self.seeds is not None and (not self.seeds or len(set(self.seeds)) < len(self.seeds) or min(self.seeds) < 0):
            raise ValueError(f"parameter 'seeds' must be a non-empty list of distinct seeds >= 0, got {self.seeds}")
        if self.pairs_source == "csv" and self.pairs_csv is None:
            raise ValueError("parameter 'pairs_csv' is required when pairs_source is 'csv'")

    @property
    def latent_seeds(self) -> list[int]:
        """The seeds of the initial latents: ``seeds``, or ``[seed]`` (the paper's single latent)."""
        return list(self.seeds) if self.seeds is not None else [self.seed]

    @property
    def pairs_path(self) -> Path:
        """The pair table written by notebook 01 and read by the experiment."""
        return Path(self.run_dir) / "pairs.parquet"

    @property
    def results_dir(self) -> Path:
        """The experiment's parquet parts and manifest."""
        return Path(self.run_dir) / "results"

    @property
    def tables_dir(self) -> Path:
        """Statistics tables written by notebook 03."""
        return Path(self.run_dir) / "tables"

    def input_files(self) -> list[str]:
        """The data files notebook 01 reads for this profile (none for the bundled pairs)."""
        if self.pairs_source == "cxc":
            return [*self.cxc_paths, self.karpathy_path]
        return [self.pairs_csv] if self.pairs_source == "csv" else []

    @property
    def caveat(self) -> str | None:
        """What every figure and table of this run must say, or None for real weights.

        Offline specs (``tiny``, ``sd15-random``) have random weights, and a random LPIPS backbone
        is not perceptual: numbers and images from them mean nothing about Stable Diffusion.
        """
        notes = []
        if self.model in RANDOM_WEIGHT_MODELS:
            notes.append(RANDOM_WEIGHTS_NOTE)
        if self.lpips_backbone == "random":
            notes.append("LPIPS with a random backbone")
        return "; ".join(notes) or None

    def resolved(self, root: str | Path) -> "Params":
        """A copy whose relative paths are absolute, resolved against ``root``.

        Path fields are resolved always, ``model`` when it names an existing folder or file
        (a local model), so a notebook (run in ``notebooks/``) and the command line (run in the
        repository) see the same values and share one results folder.
        """
        root = Path(root)
        changes: dict[str, Any] = {
            name: [str((root / v).resolve()) for v in value] if isinstance(value, list) else str((root / value).resolve())
            for name in PATH_FIELDS if (value := getattr(self, name)) is not None
        }
        if (root / self.model).exists():
            changes["model"] = str((root / self.model).resolve())
        return dataclasses.replace(self, **changes)

    def replace(self, **changes: Any) -> "Params":
        """A copy with ``changes`` applied and validated (integers given for float fields become floats)."""
        _check_names(changes)
        return dataclasses.replace(self, **_as_floats(changes))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: Settings renamed since older profiles and run records: old name → new name.
RENAMED = {"couplings": "paths"}  # slerp is a path, not a coupling


def upgrade(values: dict[str, Any], where: str, *, warn: bool = True) -> dict[str, Any]:
    """``values`` with every renamed setting (:data:`RENAMED`) under its new name.

    A profile or override that still uses an old name is read, not refused, and (with ``warn``)
    says so in one ``FutureWarning`` line naming the file; both names at once is an error.
    """
    out = dict(values)
    for old, new in RENAMED.items():
        if old not in out:
            continue
        if new in out:
            raise ValueError(f"{where}: gives both {old!r} and its new name {new!r}; keep {new!r}")
        out[new] = out.pop(old)
        if warn:
            warnings.warn(f"{where}: the setting {old!r} is now {new!r} (read as {new}: {out[new]!r}); rename it",
                          FutureWarning, stacklevel=3)
    return out


#: Fields whose change changes the experiment's results; a results folder is tied to them.
RESULT_FIELDS = (
    "seed", "model", "dtype", "n_intervals", "steps", "guidance", "height", "width",
    "lpips_net", "lpips_backbone", "lpips_resize", "scheduler",
)

#: Fields holding file-system paths (relative ones are relative to the repository root).
PATH_FIELDS = tuple(
    f.name for f in dataclasses.fields(Params)
    if f.name.endswith(("_path", "_paths", "_dir", "_csv", "_config"))
)


def runs_root() -> Path:
    """The folder that holds every profile's run folder: ``$OTINTERP_RUNS`` or the repository's ``runs/``."""
    return Path(os.environ.get("OTINTERP_RUNS") or REPO_ROOT / "runs")


def figures_root() -> Path:
    """The folder that holds every profile's figures: ``$OTINTERP_FIGURES`` or the repository's ``figures/``."""
    return Path(os.environ.get("OTINTERP_FIGURES") or REPO_ROOT / "figures")


def _hints() -> dict[str, Any]:
    return typing.get_type_hints(Params)


def _check_names(values: dict[str, Any]) -> None:
    known = {f.name for f in dataclasses.fields(Params)}
    unknown = sorted(set(values) - known)
    if unknown:
        import difflib

        close = [RENAMED.get(name) or next(iter(difflib.get_close_matches(name, known, n=1)), None) for name in unknown]
        close = [c for c in close if c]
        hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
        raise ValueError(f"unknown parameter(s) {', '.join(map(repr, unknown))}{hint}; known: {', '.join(sorted(known))}")


def _check_type(name: str, value: Any, hint: Any) -> None:
    if not _matches(value, hint):
        raise TypeError(f"parameter {name!r} must be {_describe(hint)}, got {value!r} ({type(value).__name__})")


def _matches(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin is Literal:
        return value in typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, h) for h in typing.get_args(hint))
    if origin is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(_matches(v, item) for v in value)
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _describe(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is Literal:
        return "one of " + ", ".join(map(repr, typing.get_args(hint)))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(h) for h in typing.get_args(hint))
    if origin is list:
        return f"a list of {_describe(typing.get_args(hint)[0])}"
    return "None" if hint is type(None) else hint.__name__


def make(**values: Any) -> Params:
    """Params from keyword values (the rest keep their defaults); unknown names are errors.

    The folders not given follow from the profile's name: ``run_dir`` is ``runs_root() / profile``
    and ``figures_dir`` is ``figures_root() / profile`` (the one place that reads the environment).
    """
    _check_names(values)
    profile = values.get("profile", Params.profile)
    values.setdefault("run_dir", str(runs_root() / profile))
    values.setdefault("figures_dir", str(figures_root() / profile))
    return Params(**_as_floats(values))


def _as_floats(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with integers given for float fields as floats, so ``guidance: 8`` keys as ``8.0``."""
    hints = _hints()
    return {k: float(v) if hints[k] is float and isinstance(v, int) and not isinstance(v, bool) else v
            for k, v in values.items()}


def profiles(folder: str | Path = REPO_ROOT / "params") -> list[str]:
    """The names of the profiles in ``folder`` (``params/*.yaml``)."""
    return sorted(p.stem for p in Path(folder).glob("*.yaml"))


def profile_file(profile: str | Path) -> Path:
    """The YAML file of ``profile``: a name (``"smoke"`` is ``params/smoke.yaml``) or a path.

    Raises
    ------
    FileNotFoundError
        Naming the profiles that exist, for an unknown name or a missing file.
    """
    text = str(profile)
    path = Path(text) if text.endswith((".yaml", ".yml")) or os.sep in text else REPO_ROOT / "params" / f"{text}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"unknown profile {text!r} ({path} does not exist); profiles: {', '.join(profiles())}")
    return path


def load(path: str | Path, **overrides: Any) -> Params:
    """Read a profile into :class:`Params`, then apply ``overrides``.

    The profile's name is its file's name; relative paths in it are resolved against the
    repository (the folder above ``params/``, or the file's own folder elsewhere), so every entry
    point sees the same absolute run folder, data files and local model folder.

    Parameters
    ----------
    path : str or Path
        A profile name (``"smoke"``) or a YAML file mapping parameter names to values.
    **overrides
        Values that replace the file's (for example ``seed=1``).

    Raises
    ------
    FileNotFoundError
        If the profile does not exist (the message lists those that do).
    ValueError, TypeError
        For a file that is not a mapping, an unknown key, a value of the wrong type, or a
        ``profile:`` key that disagrees with the file's name.
    """
    path = profile_file(path).resolve()
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a readable YAML file ({str(err).splitlines()[0]})") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path}: a profile must be a YAML mapping of parameter names to values")
    if values.get("profile", path.stem) != path.stem:
        raise ValueError(f"{path}: says profile: {values['profile']!r}, but a profile's name is its file's name "
                         f"({path.stem!r}); remove the line")
    values = {**upgrade(values, str(path)), **upgrade(overrides, "--set")}
    values.update(profile=path.stem, profile_path=str(path))
    try:
        return make(**values).resolved(path.parent.parent if path.parent.name == "params" else path.parent)
    except (TypeError, ValueError) as err:
        raise type(err)(f"{path}: {err}") from None


def profile_text(params: Params) -> tuple[str | None, str | None]:
    """The text of the profile file ``params`` came from and its SHA-256 (None, None without one)."""
    if params.profile_path is None or not Path(params.profile_path).is_file():
        return None, None
    text = Path(params.profile_path).read_text(encoding="utf-8")
    return text, hashlib.sha256(text.encode()).hexdigest()


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["seed=1", "dtype=float16"]`` as ``{"seed": 1, "dtype": "float16"}`` (values read as YAML)."""
    overrides = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep:
            raise ValueError(f"an override must look like NAME=VALUE, got {item!r}")
        overrides[name.strip()] = yaml.safe_load(text)
    return overrides
