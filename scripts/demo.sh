#!/usr/bin/env bash
# The main job: set up (idempotent), then analyse a bundled problem with the
# embedded model (models/tiny-reasoner, trained in this repository) by all three
# method families, and write the result JSON, the reference-schema files and a
# self-contained HTML report:
#
#   1. black-box resampling  `anchors analyze`   base trace, rollouts from before every
#                                                 sentence (and forced answers), metrics
#   2. receiver heads         `anchors receiver-heads`
#   3. attention suppression  `anchors suppression`  (and the WAAD/FAI rhythm)
#   4. function tags          `anchors tag`      (learned tagger)
#   5. report                 `anchors report`   -> OUT/report.html
#
# Usage: scripts/demo.sh [--rollouts N] [--out DIR] [--seed S]
# (defaults: 100 rollouts per sentence as in the paper, runs/demo, seed 0; under a
# minute on 2 idle cores). Re-running resumes: finished rollouts are kept.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

ROLLOUTS=100
OUT="runs/demo"
SEED=0
while [ $# -gt 0 ]; do
  case "$1" in
    --rollouts) ROLLOUTS="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --seed) SEED="$2"; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$ROLLOUTS" in
  ''|*[!0-9]*|0) echo "demo.sh: --rollouts needs a positive integer, got '$ROLLOUTS'" >&2; exit 2 ;;
esac

# The test suite runs this script after its own setup (ANCHORS_SKIP_SETUP=1).
[ "${ANCHORS_SKIP_SETUP:-0}" = 1 ] || bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
ANCHORS=.venv/bin/anchors
MODEL=models/tiny-reasoner
PROBLEM="$MODEL/demo_problem.json"
started=$SECONDS

step() { printf '\n==> %s\n' "$*" >&2; }

if [ "$ROLLOUTS" -lt 100 ]; then
  COUNT="$ROLLOUTS rollouts per sentence (the paper uses 100: a reduced count, noisier scores)"
else
  COUNT="$ROLLOUTS rollouts per sentence"
fi
step "1/5 black-box resampling with $MODEL: $COUNT, forced answers included"
"$ANCHORS" analyze --model "$MODEL" --problem "$PROBLEM" --out "$OUT" --rollouts "$ROLLOUTS" --forced \
  --seed "$SEED" --device cpu
DIR="$(ls -d "$OUT"/*_base_solution/problem_* | head -n 1)"
RESULT="$DIR/result.json"

step "2/5 receiver heads (top 4 of the model's 12 heads outside layer 0)"
"$ANCHORS" receiver-heads --model "$MODEL" --result "$RESULT" --top_k 4

step "3/5 attention suppression (S×S log-KL matrix) and the WAAD/FAI attention rhythm"
"$ANCHORS" suppression --model "$MODEL" --result "$RESULT"
"$ANCHORS" rhythm --model "$MODEL" --result "$RESULT"

step "4/5 function tags (learned tagger, docs/function-tags.md)"
"$ANCHORS" tag "$RESULT" --table -o "$RESULT"

step "5/5 report"
"$ANCHORS" report "$RESULT" --rollouts "$DIR" -o "$OUT/report.html"

step "summary"
"$ANCHORS" show "$RESULT" --top 5
cat >&2 <<EOF

done in $((SECONDS - started)) s ($COUNT):
  result JSON        $RESULT   (resampling, receiver_heads, attention_suppression, attention_rhythm)
  reference schema   $DIR/chunks_labeled.json, step_importance.json, summary.json, chunk_*/solutions.json
  report             $OUT/report.html   (open it in a browser; no network needed)
EOF
