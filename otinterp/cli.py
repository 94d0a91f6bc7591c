"""The ``otinterp`` command line (also ``python -m otinterp``): one entry point, one set of conventions.

Every subcommand takes ``--profile NAME|PATH`` (a profile name, ``params/<name>.yaml``, or a YAML
path; default ``smoke``) and ``--set key=value`` (values read as YAML) and reaches its run through
:meth:`otinterp.run.Run.open`. Bad input ends with one line on stderr and exit status 2, never a
traceback; a failed notebook with status 1. ``make`` calls these.

    otinterp check    --profile paper              validate the profile and read its input files
    otinterp pairs    --profile paper              sample the pair table (notebook 01's table)
    otinterp run      --profile paper [--shard i/n|auto] [--dry-run] [--repair]
    otinterp explore  "a cat" "a bus" [--frames 24] [--paths ot clip] [--pair-id ID]
    otinterp mix      "a cat" "a bus" "a tree" [--resolution 3] [--out grid.png]
    otinterp compare  [--run LABEL=FOLDER ...]     finished runs side by side (notebook 06)
    otinterp notebook SRC DST --profile paper      execute one notebook headlessly
    otinterp lab      --profile paper              prepare the lab copies, print their folder
    otinterp settings --show NAME | --inputs | --stale   what make asks of a profile
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from otinterp.names import PATHS

__all__ = ["main", "parser"]


class UsageError(ValueError):
    """Bad input on the command line (exit status 2)."""


def _common(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--profile", default="smoke", help="a profile name (params/<name>.yaml) or a YAML path "
                                                        "(default smoke)")
    sub.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override one setting (value read as YAML), e.g. --set seed=1")


def _open(args: argparse.Namespace):
    from otinterp.params import parse_overrides
    from otinterp.run import Run

    return Run.open(args.profile, **parse_overrides(args.set))


# --- subcommands ------------------------------------------------------------------------------

def _check(args: argparse.Namespace) -> None:
    run = _open(args)
    run.check_inputs()
    p = run.config
    print(f"profile {p.profile}: model {p.model} on {p.device}, pairs from {p.pairs_source}; run folder {p.run_dir}")


def _pairs(args: argparse.Namespace) -> None:
    from otinterp.data import pairs_report, pairs_table, write_pairs

    run = _open(args)
    pairs = pairs_table(run.config)
    write_pairs(pairs, run.pairs_path)
    report = pairs_report(pairs)
    print(f"{len(pairs)} pairs in {report['sampled'].gt(0).sum()} groups -> {run.pairs_path}")


def _run(args: argparse.Namespace) -> None:
    from otinterp import experiment
    from otinterp.data import read_pairs

    run = _open(args)
    params = run.config
    shard = experiment.shard_from_env() if args.shard == "auto" else experiment.parse_shard(args.shard)
    pairs = read_pairs(args.pairs or run.pairs_path)
    if args.dry_run:
        print(experiment.describe_plan(experiment.plan(params, pairs, args.out, shard=shard)))
        return
    if params.device == "cuda" and "LOCAL_RANK" in os.environ:  # one GPU per launched process
        params = params.replace(device=f"cuda:{os.environ['LOCAL_RANK']}")
    results = experiment.run(params, pairs, args.out, shard=shard, repair=args.repair)
    n = results["pair_key"].nunique() if len(results) else 0
    print(f"shard {shard[0]}/{shard[1]}: {n} pairs done -> {args.out or run.results_dir}")


def _explore(args: argparse.Namespace) -> None:
    from otinterp import explore

    run = _open(args)
    if args.pair_id is not None:
        if args.prompts:
            raise UsageError("give either two prompts or --pair-id, not both")
        prompts = explore.pair_prompts(run.config, args.pair_id)
    elif len(args.prompts) != 2:
        raise UsageError(f"give exactly two prompts (A and B), got {len(args.prompts)}")
    else:
        prompts = tuple(args.prompts)
    if args.seed_index == ["all"]:
        seed_indices: Any = "all"
    else:
        try:
            seed_indices = [int(v) for v in args.seed_index]
        except ValueError:
            raise UsageError(f"--seed-index takes integers or 'all', got {' '.join(args.seed_index)}") from None
    written = explore.explore_to_folder(run.config, prompts, out_dir=args.out, frames=args.frames, paths=args.paths,
                                        seed_indices=seed_indices, pair_id=args.pair_id)
    print("\n".join(str(p) for paths in written.values() for p in paths))


def _mix(args: argparse.Namespace) -> None:
    from otinterp import mixing

    if len(args.prompts) != 3:
        raise UsageError(f"give exactly three prompts, got {len(args.prompts)}")
    run = _open(args)
    out = args.out or run.figures_dir / "barycenters" / "grid.png"
    written = mixing.grid_to_file(run.config, args.prompts, out, r=args.resolution)
    print("\n".join(map(str, written)))


def _compare(args: argparse.Namespace) -> None:
    from otinterp.notebooks import execute_compare
    from otinterp.params import REPO_ROOT, figures_root, runs_root

    runs = {}
    for item in args.run:
        label, sep, folder = item.partition("=")
        if not sep or not label or not folder:
            raise UsageError(f"--run must look like LABEL=FOLDER, got {item!r}")
        runs[label] = str(Path(folder).resolve())
    out = Path(args.out or runs_root() / "compare")
    figures = Path(args.figures or figures_root() / "compare")
    execute_compare(REPO_ROOT / "notebooks" / "06_compare_models.ipynb", out / "06_compare_models.ipynb",
                    runs=runs, figures_dir=figures)


def _notebook(args: argparse.Namespace) -> None:
    from otinterp.notebooks import run_notebook
    from otinterp.params import parse_overrides

    run_notebook(args.source, args.output, args.profile, parse_overrides(args.set))


def _lab(args: argparse.Namespace) -> None:
    from otinterp import lab

    folder, notes = lab.prepare(args.profile)
    for note in notes:
        print(note, file=sys.stderr)
    print(folder)


def _settings(args: argparse.Namespace) -> None:
    from otinterp import products
    from otinterp.params import _check_names

    p = _open(args).config
    if args.inputs:
        print(" ".join(p.input_files()))
    elif args.stale:
        for notebook, why in products.stale(p.run_dir).items():
            print(f"{notebook.name} runs again: {why}", file=sys.stderr)
            print(notebook)
    else:
        _check_names({args.show: None})
        print(getattr(p, args.show))


# --- the parser -------------------------------------------------------------------------------

def parser() -> argparse.ArgumentParser:
    """The ``otinterp`` argument parser with every subcommand."""
    top = argparse.ArgumentParser(prog="otinterp", description=__doc__.split("\n\n")[0].replace("``", ""),
                                  formatter_class=argparse.RawDescriptionHelpFormatter,
                                  epilog="\n".join(__doc__.split("\n\n")[2].splitlines()))
    subs = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Callable, help: str) -> argparse.ArgumentParser:
        sub = subs.add_parser(name, help=help, description=help)
        sub.set_defaults(handler=handler)
        return sub

    _common(add("check", _check, "validate the profile and read its input files (nothing is written)"))
    _common(add("pairs", _pairs, "sample the run's pair table and write it (what notebook 01 writes)"))
    sub = add("run", _run, "render, score and store the experiment's paths (resumes where it stopped)")
    _common(sub)
    sub.add_argument("--shard", default="0/1", help="i/n: this process's share of the pairs; 'auto' reads "
                                                    "accelerate/torchrun/SLURM")
    sub.add_argument("--dry-run", action="store_true", help="print pairs, images to render and the expected time")
    sub.add_argument("--repair", action="store_true", help="move unreadable or inconsistent parts to "
                                                           "<results>/damaged/ and render their pairs again")
    sub.add_argument("--pairs", type=Path, help="pair table (parquet); default <run_dir>/pairs.parquet")
    sub.add_argument("--out", type=Path, help="results folder; default <run_dir>/results")
    sub = add("explore", _explore, "render the paths between two prompts, with strips, animations and measures")
    _common(sub)
    sub.add_argument("prompts", nargs="*", metavar="PROMPT", help="prompts A and B (or give --pair-id)")
    sub.add_argument("--frames", type=int, default=24, help="images per path, endpoints included (default 24)")
    sub.add_argument("--seed-index", nargs="+", default=["0"], metavar="I",
                     help="positions in the profile's seeds to render from, or 'all' (default 0)")
    sub.add_argument("--paths", nargs="+", default=list(PATHS), choices=PATHS, help="paths to render")
    sub.add_argument("--pair-id", help="take the prompts of this pair of the run's pair table")
    sub.add_argument("--out", type=Path, help="output folder (default <figures_dir>/explore/<slug-a>--<slug-b>)")
    sub = add("mix", _mix, "render the triangle grid of three prompts' OT barycenters beside row-wise means (PNG)")
    _common(sub)
    sub.add_argument("prompts", nargs="*", metavar="PROMPT", help="three prompts")
    sub.add_argument("--resolution", type=int, default=3, help="r: (r+1)(r+2)/2 images per triangle (default 3)")
    sub.add_argument("--out", type=Path, help="the PNG (default <figures_dir>/barycenters/grid.png)")
    sub = add("compare", _compare, "compare finished runs side by side (notebook 06)")
    sub.add_argument("--run", action="append", default=[], metavar="LABEL=FOLDER",
                     help="a run folder and its label; default every finished run under the runs folder")
    sub.add_argument("--out", help="folder of the executed notebook (default <runs>/compare)")
    sub.add_argument("--figures", help="folder of the tables and figures (default <figures>/compare)")
    sub = add("notebook", _notebook, "execute one notebook headlessly with a profile")
    _common(sub)
    sub.add_argument("source", type=Path)
    sub.add_argument("output", type=Path)
    _common(add("lab", _lab, "prepare the profile's lab copies of the notebooks and print their folder"))
    sub = add("settings", _settings, "print what make asks of a profile")
    _common(sub)
    what = sub.add_mutually_exclusive_group(required=True)
    what.add_argument("--show", metavar="NAME", help="one setting's value")
    what.add_argument("--inputs", action="store_true", help="the data files notebook 01 reads")
    what.add_argument("--stale", action="store_true",
                      help="the executed notebooks whose products (pairs, results) changed since they ran")
    return top


def main(argv: Sequence[str] | None = None) -> None:
    """Parse ``argv`` and run the subcommand: one line on stderr and exit status 2 on bad input."""
    args = parser().parse_args(argv)
    try:
        args.handler(args)
    except ModuleNotFoundError as err:  # an optional extra that is not installed
        extra = " (install otinterp[notebooks])" if err.name in ("papermill", "jupyter_client", "nbformat") else ""
        print(f"error: otinterp {args.command} needs the package {err.name!r}{extra}", file=sys.stderr)
        raise SystemExit(2) from None
    except (OSError, TypeError, ValueError) as err:  # DamagedResults and UsageError are ValueErrors
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)  # one line, whatever a reader says
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
