#!/usr/bin/env bash
# Makes sure the services the test suite talks to answer before any test runs:
#   PostgreSQL  STROM_TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test)  required
#   NATS        STROM_TEST_NATS_URL     (default nats://127.0.0.1:4222), JetStream on       required
#   Valkey      STROM_TEST_VALKEY_URL   (default redis://127.0.0.1:6379)                    optional: warns only
# For each local service that does not answer it tries, in order: a working Docker engine (`docker compose up -d
# postgres nats valkey`), then the locally installed server (the start commands of the rust-svc machine), and otherwise
# stops at once naming what to install. A service on another host is only checked, never started.
# Exit status: 0 when PostgreSQL and NATS answer, 1 otherwise.
# The `bash -c '...' "$host" "$port"` probes take their arguments as $0/$1 on purpose (no quoting issues).
# shellcheck disable=SC2016
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# How long to wait for a server we just started (seconds). Docker may also pull images first, hence the longer bound.
readonly LOCAL_WAIT_S="${STROM_ENSURE_LOCAL_WAIT_S:-30}"
readonly DOCKER_WAIT_S="${STROM_ENSURE_DOCKER_WAIT_S:-120}"

db_url="${STROM_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
nats_url="${STROM_TEST_NATS_URL:-nats://127.0.0.1:4222}"
valkey_url="${STROM_TEST_VALKEY_URL:-redis://127.0.0.1:6379}"

say() { printf 'ensure-services: %s\n' "$*"; }
die() { printf 'ensure-services: %s\n' "$*" >&2; exit 1; }

# url_host_port URL DEFAULT_PORT -> sets $host and $port. Handles user:pass@, [ipv6], paths, queries and, for NATS,
# a comma-separated server list (the first server is checked).
url_host_port() {
  local rest="${1%%,*}"
  rest="${rest#*://}"
  rest="${rest%%/*}"
  rest="${rest%%\?*}"
  rest="${rest##*@}"
  if [[ "$rest" == \[* ]]; then
    host="${rest%%]*}"
    host="${host#[}"
    port="${rest#*]}"
  else
    host="${rest%%:*}"
    port="${rest#"$host"}"
  fi
  port="${port#:}"
  host="${host:-127.0.0.1}"
  port="${port:-$2}"
}

is_local() {
  case "$1" in
    127.* | localhost | ::1) return 0 ;;
    *) return 1 ;;
  esac
}

tcp_open() {
  timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null
}

# --- PostgreSQL -------------------------------------------------------------------------------------------------
url_host_port "$db_url" 5432
readonly pg_host="$host" pg_port="$port"

pg_up() {
  if command -v pg_isready >/dev/null 2>&1; then
    pg_isready -q -h "$pg_host" -p "$pg_port" -t 2
  else
    tcp_open "$pg_host" "$pg_port"
  fi
}

# The *_start_local functions return 0 when they started the server, 1 when it is not installed, 2 when starting it
# failed (for example because it already runs, but not on the address the tests use).
pg_start_local() {
  local version
  command -v pg_ctlcluster >/dev/null 2>&1 || return 1
  version="$(find /etc/postgresql -mindepth 1 -maxdepth 1 -type d -printf '%f\n' 2>/dev/null | sort -V | tail -n 1)"
  [[ -n "$version" ]] || return 1
  say "starting the local PostgreSQL $version cluster (pg_ctlcluster $version main start)"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || return 2
}

# --- NATS -------------------------------------------------------------------------------------------------------
url_host_port "$nats_url" 4222
readonly nats_host="$host" nats_port="$port"

# A NATS server greets every connection with an INFO line whose JSON says whether JetStream is on, so one TCP read
# answers both questions without the monitoring port (which the local server does not enable).
nats_info() {
  timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1" && head -n 1 <&3' "$nats_host" "$nats_port" 2>/dev/null || true
}
nats_up() { [[ "$(nats_info)" == INFO* ]]; }
nats_js() { [[ "$(nats_info)" == *'"jetstream":true'* ]]; }

nats_start_local() {
  local bin
  bin="$(command -v nats-server 2>/dev/null || true)"
  [[ -n "$bin" ]] || { [[ -x /usr/sbin/nats-server ]] && bin=/usr/sbin/nats-server; } || return 1
  say "starting the local nats-server with JetStream on $nats_host:$nats_port"
  mkdir -p /var/lib/nats-server
  # No --oknodo: a nats-server that already runs but does not answer here is an error to report, not success.
  start-stop-daemon --start --background --exec "$bin" -- \
    -a "$nats_host" -p "$nats_port" -js -sd /var/lib/nats-server -l /var/log/nats-server.log || return 2
}

# --- Valkey / Redis (optional) ----------------------------------------------------------------------------------
url_host_port "$valkey_url" 6379
readonly valkey_host="$host" valkey_port="$port"

