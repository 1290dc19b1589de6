#!/usr/bin/env bash
# Compares two server binaries under this tree's simulator, alternating
# them run by run (old, new, old, new, ...) so the shared machine's drift
# hits both alike, on the default run and the fan-out run. Prints each
# run, then the medians and new/old ratios.
#
#   scripts/compare-servers.sh OLD_BINARY [NEW_BINARY]
#
# NEW_BINARY defaults to this tree's release build; RUNS (default 5) runs
# of each binary per mix.
set -euo pipefail
cd "$(dirname "$0")/.."
old=${1:?usage: $0 OLD_BINARY [NEW_BINARY]}
new=${2:-target/release/follower-maze}
runs=${RUNS:-5}
cargo build --release -q
results=$(mktemp)
# One run: prints "mix label events/s notifications/s cpu_s rss_kb".
one() {
  local mix=$1 label=$2 binary=$3 script=scripts/default-run.sh
  [ "$mix" = fanout ] && script=scripts/fanout-run.sh
  local out
  out=$(RUNS=1 SERVER=$binary "$script")
  if ! grep -q "ALL NOTIFICATIONS RECEIVED" <<<"$out"; then
    echo "$mix $label: run failed:" >&2
    echo "$out" >&2
    exit 1
  fi
  local rates cpu rss
  rates=$(grep -oE '[0-9]+ events/s, [0-9]+ notifications/s' <<<"$out" | grep -oE '^[0-9]+|, [0-9]+' | tr -d ', ' | paste -sd' ')
  cpu=$(grep -oE 'server CPU: [0-9.]+' <<<"$out" | grep -oE '[0-9.]+$')
  rss=$(grep -oE 'server peak RSS: [0-9]+' <<<"$out" | grep -oE '[0-9]+$')
  echo "$mix $label $rates $cpu $rss" | tee -a "$results"
}
echo "mix binary events/s notifications/s server_cpu_s peak_rss_kB"
for mix in default fanout; do
  for ((i = 1; i <= runs; i++)); do
    one "$mix" old "$old"
    one "$mix" new "$new"
  done
done
echo
echo "medians of $runs (mix binary events/s notifications/s server_cpu_s peak_rss_kB), new/old:"
python3 - "$results" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
for mix in ("default", "fanout"):
    med = {}
    for label in ("old", "new"):
        cols = [list(map(float, r[2:])) for r in rows if r[0] == mix and r[1] == label]
        med[label] = [statistics.median(c) for c in zip(*cols)]
        print(mix, label, " ".join(f"{v:.6g}" for v in med[label]))
    print(mix, "new/old", " ".join(f"{n / o:.3f}" for n, o in zip(med["new"], med["old"])))
PY
rm -f "$results"
