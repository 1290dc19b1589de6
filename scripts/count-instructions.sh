#!/usr/bin/env bash
# Instructions the server executes for a default run, counted by valgrind's
# callgrind: deterministic for the same binary and stream (the simulator's
# seed fixes it), so two builds compare to a fraction of a percent on a
# machine whose wall-clock figures swing by tens of percent. What reads and
# writes return may differ from run to run; in practice the totals of two
# runs of one binary agree to about 1 in 10^7.
#
#   scripts/count-instructions.sh [SERVER_BINARY] [SIMULATOR FLAGS...]
#
# SERVER_BINARY defaults to this tree's release build. EVENTS (default
# 1,000,000) events; a run takes about 10 s per million under valgrind.
# Needs Debian's `valgrind`. Keeps the profile as callgrind.out.<pid>
# in the current directory (git ignores it) for `callgrind_annotate`.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "needs valgrind (Debian package valgrind)" >&2; exit 1; }
server_bin=target/release/follower-maze
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
  server_bin=$1
  shift
fi
events=${EVENTS:-1000000}
cargo build --release -q
log=$(mktemp)
trap 'rm -f "$log"' EXIT
valgrind --tool=callgrind --callgrind-out-file=callgrind.out.%p "$server_bin" \
  --event-port 0 --client-port 0 --stats-interval-ms 0 >"$log" 2>&1 &
server=$!
until grep -q "for clients on" "$log"; do
  kill -0 "$server" 2>/dev/null || { cat "$log" >&2; exit 1; }
  sleep 0.2
done
ports=($(grep -oE "127.0.0.1:[0-9]+" "$log" | cut -d: -f2))
target/release/follower-maze-sim --event-port "${ports[0]}" --client-port "${ports[1]}" \
  --total-events "$events" --log-interval 0 "$@" 2>&1 | grep -E "events/s|RECEIVED|FAIL|fail" || true
kill -INT "$server"
wait "$server" || true
total=$(grep -oE "Collected : [0-9]+" "$log" | grep -oE "[0-9]+$")
echo "server instructions: $total for $events events, $((total / events)) per event (callgrind.out.$server)"
