#!/usr/bin/env bash
# The main job: set up (idempotent), then show which sentences of a real
# reasoning trace matter, from the authors' bundled results for MATH problem 330
# (DeepSeek-R1-Distill-Qwen-14B): every sentence with its function tags and
# counterfactual importance, and the top anchors.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
exec .venv/bin/anchors show examples/data/problem_330 "$@"
