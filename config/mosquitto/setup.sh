#!/usr/bin/env bash
# Creates what the site's Mosquitto needs: a CA, the broker's certificate,
# a password file with one user per board plus `aggregator` and
# `dashboard`, the ACL, and mosquitto.conf pointing at them.
#
#   config/mosquitto/setup.sh --site plant1 [--out /etc/mosquitto/huddle]
#       [--host broker.plant1.example] [--port 8883] BOARD...
#
# Run again with more boards to add them: the CA, the broker's key and
# existing passwords are kept. New passwords are appended to
# OUT/credentials.txt (mode 600): copy each board's into its kiosk.toml
# ([mqtt] username = board id, password), the CA (OUT/ca.crt) to every
# board as mqtt.ca_file, then delete the file.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
site="" out="/etc/mosquitto/huddle" host="$(hostname -f 2>/dev/null || hostname)" port=8883
boards=()
while [ $# -gt 0 ]; do
  case "$1" in
    --site) site="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --host) host="$2"; shift 2 ;;
    --port) port="$2"; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    -*) echo "setup.sh: unknown option $1" >&2; exit 2 ;;
    *) boards+=("$1"); shift ;;
  esac
done
level='^[a-z0-9_-]+$'
[[ "$site" =~ $level ]] || { echo "setup.sh: --site must be one topic level of [a-z0-9_-] (got '$site')" >&2; exit 2; }
for b in "${boards[@]}"; do
  [[ "$b" =~ $level ]] || { echo "setup.sh: board '$b' is not one topic level of [a-z0-9_-]" >&2; exit 2; }
  case "$b" in aggregator|dashboard) echo "setup.sh: '$b' is reserved for the $b's user" >&2; exit 2 ;; esac
done
for tool in openssl mosquitto_passwd; do
  command -v "$tool" >/dev/null || { echo "setup.sh: $tool is missing: apt-get install openssl mosquitto" >&2; exit 1; }
done

umask 077
mkdir -p "$out"
cd "$out"

if [ ! -f ca.key ]; then
  openssl req -x509 -newkey rsa:3072 -nodes -days 3650 -subj "/CN=huddle-board $site CA" \
    -keyout ca.key -out ca.crt 2>/dev/null
fi
if [ ! -f server.key ]; then
  san="DNS:$host,DNS:localhost,IP:127.0.0.1"
  openssl req -newkey rsa:3072 -nodes -subj "/CN=$host" -keyout server.key -out server.csr 2>/dev/null
  printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$san" > server.ext
  openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 825 \
    -extfile server.ext -out server.crt 2>/dev/null
  rm -f server.csr server.ext
fi
chmod 644 ca.crt server.crt

touch passwd credentials.txt
for user in aggregator dashboard "${boards[@]}"; do
  if ! grep -q "^$user:" passwd; then
    pass="$(openssl rand -hex 16)"
    mosquitto_passwd -b passwd "$user" "$pass" 2>/dev/null
    echo "$user $pass" >> credentials.txt
  fi
done

sed "s/@SITE@/$site/g" "$here/acl.template" > acl
sed -e "s#/etc/mosquitto/huddle#$out#g" -e "s/^listener 8883$/listener $port/" \
  "$here/mosquitto.conf" > mosquitto.conf
# Mosquitto drops privileges to the `mosquitto` user: let it read its files.
if id mosquitto >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  chgrp mosquitto . passwd acl server.key mosquitto.conf
  chmod 750 .
  chmod 640 passwd acl server.key mosquitto.conf
fi
echo "setup.sh: $out ready for site $site (${#boards[@]} boards); new passwords in $out/credentials.txt"
