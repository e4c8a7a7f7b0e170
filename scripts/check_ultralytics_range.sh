#!/usr/bin/env bash
# Builds every shipped YOLO-LAT YAML under other Ultralytics releases (installed into temporary
# folders, nothing in .venv changes) and prints each model's parameter count: the evidence behind
# TESTED_RANGE in yolo_lat/nn/shim.py. Needs PyPI.  Usage: bash scripts/check_ultralytics_range.sh 8.4.0 8.4.100
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
for version in "${@:-8.4.0}"; do
  target=$(mktemp -d)
  "$PY" -m pip install -q --no-deps --target "$target" "ultralytics==$version"
  YOLO_OFFLINE=1 PYTHONPATH="$target" "$PY" - <<'PYTHON'
import torch, ultralytics
from yolo_lat.cfg import CFG_DIR
from yolo_lat.models import YOLOLAT
counts = {}
for yaml in sorted(CFG_DIR.glob("*.yaml")):
    for scale in ("n", "x") if yaml.stem != "yolo-lat-pico" else ("",):
        name = f"{yaml.stem}-{scale}.yaml" if scale else yaml.name
        model = YOLOLAT(name).model.eval()
        model(torch.zeros(1, 3, 64, 64))
        counts[name] = sum(p.numel() for p in model.parameters())
print("ultralytics", ultralytics.__version__, counts)
PYTHON
  rm -rf "$target"
done
