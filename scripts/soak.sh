#!/usr/bin/env bash
# Soak: EVENTS (default 100,000,000) events of the original mix through the
# release server binary, sampling the server's RSS every second. Memory must
# stay flat. Extra arguments go to the simulator.
set -euo pipefail
cd "$(dirname "$0")/.."
events=${EVENTS:-100000000}
cargo build --release -q
log=$(mktemp)
target/release/follower-maze --event-port 0 --client-port 0 --stats-interval-ms 0 > "$log" 2>&1 &
server=$!
trap 'kill -INT $server 2>/dev/null || true; rm -f "$log"' EXIT
until grep -q "for clients on" "$log"; do sleep 0.05; done
ports=($(grep -o "127.0.0.1:[0-9]*" "$log" | cut -d: -f2))
(
  start=$(date +%s.%N)
  while kill -0 "$server" 2>/dev/null; do
    rss=$(awk '/VmRSS/ {print $2}' /proc/$server/status 2>/dev/null || true)
    [ -n "$rss" ] && printf 'rss t=%5.1fs %6d kB\n' "$(echo "$(date +%s.%N) - $start" | bc)" "$rss"
    sleep 1
  done
) &
sampler=$!
target/release/follower-maze-sim --event-port "${ports[0]}" --client-port "${ports[1]}" \
  --total-events "$events" --log-interval 0 "$@" 2>&1 | grep -E "events/s|RECEIVED|fail|FAIL"
echo "server peak RSS (VmHWM): $(awk '/VmHWM/ {print $2, $3}' /proc/$server/status)"
kill "$sampler" 2>/dev/null || true
