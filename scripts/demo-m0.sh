#!/usr/bin/env bash
# M0 demo (`make demo-m0`): builds strom, starts `strom serve` on the embedded default (no database, no NATS) on a free
# loopback port with a throw-away dev JWT key, and shows the M0 foundations working against the real binary:
#   /healthz, /readyz, a sample of /metrics, GET /api/v1/me with a dev token (200) and without one (401 problem+json),
#   one JSON log line carrying the request's correlation id, and a clean exit (status 0) on SIGTERM.
# Stdout is deterministic: no ports, paths, timestamps or token values, except inside the quoted log line.
# Any failed step stops the demo with a message on stderr and a non-zero status.
# The `bash -c '...' "$port"` probe takes its argument as $0 on purpose (no quoting issues).
# shellcheck disable=SC2016
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# Bounds (seconds): start-up includes opening the listener only (the binary is built before the clock starts).
readonly START_WAIT_S=30
readonly LOG_WAIT_S=5
readonly STOP_WAIT_S=15
readonly HTTP_TIMEOUT_S=5

CARGO="${CARGO:-cargo}"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
bin="$target_dir/release/strom"

work="$(mktemp -d "${TMPDIR:-/tmp}/strom-demo-m0.XXXXXX")"
log="$work/strom.log"
server_pid=""

DEMO_NAME=demo-m0
# shellcheck source=scripts/lib/demo.sh
source "$root/scripts/lib/demo.sh"

cleanup() {
  kill_server
  rm -rf "$work"
}
trap cleanup EXIT

command -v curl >/dev/null 2>&1 || fail "curl is not installed: apt-get install curl"


# request NAME METHOD PATH [curl args...]: saves body and headers under $work/NAME.{body,headers}; prints the status
# (curl prints 000 when it gets no answer).
request() {
  local name="$1" method="$2" path="$3"
  shift 3
  curl -sS --max-time "$HTTP_TIMEOUT_S" -X "$method" -o "$work/$name.body" -D "$work/$name.headers" \
    -w '%{http_code}' "$@" "http://$listen$path" 2>>"$work/curl.err" || true
}
header() { grep -i "^$2:" "$work/$1.headers" | head -n 1 | cut -d' ' -f2- | tr -d '\r' || true; }
body() { cat "$work/$1.body"; echo; }

# The demo runs on the embedded default: none of the full-stack settings may leak in from the caller's environment.
demo_env=(
  env -u STROM_DATABASE_URL -u STROM_DATABASE_SCHEMA -u STROM_NATS_URL -u STROM_VALKEY_URL
  -u STROM_AUTH_JWKS_URL -u STROM_AUTH_ISSUER -u STROM_AUTH_AUDIENCE -u STROM_ROLES -u STROM_LISTEN
  STROM_AUTH_DEV_KEY_FILE="$work/dev-jwt.key" STROM_LOG=info STROM_LOG_FORMAT=json
)

step "build strom (release)"
"$CARGO" build --release --quiet -p strom --bin strom || fail "cargo build -p strom --bin strom failed"
[[ -x "$bin" ]] || fail "built binary not found at $bin (CARGO_TARGET_DIR?)"
echo "built strom"

step "start strom serve on the embedded default"
port="$(free_port 18080 18179)" || fail "no free loopback port in 18080..18179"
listen="127.0.0.1:$port"
"${demo_env[@]}" "$bin" serve --listen "$listen" >"$log" 2>&1 &
server_pid=$!
deadline=$((SECONDS + START_WAIT_S))
until [[ "$(request healthz GET /healthz -H 'x-request-id: demo-m0-healthz')" == 200 ]]; do
  kill -0 "$server_pid" 2>/dev/null || fail "strom serve exited during start-up"
  ((SECONDS < deadline)) || fail "/healthz did not answer 200 within ${START_WAIT_S} s"
  sleep 0.2
done
echo "strom serve is up on 127.0.0.1 (free port), dev key in a temp dir, logs to a file"

