#!/usr/bin/env bash
# Runs the whole test suite (the README's `cargo test`) RUNS times (default
# 10) while BUSY processes (default 2, one per core here) spin on the CPU,
# so every test runs on a machine as busy as a shared CI runner on a bad
# day. A test that fails only under contention either found a product bug
# (a timer that counts the clock where it should count work) or measures
# time where it should count events. Prints each run's result and the
# names of the tests that failed, then how many runs passed.
#
#   scripts/contended-tests.sh [cargo test arguments...]
#
# The busy loops are plain shell loops, stopped when the script ends.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-10}
busy=${BUSY:-2}
cargo test --no-run -q "$@" 2>/dev/null
pids=()
cleanup() { [ ${#pids[@]} -eq 0 ] || kill "${pids[@]}" 2>/dev/null || true; }
trap cleanup EXIT
for ((i = 0; i < busy; i++)); do
  (while :; do :; done) &
  pids+=($!)
done
logs=$(mktemp -d)
passed=0
for ((run = 1; run <= runs; run++)); do
  start=$(date +%s)
  if cargo test --no-fail-fast "$@" >"$logs/run-$run.log" 2>&1; then
    passed=$((passed + 1))
    echo "run $run: passed in $(($(date +%s) - start)) s"
  else
    echo "run $run: FAILED in $(($(date +%s) - start)) s (log: $logs/run-$run.log)"
    grep -E '^test .* FAILED$|panicked at' "$logs/run-$run.log" | sed 's/^/  /' | head -20
  fi
done
echo "$passed of $runs runs passed with $busy busy processes; logs in $logs"
[ "$passed" -eq "$runs" ]
