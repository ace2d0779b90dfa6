#!/bin/bash
# The Pi rig's agent in the guest (not part of the product). Started at
# every boot by huddle-rig.service from the rig's second disk (/rig).
#
# First boot: installs the kiosk's package with dpkg -i, writes the board's
# config and CA, and starts the shipped unit (the package enables it, so
# later boots start it by themselves). Then it answers the host on the
# virtio serial port `rig`: one line `ID COMMAND`, answered by `BEGIN ID`,
# the reply's lines, `END ID` (a host that gave up waiting skips stale
# answers by their ID). Commands: state, pss, events, unacked,
# integrity, checks, sizes.
set -u
log() { echo "rig-agent: $*"; }

if ! dpkg-query -W -f='${Status}' huddle-kiosk 2>/dev/null | grep -q "ok installed"; then
  log "installing $(ls /rig/huddle-kiosk_*.deb)"
  if dpkg -i /rig/huddle-kiosk_*_arm64.deb > /tmp/dpkg.log 2>&1; then
    log "dpkg -i ok"
  else
    log "dpkg -i FAILED"
    sed 's/^/rig-agent: dpkg: /' /tmp/dpkg.log
  fi
  install -m 0640 -o root -g huddle /rig/kiosk.toml /etc/huddle/kiosk.toml
  install -m 0644 /rig/ca.crt /etc/huddle/ca.crt
  sync
  systemctl start --no-block huddle-kiosk.service
  log "installed"
else
  log "installed already; boot $(journalctl --list-boots 2>/dev/null | wc -l)"
fi

db() { ls /var/lib/huddle-kiosk/kiosk-*.db 2>/dev/null | head -n 1; }
pid() { systemctl show -p MainPID --value huddle-kiosk.service; }

answer() {
  case "$1" in
    state)
      systemctl show huddle-kiosk.service -p ActiveState -p SubState -p NRestarts \
        -p ExecMainStartTimestampMonotonic -p ActiveEnterTimestampMonotonic \
        -p MainPID -p Result -p ExecMainStatus -p ExecMainCode
      echo "Clock=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
      ;;
    pss)
      p=$(pid)
      [ "$p" != 0 ] && grep -E '^(Rss|Pss):' "/proc/$p/smaps_rollup"
      ;;
    events)
      f=$(db)
      [ -n "$f" ] && sqlite3 -readonly "$f" "SELECT seq || ' ' || id || ' ' || kind FROM outbox ORDER BY seq"
      ;;
    unacked)
      f=$(db)
      [ -n "$f" ] && sqlite3 -readonly "$f" "SELECT count(*) FROM outbox WHERE delivered_at IS NULL"
      ;;
    integrity)
      f=$(db)
      [ -n "$f" ] && sqlite3 -readonly "$f" "PRAGMA integrity_check"
      ;;
    checks)
      # The arm64 build's field tools: a good H10301 frame decodes, a
      # frame with a bad parity bit is refused (exit 1), the aggregator's
      # package runs its config check, and `huddle-kiosk doctor` runs.
      out=$(huddle-kiosk badge decode 10001001000010000100100100 2>&1)
      echo "decode_good_exit=$?"; echo "decode_good=${out//$'\n'/ }"
      out=$(huddle-kiosk badge decode 00001001000010000100100100 2>&1)
      echo "decode_bad_exit=$?"; echo "decode_bad=${out//$'\n'/ }"
      rm -rf /tmp/agg && mkdir -p /tmp/agg && dpkg-deb -x /rig/huddle-aggregator_*_arm64.deb /tmp/agg
      out=$(cd /tmp/agg/etc/huddle && /tmp/agg/usr/bin/huddle-aggregator --config aggregator.toml --check 2>&1)
      echo "aggregator_check_exit=$?"; echo "aggregator_check=${out//$'\n'/ }"
      # The technician's checks, as the kiosk's user, with the shipped config.
      out=$(runuser -u huddle -- huddle-kiosk --config /etc/huddle/kiosk.toml doctor 2>&1)
      echo "doctor_exit=$?"; echo "doctor=${out//$'\n'/ | }"
      ;;
    sizes)
      echo "binary_bytes=$(stat -c %s /usr/bin/huddle-kiosk)"
      f=$(db)
      [ -n "$f" ] && echo "db_bytes=$(stat -c %s "$f")" && echo "wal_bytes=$(stat -c %s "$f-wal" 2>/dev/null || echo 0)"
      ;;
    *) echo "unknown command: $1" ;;
  esac
}

port=/dev/virtio-ports/rig
for _ in $(seq 100); do [ -e "$port" ] && break; sleep 0.1; done
exec 3<> "$port" || { log "no $port"; exit 1; }
log "listening"
# A read returns end-of-file while the host has no connection to the
# port: wait for one.
while true; do
  if read -r -u 3 id cmd; then
    { echo "BEGIN $id"; answer "$cmd" 2>&1; echo "END $id"; } >&3
  else
    sleep 0.2
  fi
done