step "GET /healthz"
status="$(request healthz GET /healthz -H 'x-request-id: demo-m0-healthz')"
echo "status: $status"
body healthz
[[ "$status" == 200 ]] || fail "/healthz answered $status, expected 200"

step "GET /readyz"
status="$(request readyz GET /readyz -H 'x-request-id: demo-m0-readyz')"
echo "status: $status"
body readyz
[[ "$status" == 200 ]] || fail "/readyz answered $status, expected 200 (the embedded default has nothing to wait for)"

step "strom token --sub alice --role trader"
token="$("${demo_env[@]}" "$bin" token --sub alice --role trader 2>>"$log")" || fail "strom token failed"
token="$(printf '%s' "$token" | tr -d '[:space:]')"
[[ "$token" =~ ^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$ ]] ||
  fail "strom token did not print a JWT alone on stdout"
echo "minted a dev JWT for sub=alice role=trader (value not shown: it carries the time)"

step "GET /api/v1/me with the token"
status="$(request me GET /api/v1/me -H "authorization: Bearer $token" -H 'x-request-id: demo-m0-me')"
echo "status: $status"
body me
[[ "$status" == 200 ]] || fail "GET /api/v1/me with a valid token answered $status, expected 200"
grep -q '"sub" *: *"alice"' "$work/me.body" || fail "GET /api/v1/me did not return sub alice"
grep -q '"trader"' "$work/me.body" || fail "GET /api/v1/me did not list the trader role"

step "GET /api/v1/me without a token"
status="$(request unauth GET /api/v1/me -H 'x-request-id: demo-m0-unauth')"
content_type="$(header unauth content-type)"
echo "status: $status"
echo "content-type: $content_type"
body unauth
[[ "$status" == 401 ]] || fail "GET /api/v1/me without a token answered $status, expected 401"
[[ "$content_type" == application/problem+json* ]] ||
  fail "the 401 is not application/problem+json (content-type: $content_type)"

step "correlation id: request with x-request-id: demo-m0-1"
status="$(request correlated GET /api/v1/me -H "authorization: Bearer $token" -H 'x-request-id: demo-m0-1')"
echo "status: $status"
echoed="$(header correlated x-request-id)"
echo "response x-request-id: $echoed"
[[ "$status" == 200 ]] || fail "the correlated request answered $status, expected 200"
[[ "$echoed" == demo-m0-1 ]] || fail "the response did not echo x-request-id demo-m0-1 (got '$echoed')"
line=""
deadline=$((SECONDS + LOG_WAIT_S))
while :; do
  line="$(grep -F '"correlation_id"' "$log" | grep -F '"demo-m0-1"' | grep '^{' | head -n 1 || true)"
  [[ -z "$line" ]] || break
  ((SECONDS < deadline)) || fail "no JSON log line with correlation_id demo-m0-1 within ${LOG_WAIT_S} s"
  sleep 0.2
done
echo "log line:"
printf '  %s\n' "'$line'"

step "GET /metrics (sample: http_requests_total series, values omitted; the histogram's TYPE line)"
status="$(request metrics GET /metrics -H 'x-request-id: demo-m0-metrics')"
echo "status: $status"
[[ "$status" == 200 ]] || fail "/metrics answered $status, expected 200"
# Values depend on how many /healthz polls start-up took, so the sample shows series names and labels only.
sample="$(grep -E '^http_requests_total\{' "$work/metrics.body" | sed -E 's/ [^ ]+$//' | LC_ALL=C sort | head -n 5 || true)"
[[ -n "$sample" ]] || fail "/metrics has no http_requests_total series"
printf '%s\n' "$sample"
grep -E '^# TYPE http_request_duration_seconds histogram' "$work/metrics.body" ||
  fail "/metrics has no http_request_duration_seconds histogram"

step "stop strom with SIGTERM"
stop_server

printf '\ndemo-m0: OK\n'
