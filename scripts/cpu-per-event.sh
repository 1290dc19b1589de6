#!/usr/bin/env bash
# The per-event cost of the default run: RUNS (default 5) alternated runs
# of the generator alone and of the default simulation against a fresh
# release server, then the medians.
#
#   scripts/cpu-per-event.sh [SIMULATOR FLAGS...]
#
# Each run prints:
#   - the generator's rate: `follower-maze-sim --generate-only`, the same
#     stream generated through the model into a discarding sink;
#   - the end-to-end rate: the simulator's events/s against the server;
#   - their ratio (end to end / generator);
#   - the server's CPU (its on-CPU time from /proc/PID/schedstat, user
#     and system, over the whole run) per event and per notification;
#   - its peak RSS (VmHWM).
# Before the runs, the criterion bench `parse/events/frame+parse` (framing
# and parsing alone, in process) gives a time per event; the server's CPU
# per event is also printed as a multiple of it, which is steadier than
# either figure on a shared machine whose speed drifts from day to day.
#
# Flags go to both simulator runs (e.g. `--total-events 100000000`, or
# `--mix fanout --concurrency-level 10000`). SERVER=path measures another
# server binary; NO_BENCH=1 skips the parse bench.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-5}
server_bin=${SERVER:-target/release/follower-maze}
sim=target/release/follower-maze-sim
cargo build --release -q
hz=$(getconf CLK_TCK)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

parse_ns=
if [ -z "${NO_BENCH:-}" ]; then
  echo "parse bench (criterion, parse/events/frame+parse, 1,000,000 events an iteration)..."
  cargo bench -q --bench parse -- --warm-up-time 1 --measurement-time 4 'parse/events/frame\+parse' >"$work/bench" 2>&1 ||
    { cat "$work/bench" >&2; exit 1; }
  # Criterion's median estimate, in ns per iteration of 1,000,000 events.
  parse_ns=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["median"]["point_estimate"] / 1e6)' \
    "target/criterion/parse_events/frame+parse/new/estimates.json")
  printf "parse only: %.1f ns per event\n" "$parse_ns"
fi

# The generator alone: prints its events/s.
generate() {
  "$sim" --generate-only "$@" 2>&1 | grep -oE '[0-9]+ events/s' | grep -oE '^[0-9]+'
}

# One default run against a fresh server: prints "events/s notifications
# events cpu_s rss_kB".
serve() {
  "$server_bin" --event-port 0 --client-port 0 --stats-interval-ms 0 --log-level info >"$work/server" 2>&1 &
  local server=$!
  until grep -q "for clients on" "$work/server"; do
    kill -0 "$server" 2>/dev/null || { cat "$work/server" >&2; exit 1; }
    sleep 0.05
  done
  local ports
  ports=($(grep -oE "127.0.0.1:[0-9]+" "$work/server" | cut -d: -f2))
  if ! "$sim" --event-port "${ports[0]}" --client-port "${ports[1]}" --log-interval 0 \
    --json "$work/report.json" "$@" >"$work/sim" 2>&1; then
    cat "$work/sim" >&2
    kill -INT "$server"
    exit 1
  fi
  local cpu rss
  # On-CPU time in ns from schedstat (exact); /proc/PID/stat's user +
  # system ticks (10 ms each) where schedstat is missing.
  if [ -r "/proc/$server/schedstat" ]; then
    cpu=$(awk '{print $1 / 1e9}' "/proc/$server/schedstat")
  else
    cpu=$(awk -v hz="$hz" '{print ($14 + $15) / hz}' "/proc/$server/stat")
  fi
  rss=$(awk '/VmHWM/ {print $2}' "/proc/$server/status")
  kill -INT "$server"
  wait "$server" || true
  python3 - "$work/report.json" "$cpu" "$rss" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
assert report["passed"], "the run failed: " + str(report["failures"][:3])
print(report["events_per_second"], report["notifications"], report["events"], sys.argv[2], sys.argv[3])
PY
}

echo "run generator_events/s end_to_end_events/s ratio server_cpu_s ns_per_event ns_per_notification peak_rss_kB"
for ((i = 1; i <= runs; i++)); do
  generator=$(generate "$@")
  read -r rate notifications events cpu rss < <(serve "$@")
  python3 - "$i" "$generator" "$rate" "$notifications" "$events" "$cpu" "$rss" <<'PY' | tee -a "$work/rows"
import sys
i, generator, rate, notifications, events, cpu, rss = sys.argv[1:]
generator, rate, cpu = float(generator), float(rate), float(cpu)
per_event = cpu * 1e9 / int(events)
per_notification = cpu * 1e9 / max(int(notifications), 1)
print(f"{i} {generator:.0f} {rate:.0f} {rate / generator:.3f} {cpu:.3f} {per_event:.1f} {per_notification:.1f} {rss}")
PY
done

echo
python3 - "$work/rows" "$parse_ns" <<'PY'
import statistics, sys
rows = [list(map(float, line.split()[1:])) for line in open(sys.argv[1])]
generator, rate, ratio, cpu, per_event, per_notification, rss = (statistics.median(c) for c in zip(*rows))
print(f"medians of {len(rows)}:")
print(f"  generator:           {generator / 1e6:.2f} M events/s")
print(f"  end to end:          {rate / 1e6:.2f} M events/s")
print(f"  end to end / generator: {ratio:.3f}")
print(f"  server CPU:          {cpu:.3f} s, {per_event:.1f} ns per event, {per_notification:.1f} ns per notification")
print(f"  server peak RSS:     {rss / 1024:.1f} MiB")
if sys.argv[2]:
    parse = float(sys.argv[2])
    print(f"  server CPU per event / parse-only time per event: {per_event / parse:.2f} ({parse:.1f} ns)")
PY
