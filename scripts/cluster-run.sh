#!/usr/bin/env bash
# The default simulation (10 M events, 100 clients of 1,000 users) on a
# cluster: a fresh nats-server (JetStream, file storage in a temp dir), one
# ingest and two edges, the clients spread over both edges; and, alternating
# with it in the same script, on one standalone server. RUNS (default 3) of
# each. Prints every run (the simulator's summary, wall time, each process's
# CPU time) and the medians of events/s and wall time for both.
# Extra arguments go to the simulator in both setups.
#
#   scripts/cluster-run.sh                 # the default size
#   RUNS=1 scripts/cluster-run.sh --total-events 1000000
#
# SERVER=path runs another follower-maze binary (an older build, say) in
# both setups under this tree's simulator.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-3}
command -v nats-server >/dev/null || {
  echo "nats-server not found: install the Debian package nats-server" >&2
  exit 1
}
cargo build --release -q
bin=${SERVER:-target/release/follower-maze}
sim=target/release/follower-maze-sim
work=$(mktemp -d)
results=$work/results
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# Waits (a minute at most) for a line matching $2 in log $1.
wait_for() {
  local tries=0
  until grep -q "$2" "$1"; do
    sleep 0.05
    tries=$((tries + 1))
    [ "$tries" -lt 1200 ] || { echo "no \"$2\" in $1:" >&2; cat "$1" >&2; exit 1; }
  done
}
# Waits for a line matching $2 in log $1 and prints its last host:port's port.
port_in() {
  wait_for "$1" "$2"
  grep "$2" "$1" | head -1 | grep -oE '[0-9.]+:[0-9]+' | tail -1 | cut -d: -f2
}
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"; }
# Runs the simulator with $@, prints its summary and wall time, and records
# "setup events/s wall_s" in the results.
simulate() {
  local setup=$1
  shift
  local start end out
  start=$(date +%s.%N)
  out=$("$sim" --log-interval 0 "$@" 2>&1) || true
  end=$(date +%s.%N)
  grep -E "events/s|RECEIVED|FAIL|fail" <<<"$out" || true
  grep -q "ALL NOTIFICATIONS RECEIVED" <<<"$out" || { echo "$setup run failed:" >&2; echo "$out" >&2; exit 1; }
  local rate wall
  rate=$(grep -oE '[0-9]+ events/s' <<<"$out" | head -1 | grep -oE '^[0-9]+')
  wall=$(python3 -c "print(f'{$end - $start:.2f}')")
  echo "wall time: $wall s"
  echo "$setup $rate $wall" >>"$results"
}

cluster_once() {
  local run=$1
  shift
  local store=$work/store.$run nats_port
  mkdir -p "$store"
  nats_port=$(free_port)
  nats-server -js -a 127.0.0.1 -p "$nats_port" -sd "$store" >"$store/nats.log" 2>&1 &
  local nats=$!
  pids+=("$nats")
  wait_for "$store/nats.log" "Server is ready"
  local url=nats://127.0.0.1:$nats_port args=(--stats-interval-ms 0 --event-port 0 --client-port 0)
  "$bin" ingest --nats-url "$url" "${args[@]}" >"$store/ingest.log" 2>&1 &
  local ingest=$!
  "$bin" edge --nats-url "$url" "${args[@]}" >"$store/edge1.log" 2>&1 &
  local edge1=$!
  "$bin" edge --nats-url "$url" "${args[@]}" >"$store/edge2.log" 2>&1 &
  local edge2=$!
  pids+=("$ingest" "$edge1" "$edge2")
  local event_port client1 client2
  event_port=$(port_in "$store/ingest.log" "listening for the event source on")
  client1=$(port_in "$store/edge1.log" "listening for clients on")
  client2=$(port_in "$store/edge2.log" "listening for clients on")
  echo "cluster run $run: ingest :$event_port, edges :$client1 and :$client2, nats-server :$nats_port"
  simulate cluster --event-port "$event_port" --client-ports "$client1,$client2" "$@"
  echo "CPU: ingest $(cpu_s "$ingest") s, edges $(cpu_s "$edge1") s and $(cpu_s "$edge2") s, nats-server $(cpu_s "$nats") s"
  kill -INT "$ingest" "$edge1" "$edge2"
  wait "$ingest" "$edge1" "$edge2" || true
  kill "$nats"
  wait "$nats" || true
}

standalone_once() {
  local run=$1
  shift
  local log=$work/standalone.$run.log
  "$bin" --event-port 0 --client-port 0 --stats-interval-ms 0 >"$log" 2>&1 &
  local server=$!
  pids+=("$server")
  local event_port client_port
  event_port=$(port_in "$log" "for the event source on")
  client_port=$(port_in "$log" "for clients on")
  echo "standalone run $run"
  simulate standalone --event-port "$event_port" --client-port "$client_port" "$@"
  echo "CPU: server $(cpu_s "$server") s"
  kill -INT "$server"
  wait "$server" || true
}

for ((i = 1; i <= runs; i++)); do
  cluster_once "$i" "$@"
  standalone_once "$i" "$@"
done
echo
echo "medians of $runs (setup events/s wall_s):"
python3 - "$results" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
med = {}
for setup in ("cluster", "standalone"):
    cols = [list(map(float, r[1:])) for r in rows if r[0] == setup]
    med[setup] = [statistics.median(c) for c in zip(*cols)]
    print(setup, " ".join(f"{v:.6g}" for v in med[setup]))
print("cluster/standalone events/s", f"{med['cluster'][0] / med['standalone'][0]:.3f}")
PY
