#!/usr/bin/env bash
# The one GPU check of the plugin (bench/gpu_check.py): fp16 / bf16 AMP steps of every family,
# the peer table at 224 px (Swin 192) in bf16, compile on/off, peak memory. About 6-8 minutes on
# one GPU; results in bench/results/gpu_check/gpu_check.{json,md}. Extra arguments go to the
# script, e.g. `bash bench/gpu_check.sh --device cpu --out-dir /tmp/gpu_check` (tiny CPU form).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
[ -x .venv/bin/python ] && PYTHON=.venv/bin/python
exec timeout 480 "$PYTHON" bench/gpu_check.py "$@"
