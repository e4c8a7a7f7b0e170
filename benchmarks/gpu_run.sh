#!/usr/bin/env bash
# One command for the GPU machine: correctness check, then benchmarks; JSON under $OUT; a compact
# table last. Every step has its own time limit and a failing step does not stop the next one.
#
#   OUT=/some/dir bash benchmarks/gpu_run.sh
#
# Needs python3 with torch and triton (the device image has them); imports yolo_lat straight from
# this checkout (benchmarks/_checkout.py: no install, no Ultralytics). fla-core, for the causal
# comparison, comes from a carried wheel in .whl/ and is optional.
# Time limits (seconds, overridable): CHECK_S=150 BENCH_S=150 FLA_S=120; budgets inside are lower.
# CHECK_ARGS / BENCH_ARGS add options (a CPU smoke test of this script:
#   CHECK_ARGS="--device cpu --max-length 1" BENCH_ARGS=--smoke bash benchmarks/gpu_run.sh).
set -u
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/yolo_lat_gpu}"
LOGS=/tmp/yolo_lat_gpu_logs  # logs stay here; $OUT gets 3 files: gpu_check.json gpu_bench.json gpu_logs.txt
mkdir -p "$OUT" "$LOGS"
PY="${PY:-python3}"
CHECK_S="${CHECK_S:-150}"
BENCH_S="${BENCH_S:-150}"
FLA_S="${FLA_S:-120}"
export PYTHONUNBUFFERED=1
start=$(date +%s)

{
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem --format=csv 2>&1
  "$PY" -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" 2>&1
} > "$LOGS/gpu_info.txt"
cat "$LOGS/gpu_info.txt"

echo "== check (limit ${CHECK_S}s)"
timeout "$CHECK_S" "$PY" benchmarks/gpu_check.py --out "$OUT/gpu_check.json" --jobs 8 \
  --budget-s $((CHECK_S - 30)) ${CHECK_ARGS:-} > "$LOGS/gpu_check.log" 2>&1
echo "check exit $? after $(($(date +%s) - start))s"
grep -E '^FAIL' "$LOGS/gpu_check.log" | cut -c1-300 | head -n 20
tail -n 1 "$LOGS/gpu_check.log"

echo "== bench (limit ${BENCH_S}s)"
timeout "$BENCH_S" "$PY" benchmarks/gpu_bench.py --part ours --out "$OUT/gpu_bench.json" \
  --budget-s $((BENCH_S - 40)) ${BENCH_ARGS:-} > "$LOGS/gpu_bench.log" 2>&1
echo "bench exit $? after $(($(date +%s) - start))s"

echo "== fla (limit ${FLA_S}s)"
FLA_SITE=/tmp/fla_site
if ls .whl/fla_core-*.whl > /dev/null 2>&1 \
  && "$PY" -m pip install -q --no-index --no-deps --target "$FLA_SITE" .whl/fla_core-*.whl > "$LOGS/fla_install.log" 2>&1; then
  PYTHONPATH="$FLA_SITE:${PYTHONPATH:-}" timeout "$FLA_S" "$PY" benchmarks/gpu_bench.py --part fla \
    --out "$LOGS/gpu_bench_fla.json" ${BENCH_ARGS:-} > "$LOGS/gpu_bench_fla.log" 2>&1
  echo "fla exit $? after $(($(date +%s) - start))s"
else
  echo "fla: no wheel in .whl/ or its install failed (see fla_install.log); fla rows skipped"
fi

echo "== summary"
if [ -f "$OUT/gpu_bench.json" ]; then
  "$PY" benchmarks/gpu_bench.py --part summary --out "$OUT/gpu_bench.json" --fla "$LOGS/gpu_bench_fla.json" \
    ${BENCH_ARGS:-}
else
  echo "no gpu_bench.json: see gpu_bench.log"; tail -n 20 "$LOGS/gpu_bench.log"
fi
for log in gpu_info.txt gpu_check.log gpu_bench.log fla_install.log gpu_bench_fla.log; do
  [ -f "$LOGS/$log" ] && { echo "===== $log"; tail -c 1000000 "$LOGS/$log"; }
done > "$OUT/gpu_logs.txt"
echo "total $(($(date +%s) - start))s"
