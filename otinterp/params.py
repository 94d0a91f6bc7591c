"""Run profiles: one flat, typed, validated set of parameters shared by the package and notebooks.

A profile is a YAML file of ``key: value`` lines (``params/smoke.yaml``, ``params/paper.yaml``).
Every key is a field of :class:`Params`; an unknown key or a value of the wrong type is an error
naming the key. The notebooks declare the fields they use as literals in their ``parameters``
cell, and ``make paper`` injects the profile's values for those names (:mod:`otinterp.notebooks`).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml

__all__ = [
    "Params", "load", "make", "parse_overrides", "RESULT_FIELDS", "PATH_FIELDS", "RANDOM_WEIGHT_MODELS",
    "RANDOM_WEIGHTS_NOTE",
]


#: Model specs that :mod:`otinterp.models` builds offline with seeded random weights.
RANDOM_WEIGHT_MODELS = ("tiny", "sd15-random")

#: What every image, figure and table made from such a model must say.
RANDOM_WEIGHTS_NOTE = "random weights: images and numbers mean nothing"


@dataclass(frozen=True)
class Params:
    """Every parameter of a run (the defaults measure with the pretrained LPIPS backbone)."""

    # --- the run as a whole -----------------------------------------------------------------
    profile: str = "smoke"
    seed: int = 0
    model: str = "tiny"
    device: str = "cpu"
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    run_dir: str = "runs/smoke"
    figures_dir: str = "figures/smoke"

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
    couplings: list[str] = field(default_factory=lambda: ["ot", "clip", "random"])
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
        if not 0 < self.alpha < 1:
            raise ValueError(f"parameter 'alpha' must be in (0, 1), got {self.alpha}")
        if not 0 <= self.min_effect <= 1:
            raise ValueError(f"parameter 'min_effect' must be in [0, 1], got {self.min_effect}")
        known = ("ot", "clip", "random", "slerp")
        if not set(self.couplings) <= set(known) or "ot" not in self.couplings or len(set(self.couplings)) < len(self.couplings):
            raise ValueError(f"parameter 'couplings' must list distinct names of {', '.join(known)} including 'ot', got {self.couplings}")
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
        """A copy with ``changes`` applied and validated."""
        _check_names(changes)
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def result_key(self) -> dict[str, Any]:
        """The fields that decide the experiment's numbers (:data:`RESULT_FIELDS`)."""
        return {name: getattr(self, name) for name in RESULT_FIELDS}


#: Fields whose change changes the experiment's results; a results folder is tied to them.
RESULT_FIELDS = (
    "seed", "model", "dtype", "n_intervals", "steps", "guidance", "height", "width",
    "lpips_net", "lpips_backbone", "lpips_resize", "scheduler",
)

#: Fields holding file-system paths (relative ones are relative to the repository root).
PATH_FIELDS = tuple(
    f.name for f in dataclasses.fields(Params)
    if f.name.endswith(("_path", "_paths", "_dir", "_csv"))
)


def _hints() -> dict[str, Any]:
    return typing.get_type_hints(Params)


def _check_names(values: dict[str, Any]) -> None:
    known = {f.name for f in dataclasses.fields(Params)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(map(repr, unknown))}; known: {', '.join(sorted(known))}")


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
    """Params from keyword values (the rest keep their defaults); unknown names are errors."""
    _check_names(values)
    return Params(**{k: float(v) if _hints()[k] is float and isinstance(v, int) else v for k, v in values.items()})


def load(path: str | Path, **overrides: Any) -> Params:
    """Read a profile YAML into :class:`Params`, then apply ``overrides``.

    Parameters
    ----------
    path : str or Path
        A YAML mapping of parameter names to values.
    **overrides
        Values that replace the file's (for example ``seed=1``).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError, TypeError
        For a file that is not a mapping, an unknown key, or a value of the wrong type.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"parameter file {path} does not exist")
    with path.open() as fh:
        values = yaml.safe_load(fh) or {}
    if not isinstance(values, dict):
        raise ValueError(f"{path}: a profile must be a YAML mapping of parameter names to values")
    values.update(overrides)
    try:
        return make(**values)
    except (TypeError, ValueError) as err:
        raise type(err)(f"{path}: {err}") from None


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["seed=1", "dtype=float16"]`` as ``{"seed": 1, "dtype": "float16"}`` (values read as YAML)."""
    overrides = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep:
            raise ValueError(f"an override must look like NAME=VALUE, got {item!r}")
        overrides[name.strip()] = yaml.safe_load(text)
    return overrides


if __name__ == "__main__":  # `python -m otinterp.params --inputs PROFILE.yaml`, used by the Makefile
    import sys

    if len(sys.argv) != 3 or sys.argv[1] != "--inputs":
        raise SystemExit("usage: python -m otinterp.params --inputs PROFILE.yaml")
    print(" ".join(load(sys.argv[2]).input_files()))
