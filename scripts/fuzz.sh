#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with clang (build/fuzz, incremental)
# and runs each for a bounded time on a temporary copy of its committed seed
# corpus (fuzz/corpus/<target>/, never modified). Exits non-zero on any
# finding -- a crash, a sanitizer report, an exception other than
# anchors::Error, a broken invariant, a timeout or an allocation past the
# limits -- after printing the saved input and how to reproduce it.
#   bash scripts/fuzz.sh                               # every target, ~2 minutes in all
#   FUZZ_SECONDS_PER_TARGET=600 bash scripts/fuzz.sh answers segmentation
# Targets run FUZZ_JOBS at a time (default: nproc). The default time per
# target spreads FUZZ_TOTAL_SECONDS (120) over the targets and jobs.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

log() { printf '\033[1m[fuzz]\033[0m %s\n' "$*" >&2; }

if ! command -v clang++ >/dev/null 2>&1; then
  log "error: clang++ not found; the fuzz targets need clang with libFuzzer (scripts/setup.sh installs clang and libclang-rt-14-dev)"
  exit 1
fi

BUILD="build/fuzz"
JOBS="${JOBS:-$(nproc)}"
log "configuring and building the fuzz targets in $BUILD"
cmake -S fuzz -B "$BUILD" -G Ninja -DCMAKE_CXX_COMPILER=clang++ >/dev/null
cmake --build "$BUILD" -j "$JOBS"

if (($#)); then
  TARGETS=("$@")
else
  mapfile -t TARGETS < "$BUILD/targets.txt"
fi
for t in "${TARGETS[@]}"; do
  [[ -x "$BUILD/fuzz_$t" ]] || { log "error: no fuzz target \"$t\" (targets: $(tr '\n' ' ' < "$BUILD/targets.txt"))"; exit 1; }
done

FUZZ_JOBS="${FUZZ_JOBS:-$(nproc)}"
TOTAL="${FUZZ_TOTAL_SECONDS:-120}"
SECONDS_PER_TARGET="${FUZZ_SECONDS_PER_TARGET:-$(( TOTAL * FUZZ_JOBS / ${#TARGETS[@]} ))}"
((SECONDS_PER_TARGET >= 1)) || SECONDS_PER_TARGET=1

RUN="$(mktemp -d "${TMPDIR:-/tmp}/anchors-fuzz.XXXXXX")"
trap 'rm -rf "$RUN"' EXIT
# Inputs that found something are kept here (the run folder is removed).
FINDINGS="$ROOT/$BUILD/findings"
mkdir -p "$FINDINGS"

# Leaks count as findings (LeakSanitizer, on by default); UBSan reports come
# with a stack.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_stack_use_after_return=1:strict_string_checks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"

run_target() {
  local t="$1"
  local corpus="$RUN/corpus/$t"
  mkdir -p "$corpus" "$FINDINGS/$t" "$RUN/scratch/$t"
  if [[ -d "fuzz/corpus/$t" ]]; then cp -R "fuzz/corpus/$t/." "$corpus/"; fi
  local args=(-max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024
              -print_final_stats=1 -artifact_prefix="$FINDINGS/$t/")
  [[ -f "fuzz/dict/$t.dict" ]] && args+=(-dict="fuzz/dict/$t.dict")
  local rc=0
  FUZZ_TMPDIR="$RUN/scratch/$t" "$BUILD/fuzz_$t" "${args[@]}" "$corpus" >"$RUN/$t.log" 2>&1 || rc=$?
  echo "$rc" >"$RUN/$t.rc"
}

log "running ${#TARGETS[@]} targets for ${SECONDS_PER_TARGET} s each, ${FUZZ_JOBS} at a time"
started=$(date +%s)
running=0
for t in "${TARGETS[@]}"; do
  if ((running >= FUZZ_JOBS)); then
    wait -n || true
    running=$((running - 1))
  fi
  run_target "$t" &
  running=$((running + 1))
done
wait || true

# The last libFuzzer status line ("#N DONE cov: C ft: F corp: U/S ...") and the final stats.
field() { grep -E "$2" "$RUN/$1.log" | tail -n 1 | sed -E "s/.*$2[[:space:]]*([^[:space:]]+).*/\\1/" || true; }
failed=()
printf '\n%-20s %12s %8s %14s %7s %7s %s\n' target executions exec/s corpus cov ft result
for t in "${TARGETS[@]}"; do
  rc="$(cat "$RUN/$t.rc")"
  execs="$(field "$t" 'stat::number_of_executed_units:')"
  rate="$(field "$t" 'stat::average_exec_per_sec:')"
  corp="$(field "$t" 'corp:')"
  cov="$(field "$t" 'cov:')"
  ft="$(field "$t" 'ft:')"
  result=ok
  if [[ "$rc" != 0 ]]; then result="FINDING (exit $rc)"; failed+=("$t"); fi
  printf '%-20s %12s %8s %14s %7s %7s %s\n' "$t" "${execs:--}" "${rate:--}" "${corp:--}" "${cov:--}" "${ft:--}" "$result"
done
log "fuzzed for $(( $(date +%s) - started )) s"

if ((${#failed[@]})); then
  for t in "${failed[@]}"; do
    printf '\n\033[1m[fuzz] finding in %s\033[0m\n' "$t" >&2
    grep -E '==FUZZ FINDING==|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|SUMMARY:|ALARM:|out-of-memory|deadly signal|uncaught' \
      "$RUN/$t.log" | head -n 20 >&2 || true
    input="$(grep -oE 'Test unit written to [^[:space:]]+' "$RUN/$t.log" | tail -n 1 | sed 's/Test unit written to //' || true)"
    cp "$RUN/$t.log" "$FINDINGS/$t/last-run.log"
    printf '  log:        %s\n' "$FINDINGS/$t/last-run.log" >&2
    if [[ -n "$input" ]]; then
      printf '  input:      %s\n' "$input" >&2
      printf '  reproduce:  %s/fuzz_%s %s\n' "$BUILD" "$t" "$input" >&2
    fi
  done
  log "fix each finding with a regression test, and add its input to fuzz/corpus/<target>/ (fuzz/README.md)"
  exit 1
fi
