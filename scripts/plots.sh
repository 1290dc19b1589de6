#!/usr/bin/env bash
# Regenerates the two figures of docs/performance.md, docs/scaling.svg and
# docs/soak.svg, from fresh runs of the release binaries on this machine:
#
# - scaling: notifications/s (the simulator's --json) and the server's CPU
#   seconds (/proc) against connected clients (100, 1,000, 10,000), for the
#   original and fan-out mixes;
# - soak: the server's RSS (/proc) and events/s (its /metrics endpoint,
#   sampled every half second) over a 100 M-event run (SOAK_EVENTS).
#
# Plots are drawn by gnuplot (Debian package gnuplot-nox), which needs no
# build and no Python stack; the data it drew stays in docs/plots/.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v gnuplot >/dev/null || {
  echo "gnuplot not found: install the Debian package gnuplot-nox" >&2
  exit 1
}
soak_events=${SOAK_EVENTS:-100000000}
cargo build --release -q
bin=target/release/follower-maze
sim=target/release/follower-maze-sim
data=docs/plots
mkdir -p "$data"
work=$(mktemp -d)
server=
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# Starts the server with "$@"; sets $server, $event_port, $client_port.
start_server() {
  "$bin" --event-port 0 --client-port 0 --stats-interval-ms 0 "$@" >"$work/server.log" 2>&1 &
  server=$!
  until grep -q "for clients on" "$work/server.log"; do sleep 0.05; done
  event_port=$(grep "for the event source on" "$work/server.log" | grep -oE '[0-9]+$')
  client_port=$(grep "for clients on" "$work/server.log" | grep -oE '[0-9]+$')
}
stop_server() {
  kill -INT "$server"
  wait "$server" || true
  server=
}
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"; }
json_field() { grep -oE "\"$2\":[0-9.]+" "$1" | cut -d: -f2; }

# Scaling: the original mix's default run (10 M events) at every size; the
# fan-out mix (a tenth broadcasts) with about 20 M notifications a run.
# Lines are counted, not checked (--count-only), so the rate is the
# server's, as in scripts/fanout-run.sh.
echo "# mix clients notifications_per_second server_cpu_seconds events" >"$data/scaling.dat"
for mix in original fanout; do
  for clients in 100 1000 10000; do
    events=10000000
    [ "$mix" = fanout ] && events=$((200000000 / clients))
    start_server
    "$sim" --event-port "$event_port" --client-port "$client_port" --mix "$mix" \
      --concurrency-level "$clients" --total-events "$events" --log-interval 0 \
      --count-only --json "$work/run.json" >/dev/null 2>&1
    grep -q '"passed":true' "$work/run.json" || { echo "run failed: $mix $clients" >&2; cat "$work/run.json" >&2; exit 1; }
    rate=$(json_field "$work/run.json" notifications_per_second)
    cpu=$(cpu_s "$server")
    stop_server
    echo "$mix $clients $rate $cpu $events" | tee -a "$data/scaling.dat"
  done
done

# Soak: sample RSS and the routed-events counter every half second.
metrics_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
start_server --metrics-addr "127.0.0.1:$metrics_port"
scrape() {
  exec 3<>"/dev/tcp/127.0.0.1/$metrics_port"
  printf 'GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n' >&3
  grep -m1 '^follower_maze_events_routed_total ' <&3 | cut -d' ' -f2
  exec 3<&-
}
echo "# seconds rss_kib events_routed" >"$data/soak.dat"
(
  start=$(date +%s.%N)
  while kill -0 "$server" 2>/dev/null; do
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$server/status" 2>/dev/null) || break
    routed=$(scrape 2>/dev/null) || break
    echo "$(python3 -c "print(f'{$(date +%s.%N) - $start:.2f}')") $rss $routed" >>"$data/soak.dat"
    sleep 0.5
  done
) &
sampler=$!
"$sim" --event-port "$event_port" --client-port "$client_port" --total-events "$soak_events" \
  --log-interval 0 --json "$work/soak.json" >/dev/null 2>&1
grep -q '"passed":true' "$work/soak.json" || { echo "the soak failed" >&2; cat "$work/soak.json" >&2; exit 1; }
sleep 1
stop_server
wait "$sampler" 2>/dev/null || true
echo "soak: $(wc -l <"$data/soak.dat") samples, $(json_field "$work/soak.json" events_per_second) events/s overall"

gnuplot <<GP
set terminal svg size 900,420 dynamic font "sans,12" background "white"
set output "docs/scaling.svg"
set multiplot layout 1,2 title "follower-maze on one 2-core machine: fan-out against connected clients"
set logscale x
set xlabel "connected clients"
set xtics ("100" 100, "1,000" 1000, "10,000" 10000)
set key top left
set ylabel "delivered notifications/s (millions)"
plot "$data/scaling.dat" using (\$2):(strcol(1) eq "original" ? \$3/1e6 : 1/0) with linespoints lw 2 title "original mix", \
     "" using (\$2):(strcol(1) eq "fanout" ? \$3/1e6 : 1/0) with linespoints lw 2 title "fan-out mix"
set ylabel "server CPU seconds per run"
plot "$data/scaling.dat" using (\$2):(strcol(1) eq "original" ? \$4 : 1/0) with linespoints lw 2 title "original mix", \
     "" using (\$2):(strcol(1) eq "fanout" ? \$4 : 1/0) with linespoints lw 2 title "fan-out mix"
unset multiplot

set output "docs/soak.svg"
unset logscale x
set xtics autofreq
set multiplot layout 1,2 title "follower-maze soak: $soak_events events, original mix, 100 clients"
set xlabel "seconds"
set key off
set ylabel "server RSS (MiB)"
set yrange [0:*]
plot "$data/soak.dat" using 1:(\$2/1024) with lines lw 2
set ylabel "events routed per second (millions)"
prev_t = NaN; prev_e = NaN
rate(t, e) = (r = (e - prev_e) / (t - prev_t) / 1e6, prev_t = t, prev_e = e, r)
plot "$data/soak.dat" using 1:(rate(\$1, \$3)) with lines lw 2
unset multiplot
GP
echo "wrote docs/scaling.svg and docs/soak.svg"
