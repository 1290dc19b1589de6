#!/usr/bin/env bash
# The fan-out target: the `fanout` mix, 10,000 clients of 100,000 users,
# 200,000 events (about 200 million notifications), against a fresh release
# server RUNS times (default 3). Each run first measures the loopback
# baseline over the same 10,000 connections, then prints delivered
# notification bytes/s against it, and the server's peak RSS
# and CPU time.
# Lines are only counted (--count-only) so the ratio measures the server;
# VERIFY=1 checks every line instead. Extra arguments go to the simulator.
# SERVER=path runs another server binary (an older build, say) under this
# tree's simulator, so two servers are compared with the same client side.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-3}
count_only=--count-only
[ "${VERIFY:-0}" = 1 ] && count_only=
cargo build --release -q
log=$(mktemp)
for ((i = 1; i <= runs; i++)); do
  echo "run $i of $runs"
  "${SERVER:-target/release/follower-maze}" --event-port 0 --client-port 0 --stats-interval-ms 0 > "$log" 2>&1 &
  server=$!
  until grep -q "for clients on" "$log"; do sleep 0.05; done
  ports=($(grep -o "127.0.0.1:[0-9]*" "$log" | cut -d: -f2))
  target/release/follower-maze-sim --event-port "${ports[0]}" --client-port "${ports[1]}" \
    --mix fanout --concurrency-level 10000 --number-of-users 100000 --total-events 200000 \
    --max-pending 100000000 --ratio $count_only --log-interval 0 "$@" 2>&1 |
    grep -E "baseline:|events/s|delivered/|RECEIVED|fail|FAIL" || true
  echo "server peak RSS: $(awk '/VmHWM/ {print $2, $3}' /proc/$server/status)"
  echo "server CPU: $(awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' /proc/$server/stat) s (user + system)"
  kill -INT "$server"; wait "$server" || true
done
rm -f "$log"
