# Shared by scripts/demo-m*.sh (sourced, not run). The caller sets: DEMO_NAME, CARGO, bin, work (its temporary
# directory), log (server log file), server_pid, schema (its own Postgres schema, or empty), START_WAIT_S, STOP_WAIT_S,
# HTTP_TIMEOUT_S, and before start_server the command prefix demo_env; start_server sets listen, the rest use token.
# The `bash -c '...' "$port"` probe takes its argument as $0 on purpose (no quoting issues).
# shellcheck shell=bash disable=SC2016

step() { printf '\n== %s\n' "$*"; }

# fail MESSAGE: stops the demo with MESSAGE and the last lines of the server log on stderr.
fail() {
  printf '\n%s: FAILED: %s\n' "$DEMO_NAME" "$*" >&2
  if [[ -s "${log:-}" ]]; then
    printf '%s: last lines of the server log:\n' "$DEMO_NAME" >&2
    tail -n 20 "$log" >&2
  fi
  exit 1
}

# free_port FROM TO: a loopback port in FROM..TO nobody listens on.
free_port() {
  local port
  for port in $(seq "$1" "$2"); do
    if ! timeout 1 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"' "$port" 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  return 1
}

# kill_server: for EXIT traps; a server still running gets SIGTERM, then SIGKILL a second later.
kill_server() {
  if [[ -n "${server_pid:-}" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    sleep 1
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
}

# stop_server: SIGTERM, wait (bounded by STOP_WAIT_S), print and require exit status 0.
stop_server() {
  kill -TERM "$server_pid"
  local deadline=$((SECONDS + STOP_WAIT_S)) rc=0
  while kill -0 "$server_pid" 2>/dev/null; do
    ((SECONDS < deadline)) || fail "strom serve still running ${STOP_WAIT_S} s after SIGTERM"
    sleep 0.2
  done
  wait "$server_pid" || rc=$?
  server_pid=""
  echo "exit status: $rc"
  [[ "$rc" == 0 ]] || fail "strom serve exited with status $rc after SIGTERM, expected 0"
}

# cleanup: for the EXIT trap: the server, the demo's own schema (with psql, when installed) and its work directory.
cleanup() {
  kill_server
  if [[ -n "${schema:-}" ]] && command -v psql >/dev/null 2>&1; then
    psql "$STROM_DATABASE_URL" -q -c "DROP SCHEMA IF EXISTS \"$schema\" CASCADE" >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}

# json FILE EXPR: evaluates a JavaScript expression over the JSON in FILE (bound to `j`) and prints the result.
json() { node -e 'const j = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); const r = eval(process.argv[2]); console.log(typeof r === "string" ? r : JSON.stringify(r));' "$1" "$2"; }

# request NAME METHOD PATH [curl args]: prints the status; the body goes to $work/NAME.body.
request() {
  local name="$1" method="$2" path="$3"
  shift 3
  curl -sS --max-time "$HTTP_TIMEOUT_S" -X "$method" -o "$work/$name.body" -w '%{http_code}' \
    -H "authorization: Bearer ${token:-}" -H 'content-type: application/json' "$@" "http://$listen$path" \
    2>>"$work/curl.err" || true
}

# get NAME PATH: GET that must answer 200 (body in $work/NAME.body).
get() {
  local status
  status="$(request "$1" GET "$2")"
  [[ "$status" == 200 ]] || fail "GET $2 answered $status: $(cat "$work/$1.body" 2>/dev/null)"
}

# build_strom: the release binary the demo runs.
build_strom() {
  step "build strom (release)"
  "$CARGO" build --release --quiet -p strom --bin strom || fail "cargo build -p strom --bin strom failed"
  echo "built strom"
}

# start_server FROM TO: `strom serve` under demo_env on a free loopback port in FROM..TO (sets listen, server_pid);
# waits for /healthz at most START_WAIT_S.
start_server() {
  step "start strom serve"
  local port deadline
  port="$(free_port "$1" "$2")" || fail "no free loopback port in $1..$2"
  listen="127.0.0.1:$port"
  "${demo_env[@]}" "$bin" serve --listen "$listen" >"$log" 2>&1 &
  server_pid=$!
  deadline=$((SECONDS + START_WAIT_S))
  until [[ "$(request health GET /healthz)" == 200 ]]; do
    kill -0 "$server_pid" 2>/dev/null || fail "strom serve exited during start-up"
    ((SECONDS < deadline)) || fail "/healthz did not answer within ${START_WAIT_S} s"
    sleep 0.2
  done
}
