#!/usr/bin/env bash
# Build the whole a2mim-plugin environment from nothing, idempotently.
#
#   bash tools/setup_env.sh            # creates ./.venv (or $A2MIM_VENV)
#
# A second run checks a stamp and returns in seconds. The mmcv 2.1.0 wheel built from the
# PyPI sdist (with CPU ops) is cached under $A2MIM_CACHE keyed on the torch version, so a
# fresh clone on the same machine skips the 7-14 minute compile.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${A2MIM_VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3}
CACHE=${A2MIM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/a2mim-plugin}

TORCH_VERSION=2.14.1
TORCHVISION_VERSION=0.29.1
MMCV_VERSION=2.1.0
OPENMMLAB_PKGS=(mmengine==0.10.7 mmpretrain==1.2.0 mmdet==3.3.0 mmsegmentation==1.2.2)
# openmim 0.3.9's declared chain (opendatalab, openxlab) downgrades setuptools and pins old
# requests/rich; `mim` itself needs only these (Click >= 8.3 breaks mim 0.3.9's optional
# --srun-args with "'Sentinel' object has no attribute 'split'"):
MIM_RUNTIME=("Click<8.3" colorama model-index pandas requests rich tabulate)

log() { printf '[setup %(%H:%M:%S)T] %s\n' -1 "$*"; }

# The stamp covers everything that decides what gets installed.
stamp_key=$(cat "$ROOT/tools/setup_env.sh" "$ROOT/pyproject.toml" | sha256sum | cut -c1-16)
stamp=$VENV/.a2mim-setup-$stamp_key
if [[ -f $stamp ]] && "$VENV/bin/python" -c 'import mmcv._ext, a2mim_plugin' 2>/dev/null; then
  log "environment up to date ($VENV)"
  exit 0
fi

if [[ ! -x $VENV/bin/python ]]; then
  log "creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY=$VENV/bin/python
pip_install() { "$PY" -m pip install --disable-pip-version-check -q "$@"; }

log "torch $TORCH_VERSION, torchvision $TORCHVISION_VERSION, setuptools<82"
pip_install --upgrade pip
pip_install "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION" \
  "setuptools>=77.0.3,<82" wheel ninja

# --- mmcv 2.1.0 with ops, built once per torch version ------------------------------------
if ! "$PY" -c "import mmcv, mmcv._ext; assert mmcv.__version__ == '$MMCV_VERSION'" 2>/dev/null; then
  wheel_dir=$CACHE/mmcv-$MMCV_VERSION-torch-$TORCH_VERSION-$("$PY" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
  wheel=$(ls "$wheel_dir"/mmcv-"$MMCV_VERSION"-*.whl 2>/dev/null | head -n1 || true)
  if [[ -z $wheel ]]; then
    log "building mmcv $MMCV_VERSION with CPU ops (7-14 minutes on 2 cores)"
    build=$(mktemp -d)
    trap 'rm -rf "$build"' EXIT
    "$PY" -m pip download -q --no-deps --no-build-isolation --no-binary :all: "mmcv==$MMCV_VERSION" -d "$build"
    tar -xzf "$build"/mmcv-"$MMCV_VERSION".tar.gz -C "$build"
    src=$build/mmcv-$MMCV_VERSION
    # torch>=2.10 headers require C++20; mmcv 2.1.0 hard-codes -std=c++17.
    sed -i 's/-std=c++17/-std=c++20/g' "$src/setup.py"
    grep -q 'std=c++20' "$src/setup.py" || { echo "mmcv setup.py patch did not apply" >&2; exit 1; }
    mkdir -p "$wheel_dir"
    (cd "$src" && MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} CFLAGS="-O1 -g0" CXXFLAGS="-O1 -g0" \
      "$PY" -m pip wheel -q --no-build-isolation --no-deps . -w "$build/wheel")
    mv "$build"/wheel/mmcv-*.whl "$wheel_dir/"
    wheel=$(ls "$wheel_dir"/mmcv-"$MMCV_VERSION"-*.whl | head -n1)
  else
    log "using cached mmcv wheel $wheel"
  fi
  pip_install "$wheel"
fi

log "OpenMMLab packages and openmim"
pip_install "${OPENMMLAB_PKGS[@]}" ftfy regex "${MIM_RUNTIME[@]}"
pip_install --no-deps openmim==0.3.9
# transformers together with pycocotools breaks `import mmpretrain.models` (multimodal import).
if "$PY" -m pip show -q transformers 2>/dev/null; then
  log "removing transformers (breaks import mmpretrain.models next to pycocotools)"
  "$PY" -m pip uninstall -y -q transformers
fi

log "a2mim-plugin (editable) with test extras (pytest, timm)"
pip_install --no-build-isolation -e "$ROOT[test]"

"$PY" - <<'PY'
import mmcv, mmcv.ops, mmdet, mmengine, mmpretrain, mmseg, timm, torch, a2mim_plugin  # noqa: F401
print(f'torch {torch.__version__}, mmcv {mmcv.__version__}, mmengine {mmengine.__version__}, '
      f'mmpretrain {mmpretrain.__version__}, mmdet {mmdet.__version__}, mmseg {mmseg.__version__}, '
      f'timm {timm.__version__}')
PY
rm -f "$VENV"/.a2mim-setup-*
touch "$stamp"
log "done: $VENV"