valkey_up() {
  [[ "$(timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1" && printf "PING\r\n" >&3 && head -c 5 <&3' \
    "$valkey_host" "$valkey_port" 2>/dev/null || true)" == "+PONG" ]]
}

valkey_start_local() {
  local bin
  bin="$(command -v valkey-server 2>/dev/null || command -v redis-server 2>/dev/null || true)"
  [[ -n "$bin" ]] || return 1
  say "starting the local $(basename "$bin") on $valkey_host:$valkey_port"
  mkdir -p /var/lib/redis /var/log/redis
  "$bin" --daemonize yes --bind 127.0.0.1 -::1 --port "$valkey_port" --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
}

# --- helpers ----------------------------------------------------------------------------------------------------
docker_engine_works() {
  command -v docker >/dev/null 2>&1 && timeout 10 docker info >/dev/null 2>&1
}

# wait_for CHECK SECONDS: polls CHECK every half second until it succeeds or the bound runs out.
wait_for() {
  local check="$1" deadline=$((SECONDS + $2))
  until "$check"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
}

# --- checks -----------------------------------------------------------------------------------------------------
missing=()
pg_up || missing+=(postgres)
if nats_up; then
  nats_js || die "NATS on $nats_host:$nats_port answers but JetStream is off: restart nats-server with -js"
else
  missing+=(nats)
fi

for service in "${missing[@]}"; do
  case "$service" in
    postgres) h="$pg_host" p="$pg_port" ;;
    nats) h="$nats_host" p="$nats_port" ;;
  esac
  if ! is_local "$h"; then
    die "$service not reachable on $h:$p (a remote host from STROM_TEST_*_URL): start it there, or unset the variable"
  fi
done

if ((${#missing[@]} > 0)); then
  say "not answering: ${missing[*]}"
  if docker_engine_works; then
    say "a Docker engine works: docker compose up -d postgres nats valkey"
    "$root/scripts/compose.sh" up -d postgres nats valkey
    for service in "${missing[@]}"; do
      case "$service" in
        postgres) wait_for pg_up "$DOCKER_WAIT_S" || die "PostgreSQL container not ready on $pg_host:$pg_port after ${DOCKER_WAIT_S} s (docker compose logs postgres)" ;;
        nats) wait_for nats_js "$DOCKER_WAIT_S" || die "NATS container not ready on $nats_host:$nats_port after ${DOCKER_WAIT_S} s (docker compose logs nats)" ;;
      esac
    done
  else
    for service in "${missing[@]}"; do
      case "$service" in
        postgres)
          rc=0
          pg_start_local || rc=$?
          ((rc != 1)) ||
            die "PostgreSQL not reachable on $pg_host:$pg_port: install postgresql (apt-get install postgresql) or Docker"
          ((rc != 2)) ||
            die "PostgreSQL not reachable on $pg_host:$pg_port and the local cluster could not be started (see above)"
          wait_for pg_up "$LOCAL_WAIT_S" ||
            die "PostgreSQL did not answer on $pg_host:$pg_port within ${LOCAL_WAIT_S} s of starting it (see /var/log/postgresql/)"
          ;;
        nats)
          rc=0
          nats_start_local || rc=$?
          ((rc != 1)) ||
            die "NATS not reachable on $nats_host:$nats_port: install nats-server (apt-get install nats-server) or Docker"
          ((rc != 2)) ||
            die "NATS not reachable on $nats_host:$nats_port and the local nats-server could not be started (see above)"
          wait_for nats_js "$LOCAL_WAIT_S" ||
            die "NATS with JetStream did not answer on $nats_host:$nats_port within ${LOCAL_WAIT_S} s of starting it (see /var/log/nats-server.log)"
          ;;
      esac
    done
  fi
fi

# Reachable is not enough for Postgres: the test database must exist and accept this URL's credentials.
if command -v psql >/dev/null 2>&1; then
  if ! err="$(psql "$db_url" -X -q -t -c 'select 1' 2>&1 >/dev/null)"; then
    die "PostgreSQL answers on $pg_host:$pg_port but rejects $db_url: $err"
  fi
fi
say "PostgreSQL ok ($pg_host:$pg_port)"
say "NATS ok, JetStream on ($nats_host:$nats_port)"

if valkey_up; then
  say "Valkey/Redis ok ($valkey_host:$valkey_port)"
elif is_local "$valkey_host" && ! docker_engine_works && valkey_start_local && wait_for valkey_up 10; then
  say "Valkey/Redis ok ($valkey_host:$valkey_port, started locally)"
else
  say "warning: Valkey/Redis not reachable on $valkey_host:$valkey_port (optional: without it strom keeps idempotency keys in memory)"
fi
