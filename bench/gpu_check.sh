#!/usr/bin/env bash
# One prepared check for a bare lent GPU machine (H100 / H200), at most ~9 minutes wall time.
#
# Steps, in order of importance, each capped with `timeout` and printed as PASS / FAIL / TIMEOUT /
# SKIPPED (a step is skipped when less than 20 s of the overall budget is left):
#   tests     the CUDA tests (tests/test_cuda.py)
#   fp16      the benchmark (bench/render_throughput.py): sd15-random, 512 px, 50 steps, K = 10, one
#             pair; the naive loop and otinterp at batch sizes 1 8 16 32 auto, float16, eager
#   profile   bench/profile_gpu.py: invariance of sd15-random at 512 px in float16
#             (otinterp.invariance check_unet / check_images), batch_size: auto
#             (render.largest_batch_size) and a torch.profiler summary of one float16 batch
#   bf16      the benchmark in bfloat16, eager, batch sizes 8 32
#   compile16 the benchmark in float16 with compile_unet on, batch sizes 8 32
#   compile-bf16  the same in bfloat16, batch size 32
# Writes under $OUT (first argument, else $OUT, else bench/out): report.json (device, every step's
# status and seconds, the benchmark records, the profile), rates.json (the benchmark's records: a
# JSON list, the rate file a dry run can read), profile.json, cuda_tests.log and gpu_check.log.
#
# Packages the device image lacks travel as wheels in .whl/ (git-ignored) and are installed into
# /tmp/site, never into the system Python. Prepare them once, in the repository root, here:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     -d .whl diffusers==0.42.1 importlib_metadata open_clip_torch==3.3.0 ftfy==6.3.1 wcwidth \
#     lpips==0.1.4 POT==0.9.7.post1
# (pure-Python wheels match any platform; POT is the one compiled package).
#
# Run it with the device tool (one call, the whole device-time budget in view):
#   run(command="bash bench/gpu_check.sh", carry=[".whl"], timeout_s=600)
# A rerun of some steps only: run(command="bash bench/gpu_check.sh \"\" fp16 profile", ...).
# Budget: GPU_CHECK_BUDGET_S (default 530 s) for all steps together; the install and the report
# take seconds. It has not run on a GPU yet.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-${OUT:-bench/out}}
shift || true
STEPS=${*:-tests fp16 profile bf16 compile16 compile-bf16}
PYTHON=${PYTHON:-python3}
BUDGET=${GPU_CHECK_BUDGET_S:-530}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu_check.log") 2>&1
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
STATUS="$OUT/status.tsv"
: > "$STATUS"
T0=$SECONDS

imports_ok() { "$PYTHON" -c "import diffusers, lpips, ot, open_clip, otinterp.models" 2>/dev/null; }
if ! imports_ok && compgen -G ".whl/*.whl" >/dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
if ! imports_ok; then
  echo "FAIL setup: otinterp's packages cannot be imported (carry .whl, see the top of bench/gpu_check.sh)"
  "$PYTHON" -c "import diffusers, lpips, ot, open_clip, otinterp.models"
  exit 1
fi
if ! "$PYTHON" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'" 2>/dev/null; then
  echo "FAIL setup: no CUDA device"
  exit 1
fi
nvidia-smi -L 2>/dev/null
"$PYTHON" -c "import torch, diffusers; print('torch', torch.__version__, 'diffusers', diffusers.__version__, torch.cuda.get_device_name())"
echo "setup: $((SECONDS - T0)) s"

# step NAME CAP COMMAND...: run COMMAND under min(CAP, what is left of the budget) and record its status.
step() {
  local name=$1 cap=$2 left=$((BUDGET - (SECONDS - T0))) start=$SECONDS rc status
  shift 2
  [[ " $STEPS " == *" $name "* ]] || return 0
  if ((left < 20)); then
    printf '%s\tSKIPPED\t0\n' "$name" >> "$STATUS"; echo "SKIPPED $name: the budget of $BUDGET s is spent"; return 0
  fi
  echo "=== $name (at most $((cap < left ? cap : left)) s)"
  timeout --kill-after=10 $((cap < left ? cap : left)) "$@"
  rc=$?
  case $rc in 0) status=PASS ;; 124 | 137) status=TIMEOUT ;; *) status=FAIL ;; esac
  printf '%s\t%s\t%s\n' "$name" "$status" $((SECONDS - start)) >> "$STATUS"
  echo "$status $name ($((SECONDS - start)) s, exit $rc)"
}

BENCH=("$PYTHON" bench/render_throughput.py --model sd15-random --device cuda --size 512 --steps 50
  --intervals 10 --pairs 1 --repeats 1 --channels-last on --json "$OUT/rates.json")
step tests 120 bash -c "set -o pipefail; '$PYTHON' -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tee '$OUT/cuda_tests.log'"
step fp16 170 "${BENCH[@]}" --dtype float16 --batch-size 1 8 16 32 auto
step profile 90 "$PYTHON" bench/profile_gpu.py --model sd15-random --device cuda --dtype float16 --size 512 \
  --steps 20 --profile-steps 5 --batch-size 9 --json "$OUT/profile.json"
step bf16 60 "${BENCH[@]}" --dtype bfloat16 --batch-size 8 32 --naive off
step compile16 120 "${BENCH[@]}" --dtype float16 --batch-size 8 32 --naive off --compile on
step compile-bf16 100 "${BENCH[@]}" --dtype bfloat16 --batch-size 32 --naive off --compile on

"$PYTHON" - "$OUT" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
def read(name, default):
    path = out / name
    return json.loads(path.read_text()) if path.exists() else default
steps = [dict(zip(("step", "status", "seconds"), line.split("\t"))) for line in (out / "status.tsv").read_text().splitlines()]
rates = read("rates.json", [])
tests = (out / "cuda_tests.log").read_text().strip().splitlines()[-1:] if (out / "cuda_tests.log").exists() else []
report = {"device_name": rates[0]["device_name"] if rates else None, "steps": steps, "cuda_tests": tests,
          "bench": rates, "profile": read("profile.json", None)}
(out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
for r in rates:
    naive = f", {r['ratio_paths_per_s']:.2f}x the naive loop's paths/s" if r["ratio_paths_per_s"] else ""
    peak = f", {r['peak_fraction']:.1%} of peak" if r.get("peak_fraction") else ""
    print(f"{r['dtype']:8s} compile {'on ' if r['compile_unet'] else 'off'} batch {r['batch_size_asked']!s:>4}: "
          f"{r['images_per_s']:.2f} images/s{naive}{peak}, LPIPS + OT {r['lpips_ot_share']:.1%}")
failed = [s["step"] for s in steps if s["status"] != "PASS"]
print(("FAIL: " + ", ".join(failed)) if failed else "PASS: every step", f"-> {out / 'report.json'}")
sys.exit(1 if failed else 0)
PY
