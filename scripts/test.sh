#!/usr/bin/env bash
# The whole test suite: set up (idempotent), build the C++ library and its
# GoogleTest suite, run ctest, then pytest against the installed package.
# A missing dependency is an error, never a skip.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh

JOBS="${JOBS:-$(nproc)}"
BUILD="build/test"
echo "[test] configuring and building the C++ tests in $BUILD" >&2
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DPython3_EXECUTABLE="$ROOT/.venv/bin/python" \
      -DANCHORS_BUILD_PYTHON=OFF -DANCHORS_BUILD_TESTS=ON >/dev/null
cmake --build "$BUILD" -j "$JOBS"

echo "[test] ctest" >&2
ctest --test-dir "$BUILD" --output-on-failure -j "$JOBS" --no-tests=error

echo "[test] pytest" >&2
.venv/bin/python -m pytest -q tests/python
