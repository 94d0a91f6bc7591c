"""The benchmark scripts run (tiny sizes, one CPU thread) and write what gpu_check.sh reads; no timing asserted."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
#: One thread: the scripts run beside other processes, and OpenMP threads waiting on busy cores are slow.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
#: Keys a run's time estimate matches a measured rate on.
RATE_KEYS = {"images_per_s", "device_name", "model", "height", "width", "steps", "dtype", "scheduler"}


def run(*args):
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, env=ENV)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_render_throughput_writes_rate_records_and_no_gpu_peak_on_the_cpu(tmp_path):
    out = tmp_path / "rates.json"
    out.write_text(json.dumps([{"kept": True}]))  # records are added to an existing list
    text = run("bench/render_throughput.py", "--model", "tiny", "--device", "cpu", "--size", "32", "--steps", "1",
               "--intervals", "2", "--pairs", "1", "--repeats", "1", "--batch-size", "4", "auto", "--json", str(out))
    assert "otinterp / naive" in text and "images/s" in text and "paths/s" in text
    assert "GPU peak" not in text
    kept, *records = json.loads(out.read_text())
    assert kept == {"kept": True}
    assert [r["batch_size_asked"] for r in records] == [4, "auto"]
    assert [r["batch_size"] for r in records] == [4, 2]  # auto on a CPU: the start value, max(2, K - 1)
    for r in records:
        assert RATE_KEYS <= set(r)
        assert (r["model"], r["height"], r["width"], r["steps"], r["dtype"], r["scheduler"]) == \
            ("tiny", 32, 32, 1, "float32", "default")
        assert r["images_per_s"] == r["otinterp"]["images_per_s"] > 0 and r["naive"]["images_per_s"] > 0
        # one pair, K = 2: otinterp renders 2 + 3 (K - 1) images, the naive loop 3 (K + 1)
        assert (r["otinterp"]["images"], r["naive"]["images"]) == (5, 9)
        assert r["paths_per_s"] == pytest.approx(3 / r["otinterp"]["seconds"])
        assert r["ratio_paths_per_s"] == pytest.approx(r["naive"]["seconds"] / r["otinterp"]["seconds"])
        assert r["tflop_per_image"] > 0 and r["peak_fraction"] is None and r["peak_tflops"] is None
        assert 0 < r["lpips_share"] < 1 and 0 < r["ot_share"] < 1
        assert r["lpips_ot_share"] == pytest.approx(r["lpips_share"] + r["ot_share"])


def test_gpu_peaks_match_specific_names_first():
    rt = script("render_throughput")
    assert rt.gpu_peak_tflops("NVIDIA H100 80GB HBM3", "float16") == 989.0
    assert rt.gpu_peak_tflops("NVIDIA H100 PCIe", "bfloat16") == 756.0
    assert rt.gpu_peak_tflops("NVIDIA H100 80GB HBM3", "float32") == 67.0
    assert rt.gpu_peak_tflops("Some Future GPU", "float16") is None


@pytest.mark.parametrize("bad", ["0", "-3", "big"])
def test_render_throughput_refuses_a_bad_batch_size(bad, capsys):
    with pytest.raises(SystemExit):
        script("render_throughput").parse_args(["--batch-size", bad])
    assert "batch size" in capsys.readouterr().err


def test_profile_gpu_checks_invariance_and_profiles_on_the_cpu(tmp_path):
    text = run("bench/profile_gpu.py", "--model", "tiny", "--device", "cpu", "--size", "32", "--steps", "2",
               "--profile-steps", "1", "--batch-size", "2", "--top", "5", "--channels-last", "off",
               "--json", str(tmp_path / "p.json"))
    assert "PASS invariance" in text and "PASS batch_size auto = 64" in text
    report = json.loads((tmp_path / "p.json").read_text())
    assert report["invariance"]["passed"] and report["invariance"]["denoiser_rel_max_diff"] <= 1e-5
    assert report["profile"]["sort_by"] == "self_cpu_time_total" and len(report["profile"]["top"]) == 5
    shares = [op["share"] for op in report["profile"]["top"]]
    assert shares == sorted(shares, reverse=True) and 0 < sum(shares) <= 1


@pytest.mark.slow
def test_gpu_check_is_valid_bash_and_stops_clearly_without_cuda(tmp_path):
    subprocess.run(["bash", "-n", "bench/gpu_check.sh"], cwd=ROOT, check=True)
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: gpu_check.sh would run for minutes")
    proc = subprocess.run(["bash", "bench/gpu_check.sh", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          env={**ENV, "PYTHON": sys.executable})
    assert proc.returncode == 1 and "FAIL setup: no CUDA device" in proc.stdout


@pytest.mark.slow
def test_couplings_bench_checks_against_pot():
    out = run("bench/couplings.py", "--pairs", "20", "--repeats", "1")
    assert "ms/coupling" in out and "10,000 pairs" in out
