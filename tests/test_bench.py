"""The benchmark scripts run (tiny sizes) and report what gpu_check.sh reads; no timing asserted."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(*args):
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_render_throughput_reports_both_ways(tmp_path):
    out = run("bench/render_throughput.py", "--model", "tiny", "--size", "32", "--steps", "1", "--intervals", "2",
              "--pairs", "1", "--repeats", "1", "--batch-size", "4", "2", "--json", str(tmp_path / "r.jsonl"))
    assert "otinterp / naive" in out
    reports = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [r["batch_size"] for r in reports] == [4, 2]
    for r in reports:
        assert r["otinterp"]["images_per_s"] > 0 and r["naive"]["images_per_s"] > 0
        assert r["tflop_per_image"] > 0 and 0 < r["lpips_ot_share"] < 1 and r["ratio_paths_per_s"] > 0


def test_couplings_bench_checks_against_pot():
    out = run("bench/couplings.py", "--pairs", "20", "--repeats", "1")
    assert "ms/coupling" in out and "10,000 pairs" in out
