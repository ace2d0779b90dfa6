#!/usr/bin/env bash
# Creates what the site's Mosquitto needs: a CA, the broker's certificate,
# a password file with one user per board plus `aggregator` and one per
# dashboard, the ACL, and mosquitto.conf pointing at them.
#
#   config/mosquitto/setup.sh --site plant1 [--out /etc/mosquitto/huddle]
#       [--host broker.plant1.example] [--port 8883]
#       [--dashboard NAME]... [--web-host NAME]... BOARD=AREA...
#
# BOARD=AREA: the board's id (its user name) and its area, as in the
# board's kiosk.toml ([board] id and area): the ACL lets a board write only
# under huddle/v1/SITE/AREA/BOARD/. A bare BOARD is accepted only for a
# board an earlier run already knows (OUT/boards); a new one without its
# area is an error. Giving a known board another area moves it.
#
# The user `dashboard` always exists; --dashboard NAME adds another
# dashboard user: every program that connects needs its own user, since
# the broker uses the user name as client id (one connection per user).
#
# --web-host NAME (a DNS name or an IP address; repeat it for more names):
# also issue the web dashboard's HTTPS certificate from the same CA, for
# those names only, as OUT/web.crt and OUT/web.key; the script prints the
# [web] cert_file / key_file lines for aggregator.toml. Issued again (same
# key) when the names change; kept on a run without --web-host.
#
# Run again with more boards to add them: the CA, the broker's key,
# existing passwords, boards and dashboards are kept. New passwords are
# appended to OUT/credentials.txt (mode 600): copy each board's into its
# kiosk.toml ([mqtt] username = board id, password), the CA (OUT/ca.crt)
# to every board as mqtt.ca_file, then delete the file. After a run on a
# live broker, reload it (systemctl reload mosquitto, or SIGHUP).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
site="" out="/etc/mosquitto/huddle" host="$(hostname -f 2>/dev/null || hostname)" port=8883
args=() new_dashboards=() web_hosts=()
while [ $# -gt 0 ]; do
  case "$1" in
    --site) site="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --host) host="$2"; shift 2 ;;
    --port) port="$2"; shift 2 ;;
    --dashboard) new_dashboards+=("$2"); shift 2 ;;
    --web-host) web_hosts+=("$2"); shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    -*) echo "setup.sh: unknown option $1" >&2; exit 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
fail() { echo "setup.sh: $*" >&2; exit 2; }
level='^[a-z0-9_-]+$'
[[ "$site" =~ $level ]] || fail "--site must be one topic level of [a-z0-9_-] (got '$site')"

# The dashboard certificate's subjectAltName, from --web-host.
web_san=""
for h in "${web_hosts[@]}"; do
  if [[ "$h" =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ || ( "$h" == *:* && "$h" =~ ^[0-9A-Fa-f:.]+$ ) ]]; then
    entry="IP:$h"
  elif [[ "$h" =~ ^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$ ]]; then
    entry="DNS:$h"
  else
    fail "--web-host '$h' is neither a DNS name nor an IP address"
  fi
  case ",$web_san," in *",$entry,"*) ;; *) web_san+="${web_san:+,}$entry" ;; esac
done

# What earlier runs set up: board -> area, and the dashboard users.
declare -A area=() dashboard=([dashboard]=1)
if [ -f "$out/boards" ]; then
  while read -r b a; do
    case "$b" in ''|'#'*) continue ;; esac
    area[$b]="$a"
  done < "$out/boards"
fi
if [ -f "$out/dashboards" ]; then
  while read -r d; do
    case "$d" in ''|'#'*) continue ;; esac
    dashboard[$d]=1
  done < "$out/dashboards"
fi

for d in "${new_dashboards[@]}"; do
  [[ "$d" =~ $level ]] || fail "dashboard '$d' is not one topic level of [a-z0-9_-]"
  [ "$d" != aggregator ] || fail "'aggregator' is reserved for the aggregator's user"
  [ -z "${area[$d]+x}" ] || fail "'$d' is already a board's user name"
  dashboard[$d]=1
done

declare -A given=()
for arg in "${args[@]}"; do
  b="${arg%%=*}"
  [[ "$b" =~ $level ]] || fail "board '$b' is not one topic level of [a-z0-9_-]"
  if [[ "$arg" == *=* ]]; then
    a="${arg#*=}"
  else
    a="${area[$b]:-}"
    [ -n "$a" ] || fail "board '$b' needs its area: give it as $b=AREA ([board] area in its kiosk.toml); a board may write only under its own area"
  fi
  [[ "$a" =~ $level ]] || fail "area '$a' of board '$b' is not one topic level of [a-z0-9_-]"
  [ "$b" != aggregator ] || fail "'aggregator' is reserved for the aggregator's user"
  [ -z "${dashboard[$b]+x}" ] || fail "'$b' is reserved for a dashboard's user"
  case "$a" in
    alert|aggregator) fail "area '$a' is reserved: huddle/v1/$site/$a/# holds the aggregator's topics" ;;
  esac
  if [ -n "${given[$b]+x}" ] && [ "${given[$b]}" != "$a" ]; then
    fail "board '$b' is given two areas ('${given[$b]}' and '$a')"
  fi
  given[$b]="$a"
  if [ -n "${area[$b]+x}" ] && [ "${area[$b]}" != "$a" ]; then
    echo "setup.sh: board '$b' moves from area '${area[$b]}' to '$a': it may now write only under huddle/v1/$site/$a/$b/; what is retained under huddle/v1/$site/${area[$b]}/$b/ stays on the broker until cleared" >&2
  fi
  area[$b]="$a"
