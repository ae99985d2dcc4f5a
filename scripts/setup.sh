#!/usr/bin/env bash
# Install ViDROP and everything it needs into the current Python environment (idempotent, fast when done).
#
# torch is installed first at a pinned release when absent: an open range would make pip fetch the newest
# (CUDA) build. On a GPU machine the same release from PyPI is the CUDA build; an existing torch is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
if ! "$PYTHON" -c "import torch" 2>/dev/null; then
  "$PYTHON" -m pip install --quiet "torch==2.13.0"
fi
"$PYTHON" -m pip install --quiet -r requirements.txt -r requirements-test.txt
"$PYTHON" -m pip install --quiet --no-deps --no-build-isolation -e .
