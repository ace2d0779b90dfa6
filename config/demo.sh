#!/usr/bin/env bash
# The whole system on one laptop, in one command: a Mosquitto of its own
# (the system's binary, a generated config on 127.0.0.1:18830), the
# aggregator with its dashboard, three simulated boards (a week of
# history), and the kiosk's window as board `demo`, live, all over MQTT. Ctrl-C (or closing the
# window) stops everything; the data stays in the demo folder.
#
#   config/demo.sh [--no-kiosk] [--dir DIR]
#
# Needs what `tests/setup --run` installs (mosquitto among it).
set -euo pipefail
cd "$(dirname "$0")/.."

kiosk=1 dir="${TMPDIR:-/tmp}/huddle-demo" port=18830
while [ $# -gt 0 ]; do
  case "$1" in
    --no-kiosk) kiosk=0; shift ;;
    --dir) dir="$2"; shift 2 ;;
    *) echo "usage: config/demo.sh [--no-kiosk] [--dir DIR]" >&2; exit 2 ;;
  esac
done
command -v mosquitto >/dev/null || PATH="$PATH:/usr/sbin"
command -v mosquitto >/dev/null || { echo "config/demo.sh: mosquitto is missing: apt-get install mosquitto" >&2; exit 1; }

# HUDDLE_DEMO_BIN: a folder with both programs already built (skips the build).
bin="${HUDDLE_DEMO_BIN:-}"
if [ -z "$bin" ]; then
  cargo build --release --bins
  bin="${CARGO_TARGET_DIR:-target}/release"
fi
mkdir -p "$dir"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true' EXIT

# Anonymous on loopback only: a demo, not a site (config/mosquitto/setup.sh
# makes the secured broker).
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$port" > "$dir/mosquitto.conf"
mosquitto -c "$dir/mosquitto.conf" >"$dir/mosquitto.log" 2>&1 &
pids+=($!)
export HUDDLE_MQTT_URL="mqtt://127.0.0.1:$port"

HUDDLE_DATA_DIR="$dir/aggregator" "$bin/huddle-aggregator" --config config/aggregator.toml \
  2>"$dir/aggregator.log" &
pids+=($!)
for _ in $(seq 50); do
  (exec 3<>/dev/tcp/127.0.0.1/8080) 2>/dev/null && break
  sleep 0.2
done

# Three simulated boards, each with three huddles of a simulated week in
# January (their history: on the dashboard, offline once they are done).
"$bin/huddle-kiosk" simulate --boards 3 --huddles 3 --timeout 30 \
  --data-dir "$dir/boards" >"$dir/simulate.log" 2>&1 &

echo "The dashboard: http://127.0.0.1:8080/?token=demo-dashboard-token-change-me"
echo "Logs and data: $dir (Ctrl-C stops everything)"
if [ "$kiosk" = 1 ]; then
  # The kiosk's window, board `demo`: its header says "online"; badge 1001
  # (typed, then Enter) starts a huddle, and its tile on the dashboard follows.
  HUDDLE_DATA_DIR="$dir/kiosk" "$bin/huddle-kiosk" 2>"$dir/kiosk.log"
else
  wait "${pids[1]}"   # the aggregator, until Ctrl-C
fi
