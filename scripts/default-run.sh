#!/usr/bin/env bash
# Runs the default simulation (10 M events, 100 clients of 1,000 users,
# shuffled batches of up to 100) against a fresh release server RUNS times
# (default 3), printing each run's summary line and the server's peak RSS
# and CPU time.
# Extra arguments go to the simulator.
# SERVER=path runs another server binary (an older build, say) under this
# tree's simulator, so two servers are compared with the same client side.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-3}
cargo build --release -q
for ((i = 1; i <= runs; i++)); do
  echo "run $i of $runs"
  "${SERVER:-target/release/follower-maze}" --event-port 0 --client-port 0 --stats-interval-ms 0 --log-level info > /tmp/fm-server.$$ 2>&1 &
  server=$!
  until grep -q "for clients on" /tmp/fm-server.$$; do sleep 0.05; done
  ports=($(grep -o "127.0.0.1:[0-9]*" /tmp/fm-server.$$ | cut -d: -f2))
  event_port=${ports[0]} client_port=${ports[1]}
  target/release/follower-maze-sim --event-port "$event_port" --client-port "$client_port" --log-interval 0 "$@" 2>&1 | grep -E "events/s|RECEIVED|FAIL|fail" || true
  echo "server peak RSS: $(grep VmHWM /proc/$server/status | awk '{print $2, $3}')"
  echo "server CPU: $(awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' /proc/$server/stat) s (user + system)"
  kill -INT "$server"; wait "$server" || true
done
rm -f /tmp/fm-server.$$
