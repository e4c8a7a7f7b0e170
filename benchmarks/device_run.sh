#!/usr/bin/env bash
# The single GPU call of a session: everything that needs the H200, most important first, each step
# under its own time limit and all of them under one total (TOTAL_S, default 540 s, inside the
# device tool's 600 s per call); a step that would not fit is skipped and says so, a failing or
# slow step is logged and the next one runs.
#
#   OUT=/some/dir bash benchmarks/device_run.sh          # on the device (README: "GPU checks")
#   DEVICE=cpu OUT=/tmp/smoke bash benchmarks/device_run.sh   # plumbing smoke test on a CPU machine
#
# 1. fused-kernel correctness vs float64 references: the gpu-marked tests of tests/test_gpu_kernels.py,
#    one case per pytest-xdist worker at a time (a crashed worker is replaced) -> gpu_check.json,
#    and verified.json (commit it as cuda_ops/verified.json: the variants the CUDA default runs fused)
# 2. fused-kernel speed vs plain-torch ELA and SDPA, per-launch stages,
#    a sweep of launch settings (yolo-lat benchmark kernels)       -> gpu_bench.json
# 3. fla's chunked linear attention at the causal shapes              -> merged into gpu_bench.json
# 4. detectors: YOLO-LAT vs YOLO12 vs YOLO26, fp16, CUDA graphs       -> models_gpu.json
# 5. text GPU tests (CUDA steps, CUDA-graph replay vs eager steps)  -> in device_log.txt
# 6. text decode latency (eager, CUDA-graph replay), state vs KV cache -> decode_gpu.json
# 7. the ELA detectors again with YOLO_LAT_KERNELS=torch (plain ELA)  -> models_gpu_torch.json
# Needs: python3 with torch, triton, pytest, pytest-xdist and pytest-timeout (the device image); Ultralytics
# and fla travel as wheels in .whl/. yolo-lat is not installed: it runs from this checkout (PYTHONPATH), where
# yolo_lat/cfg, yolo_lat/cuda_ops, ... link to the top-level folders.
set -u
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/yolo_lat_device}"
DEVICE="${DEVICE:-cuda}"
LOGS=/tmp/yolo_lat_device_logs
mkdir -p "$OUT" "$LOGS"
PY="${PY:-python3}"
export PYTHONUNBUFFERED=1 YOLO_OFFLINE=1 MPLBACKEND=Agg
TOTAL_S="${TOTAL_S:-540}"
start=$(date +%s)
elapsed() { echo $(($(date +%s) - start)); }
step() { echo; echo "== [$(elapsed)s] $*"; }
# fits LIMIT: prints the seconds a step may take (LIMIT, or what is left of TOTAL_S when that is
# at least MIN), or nothing when less than MIN is left
fits() {
  local left=$((TOTAL_S - $(elapsed)))
  if [ "$left" -ge "$1" ]; then echo "$1"; elif [ "$left" -ge "$2" ]; then echo "$left"; fi
}

# yolo_lat from this checkout; wheels that travelled in .whl/ into a site folder beside it
SITE=/tmp/yolo_lat_site
rm -rf "$SITE" && mkdir -p "$SITE"
if ls .whl/ultralytics-*.whl > /dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$SITE" .whl/ultralytics-*.whl \
    .whl/ultralytics_thop-*.whl > "$LOGS/install.log" 2>&1 || echo "ultralytics wheel install failed"
fi
export PYTHONPATH="$PWD:$SITE:${PYTHONPATH:-}"
{
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem --format=csv 2>&1
  "$PY" -c "import torch, triton, ultralytics; print('torch', torch.__version__, 'triton', triton.__version__, 'ultralytics', ultralytics.__version__)" 2>&1
} | tee "$LOGS/info.txt"

JOBS=8; SMOKE_BENCH=""; MODEL_DEVICE=0; SIZES=640,1920,2560,1280,320; DECODE_DEVICE=cuda; DECODE_STATIC=cuda_graph
CONTEXTS=1024,4096,16384,65536,131072
if [ "$DEVICE" = cpu ]; then
  export TRITON_INTERPRET=1  # no GPU: the kernels run in Triton's interpreter (the settings' default)
  JOBS=2; SMOKE_BENCH="smoke=True"; MODEL_DEVICE=cpu; SIZES=64; DECODE_DEVICE=cpu; DECODE_STATIC=eager; CONTEXTS=256,1024
fi

step "1 kernels: correctness"
# (without CUDA, e.g. DEVICE=cpu, the tests run their tiny cases in Triton's interpreter and skip the rest)
if limit=$(fits 130 60) && [ -n "$limit" ]; then
  timeout "$limit" "$PY" -m pytest -p no:cacheprovider -q -m gpu -n $JOBS --max-worker-restart 64 --timeout 90 \
    tests/test_gpu_kernels.py --gpu-report "$OUT/gpu_check.json" > "$LOGS/gpu_check.log" 2>&1
  echo "exit $?"; grep -E '^(FAILED|ERROR)' "$LOGS/gpu_check.log" | cut -c1-200 | head -n 10; tail -n 1 "$LOGS/gpu_check.log"
