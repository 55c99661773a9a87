#!/usr/bin/env bash
# Installs everything the project needs on a Debian 12 machine and builds the
# Python package into .venv. Safe to re-run: each step is skipped or
# incremental when already done.
#   scripts/setup.sh            # apt packages, .venv, pinned pip packages, pip install .
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

log() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

# --- Debian packages (compilers, CMake, header-only C++ deps, GoogleTest, Chromium) -
APT_PACKAGES=(build-essential cmake ninja-build git pkg-config
              clang libclang-rt-14-dev   # libFuzzer and the sanitizers, for scripts/fuzz.sh
              libeigen3-dev libfmt-dev nlohmann-json3-dev libgtest-dev libgmock-dev
              libcpp-httplib-dev libpcre2-dev
              python3 python3-dev python3-venv
              chromium)   # headless, for tests/python/test_report.py (the HTML report in a browser)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  log "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- Python virtual environment ----------------------------------------------
PYTHON="${PYTHON:-python3}"
if [[ ! -x .venv/bin/python ]]; then
  log "creating .venv with $("$PYTHON" --version)"
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)

# torch first, alone: the local CPU wheel. An unpinned or later torch would pull
# gigabytes of CUDA packages.
if ! .venv/bin/python -c "import torch, sys; sys.exit(0 if torch.__version__.split('+')[0] == '2.13.0' else 1)" 2>/dev/null; then
  log "installing torch==2.13.0 (CPU wheel)"
  "${PIP[@]}" install torch==2.13.0
fi
log "installing pinned Python packages (constraints.txt)"
"${PIP[@]}" install -c constraints.txt -r requirements/test.txt

# --- The package itself: C++ core + bindings, built against this torch -------
log "building and installing thought-anchors into .venv (incremental)"
"${PIP[@]}" install --no-build-isolation --no-deps -c constraints.txt .
.venv/bin/python -c "import thought_anchors as ta; print('[setup] thought_anchors', ta.__version__, 'ready', file=__import__('sys').stderr)"
