#!/usr/bin/env bash
# One prepared check for a lent GPU machine (H100/H200): CUDA tests, SD 1.5-size invariance in
# fp16, and the rendering benchmark across batch sizes and precisions. About 6 minutes, at most
# 10 (the sum of the timeouts).
# Writes $OUT/report.json (and logs) where OUT is the first argument, $OUT, or bench/out.
#
#   bash bench/gpu_check.sh [OUT_DIR]
#
# Packages the machine lacks (diffusers, transformers, lpips, pot, open-clip-torch, papermill...)
# travel as wheels in .whl/; they are installed into /tmp/site, never into the system Python.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-${OUT:-bench/out}}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.__version__, torch.cuda.get_device_name())" \
  | tee "$OUT/device.txt" || exit 1

# 1. Tests that need CUDA (tiny model on the GPU against the CPU float32 reference; SD 1.5 UNet).
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tee "$OUT/cuda_tests.log"

# 2. The rendering benchmark: SD 1.5 architecture, 512 px, 50 steps, K = 10, one pair per run,
# largest batch first so the headline number is written even if a later step runs out of time.
# Each invocation appends one JSON line per batch size as soon as it is done.
bench() { timeout "$1" python3 bench/render_throughput.py --model sd15-random --device cuda --size 512 \
  --steps 50 --intervals 10 --pairs 1 --repeats 1 --channels-last --json "$OUT/bench.jsonl" "${@:2}" \
  2>&1 | tee -a "$OUT/bench.log"; }
bench 240 --dtype float16 --batch-size 32 16 8 1          # with the naive loop (33 single-image calls)
bench 100 --dtype bfloat16 --batch-size 32 16 --skip-naive
bench 90 --dtype float32 --batch-size 8 --skip-naive

python3 - "$OUT" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
runs = [json.loads(l) for l in (out / "bench.jsonl").read_text().splitlines()] if (out / "bench.jsonl").exists() else []
report = {"device": (out / "device.txt").read_text().strip(), "bench": runs,
          "cuda_tests": (out / "cuda_tests.log").read_text().strip().splitlines()[-1:]}
(out / "report.json").write_text(json.dumps(report, indent=2))
best = max((r for r in runs if "otinterp" in r), key=lambda r: r["otinterp"]["images_per_s"], default=None)
if best:
    print(f"best: {best['otinterp']['images_per_s']:.2f} images/s ({best['dtype']}, batch {best['batch_size']}), "
          f"{best['otinterp']['tflops']:.0f} TFLOP/s")
PY