else echo "skipped (time)"; fi

step "2 kernels: speed, stages, launch settings"
if limit=$(fits 120 60) && [ -n "$limit" ]; then
  timeout "$limit" "$PY" -m yolo_lat.cli benchmark kernels part=ours out="$OUT/gpu_bench.json" budget=$((limit - 30)) \
    $SMOKE_BENCH > "$LOGS/gpu_bench.log" 2>&1
  echo "exit $?"; tail -n 2 "$LOGS/gpu_bench.log"
else echo "skipped (time)"; fi

step "3 fla comparison"
FLA_SITE=/tmp/fla_site
if ! ls .whl/fla_core-*.whl > /dev/null 2>&1 || [ "$DEVICE" != cuda ]; then
  echo "fla skipped (no wheel or CPU smoke run)"
elif ! limit=$(fits 90 45) || [ -z "$limit" ]; then
  echo "skipped (time)"
elif "$PY" -m pip install -q --no-index --no-deps --target "$FLA_SITE" .whl/fla_core-*.whl > "$LOGS/fla_install.log" 2>&1; then
  PYTHONPATH="$FLA_SITE:$PYTHONPATH" timeout "$limit" "$PY" -m yolo_lat.cli benchmark kernels part=fla \
    out="$LOGS/gpu_bench_fla.json" > "$LOGS/gpu_bench_fla.log" 2>&1
  echo "exit $?"
else
  echo "fla install failed"
fi

MODELS=yolo-lat-n,yolo26n,yolo12n,yolo-lat-s,yolo26s,yolo12s,yolo-lat-pico,yolo12-ela-n
step "4 detectors: fused ELA kernels, fp16, CUDA graphs"
if limit=$(fits 120 60) && [ -n "$limit" ]; then
  timeout "$limit" "$PY" -m yolo_lat.cli benchmark models models=$MODELS imgsz=$SIZES batch=1 formats=pytorch \
    device=$MODEL_DEVICE half=True cuda_graph=True runs=50 plots=False project="$OUT" name=models_gpu \
    > "$LOGS/models_gpu.log" 2>&1
  echo "exit $?"; grep -A40 "Latency relative" "$LOGS/models_gpu.log" | head -n 30
else echo "skipped (time)"; fi

step "5 text GPU tests"
if limit=$(fits 45 30) && [ -n "$limit" ]; then
  timeout "$limit" "$PY" -m pytest tests/test_text_generate.py tests/test_text_static.py -k cuda -q -p no:cacheprovider > "$LOGS/text_tests.log" 2>&1
  echo "exit $?"; tail -n 3 "$LOGS/text_tests.log"
else echo "skipped (time)"; fi

step "6 text: decode latency, state vs KV cache"
if limit=$(fits 70 40) && [ -n "$limit" ]; then
  timeout "$limit" "$PY" -m yolo_lat.cli benchmark decode device=$DECODE_DEVICE contexts=$CONTEXTS budget=0.5 static=$DECODE_STATIC \
    out="$OUT/decode_gpu.json" > "$LOGS/decode_gpu.log" 2>&1
  echo "exit $?"; tail -n 12 "$LOGS/decode_gpu.log"
else echo "skipped (time)"; fi

step "7 detectors: plain-PyTorch ELA (YOLO_LAT_KERNELS=torch)"
if limit=$(fits 60 40) && [ -n "$limit" ]; then
  YOLO_LAT_KERNELS=torch timeout "$limit" "$PY" -m yolo_lat.cli benchmark models models=yolo-lat-n,yolo12-ela-n,yolo-lat-pico \
    imgsz=$SIZES batch=1 formats=pytorch device=$MODEL_DEVICE half=True cuda_graph=True runs=30 plots=False \
    project="$OUT" name=models_gpu_torch > "$LOGS/models_gpu_torch.log" 2>&1
  echo "exit $?"
else echo "skipped (time)"; fi

step "summary"
if [ -f "$OUT/gpu_bench.json" ]; then
  "$PY" -m yolo_lat.cli benchmark kernels part=summary out="$OUT/gpu_bench.json" fla="$LOGS/gpu_bench_fla.json" \
    $SMOKE_BENCH
fi
for log in "$LOGS"/*; do echo "===== $(basename "$log")"; tail -c 400000 "$log"; done > "$OUT/device_log.txt"
rm -rf "$OUT"/*_files "$OUT"/*.md  # at most 8 files come back: keep the JSON (Markdown is rebuilt from it)
echo "total $(elapsed)s"
