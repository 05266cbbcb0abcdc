# Shared by scripts/demo-m*.sh (sourced, not run). The caller sets: DEMO_NAME, log (server log file), server_pid,
# STOP_WAIT_S. The `bash -c '...' "$port"` probe takes its argument as $0 on purpose (no quoting issues).
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
