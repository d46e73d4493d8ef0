#!/usr/bin/env bash
# Builds the reference environment for bench/parity.py: ModelScope's own M2FP code.
# Separate venv because ModelScope's import chain needs torchvision (timm), and the
# only torchvision that imports on this platform pairs with torch 2.14.1 (a large CUDA build
# that also runs on CPU). Our own runtime never needs any of this.
set -euo pipefail
VENV=${PARITY_VENV:-.cache/parity-venv}
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import modelscope, torch, torchvision, timm, transformers" 2>/dev/null; then
  echo "$VENV ready"; exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q torch==2.14.1 torchvision==0.29.1
"$VENV/bin/pip" install -q modelscope timm addict simplejson sortedcontainers pillow numpy opencv-python-headless einops transformers datasets
echo "$VENV ready"