done

# A password file from before boards had areas: every board user needs one.
if [ -f "$out/passwd" ]; then
  while IFS=: read -r user _; do
    [ -n "$user" ] || continue
    [ "$user" = aggregator ] && continue
    [ -n "${dashboard[$user]+x}" ] && continue
    [ -n "${area[$user]+x}" ] || fail "user '$user' in $out/passwd has no area (made by an older setup.sh?): run again with $user=AREA"
  done < "$out/passwd"
fi

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

# The web dashboard's certificate (--web-host): the same CA, its own key
# (P-256: cheap handshakes for many browsers). web.san keeps the names.
web_note=""
if [ -n "$web_san" ]; then
  [ -f web.key ] || openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out web.key 2>/dev/null
  if [ ! -f web.crt ] || [ "$(cat web.san 2>/dev/null)" != "$web_san" ]; then
    openssl req -new -key web.key -subj "/CN=${web_hosts[0]}" -out web.csr 2>/dev/null
    printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n' "$web_san" > web.ext
    openssl x509 -req -in web.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 825 \
      -extfile web.ext -out web.crt 2>/dev/null
    rm -f web.csr web.ext
    echo "$web_san" > web.san
    web_note="issued"
  else
    web_note="kept"
  fi
  chmod 644 web.crt
fi

mapfile -t boards < <(printf '%s\n' "${!area[@]}" | sed '/^$/d' | sort)
mapfile -t dashboards < <(printf '%s\n' "${!dashboard[@]}" | sort)

touch passwd credentials.txt
for user in aggregator "${dashboards[@]}" "${boards[@]}"; do
  if ! grep -q "^$user:" passwd; then
    pass="$(openssl rand -hex 16)"
    mosquitto_passwd -b passwd "$user" "$pass" 2>/dev/null
    echo "$user $pass" >> credentials.txt
  fi
done

{
  echo "# board area: the boards setup.sh knows (the ACL pins each to its area)."
  for b in "${boards[@]}"; do echo "$b ${area[$b]}"; done
} > boards
{
  echo "# dashboard users besides 'dashboard' (setup.sh --dashboard NAME)."
  for d in "${dashboards[@]}"; do [ "$d" = dashboard ] || echo "$d"; done
} > dashboards

# The ACL: the template, with its BOARD block once per board and its
# DASHBOARD block once per dashboard user.
block="" in=""
while IFS= read -r line || [ -n "$line" ]; do
  case "$line" in
    '#BEGIN-BOARD') in=board block=""; continue ;;
    '#BEGIN-DASHBOARD') in=dashboard block=""; continue ;;
    '#END-BOARD')
      for b in "${boards[@]}"; do
        text="${block//@BOARD@/$b}"; text="${text//@AREA@/${area[$b]}}"
        printf '%s\n' "${text//@SITE@/$site}"
      done
      in=""; continue ;;
    '#END-DASHBOARD')
      for d in "${dashboards[@]}"; do
        text="${block//@DASHBOARD@/$d}"
        printf '%s\n' "${text//@SITE@/$site}"
      done
      in=""; continue ;;
  esac
  if [ -n "$in" ]; then
    block+="${block:+$'\n'}$line"
  else
    printf '%s\n' "${line//@SITE@/$site}"
  fi
done < "$here/acl.template" > acl
[ -z "$in" ] || fail "$here/acl.template: #BEGIN-... without its #END-..."

sed -e "s#/etc/mosquitto/huddle#$out#g" -e "s/^listener 8883$/listener $port/" \
  "$here/mosquitto.conf" > mosquitto.conf
# Mosquitto drops privileges to the `mosquitto` user: let it read its files.
if id mosquitto >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  chgrp mosquitto . passwd acl server.key mosquitto.conf
  chmod 750 .
  chmod 640 passwd acl server.key mosquitto.conf
fi
echo "setup.sh: $out ready for site $site (${#boards[@]} boards, ${#dashboards[@]} dashboard users); new passwords in $out/credentials.txt"
if [ -n "$web_note" ]; then
  cat <<END
setup.sh: the dashboard's HTTPS certificate ($web_note) for ${web_san//,/, }: $out/web.crt, key $out/web.key, signed by $out/ca.crt (browsers must trust that CA). For the aggregator:
  sudo install -m 644 $out/web.crt /etc/huddle/dashboard.crt
  sudo install -m 640 -g huddle-aggregator $out/web.key /etc/huddle/dashboard.key
and in [web] of /etc/huddle/aggregator.toml:
cert_file = "/etc/huddle/dashboard.crt"
key_file = "/etc/huddle/dashboard.key"
END
fi
