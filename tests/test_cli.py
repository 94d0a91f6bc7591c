"""The `otinterp` command line: subcommands, one-line errors, exit status 2, and Run.open under it."""

import subprocess
import sys
import time

import pytest

from otinterp import cli
from otinterp.run import Run


def otinterp(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "otinterp", *args], capture_output=True, text=True, **kwargs)


def test_help_lists_every_subcommand():
    proc = otinterp("--help")
    assert proc.returncode == 0
    for name in ("check", "pairs", "run", "explore", "mix", "compare", "notebook", "lab", "settings"):
        assert f"\n    {name} " in proc.stdout, name


@pytest.mark.parametrize("args, message", [
    (["check", "--profile", "nope"], "error: unknown profile 'nope'"),
    (["check", "--set", "stepz=3"], "unknown parameter(s) 'stepz' (did you mean 'steps'?)"),
    (["check", "--set", "seed"], "an override must look like NAME=VALUE"),
    (["check", "--set", "alpha=0.5"], "parameter 'alpha' must be in (0, 0.5)"),
    (["run", "--shard", "3/2", "--dry-run"], "shard"),
    (["explore", "only one prompt"], "give exactly two prompts"),
    (["explore", "a", "b", "--seed-index", "x"], "--seed-index takes integers or 'all'"),
    (["mix", "a", "b"], "give exactly three prompts"),
    (["compare", "--run", "nofolder"], "--run must look like LABEL=FOLDER"),
    (["settings", "--show", "nope"], "unknown parameter(s) 'nope'"),
])
def test_bad_input_is_one_line_and_exit_status_2(args, message, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(args)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1 and message in err, err


def test_bad_input_is_answered_in_well_under_a_second():
    start = time.perf_counter()
    proc = otinterp("check", "--profile", "nope")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert time.perf_counter() - start < 3  # a fresh interpreter included; the import itself is light
    code = "import sys, otinterp.cli; print(sorted(m for m in ('torch', 'diffusers', 'pandas') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "[]"


def test_settings_and_check_agree_with_run_open(tmp_path, capsys):
    run = Run.open("smoke", seed=3)
    assert run.config.seed == 3 and run.results_dir == run.run_dir / "results" and run.name == "smoke"
    cli.main(["settings", "--profile", "smoke", "--set", "seed=3", "--show", "run_dir"])
    assert capsys.readouterr().out.strip() == str(run.run_dir)
    cli.main(["check", "--profile", "smoke"])
    assert capsys.readouterr().out.startswith("profile smoke: model tiny")
    assert run.context().notes == ["model: tiny", run.config.caveat]


def test_pairs_then_a_dry_run(tmp_path, capsys):
    root = tmp_path / "run"
    cli.main(["pairs", "--set", f"run_dir={root}"])
    assert (root / "pairs.parquet").is_file() and "20 pairs" in capsys.readouterr().out
    cli.main(["run", "--set", f"run_dir={root}", "--dry-run"])
    assert "20 pairs" in capsys.readouterr().out and not (root / "results").exists()
