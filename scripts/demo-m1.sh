#!/usr/bin/env bash
# M1 demo (`make demo-m1`): agent lifecycle on the simulated market, against the real `strom` binary over HTTP.
# Creates an agent (fixed seed 42, 1-second frequency, strategy `hold`), starts it, waits for its first runs, stops
# it, and prints the agent, its runs and the final state. Every observed price is checked against the simulator
# (`strom sim --print`, the same seed): the price at a tick's scheduled time is a pure function of (seed, symbol, t).
#
# Backing: the embedded default (memory) unless STROM_DATABASE_URL and STROM_NATS_URL are both set; then it runs on
# those services in a schema and NATS prefix of its own (`demo_m1_<pid>` / `demom1<pid>`); the schema is dropped at the
# end (with psql, when installed); the prefix's JetStream streams are left (no NATS client here to delete them).
# Stdout is deterministic: times, ids, ports and prices vary with the wall clock and are not printed; the checks on
# them are (e.g. "price matches the simulator"). Needs curl and node (for JSON).
# JavaScript template literals below are single-quoted on purpose.
# shellcheck disable=SC2016
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

readonly START_WAIT_S=60
readonly RUNS_WAIT_S=60
readonly RUNS_SHOWN=5
readonly STOP_WAIT_S=15
readonly HTTP_TIMEOUT_S=5

CARGO="${CARGO:-cargo}"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
bin="$target_dir/release/strom"
work="$(mktemp -d "${TMPDIR:-/tmp}/strom-demo-m1.XXXXXX")"
log="$work/strom.log"
server_pid=""
schema=""
prefix=""

DEMO_NAME=demo-m1
# shellcheck source=scripts/lib/demo.sh
source "$root/scripts/lib/demo.sh"
trap cleanup EXIT

command -v curl >/dev/null 2>&1 || fail "curl is not installed: apt-get install curl"
command -v node >/dev/null 2>&1 || fail "node is not installed (the README's prerequisites: Rust and Node)"

demo_env=(env -u STROM_AUTH_JWKS_URL -u STROM_AUTH_ISSUER -u STROM_ROLES -u STROM_LISTEN
  STROM_AUTH_DEV_KEY_FILE="$work/dev-jwt.key" STROM_LOG=info STROM_LOG_FORMAT=json STROM_SIM_SEED=42)

build_strom

if [[ -n "${STROM_DATABASE_URL:-}" && -n "${STROM_NATS_URL:-}" ]]; then
  backing="Postgres + NATS (STROM_DATABASE_URL, STROM_NATS_URL)"
  schema="demo_m1_$$"
  prefix="demom1$$"
  demo_env+=(STROM_DATABASE_SCHEMA="$schema" STROM_NATS_PREFIX="$prefix")
  "${demo_env[@]}" "$bin" migrate >>"$log" 2>&1 || fail "strom migrate failed"
else
  backing="embedded (memory adapters; set STROM_DATABASE_URL and STROM_NATS_URL for the real services)"
  # `env` takes its -u options before any assignment.
  demo_env=(env -u STROM_DATABASE_URL -u STROM_NATS_URL -u STROM_DATABASE_SCHEMA -u STROM_VALKEY_URL "${demo_env[@]:1}")
fi

start_server 18180 18279
echo "backing: $backing"
echo "roles: api, projector, scheduler, runtime, sim (and relay with NATS); simulator seed 42"

token="$("${demo_env[@]}" "$bin" token --sub alice --role trader 2>>"$log" | tr -d '[:space:]')"

step "create an agent (POST /api/v1/agents)"
status="$(request create POST /api/v1/agents --data \
  '{"name":"demo-m1","symbol":"BTC-USD","strategy":{"kind":"hold","params":{}},"frequency_s":1,"starting_cash":"10000","seed":42}')"
[[ "$status" == 201 ]] || fail "create answered $status: $(cat "$work/create.body")"
json "$work/create.body" '({name: j.name, symbol: j.symbol, strategy: j.strategy, frequency_s: j.frequency_s, starting_cash: j.starting_cash, risk: j.risk, seed: j.seed, status: j.status})'
id="$(json "$work/create.body" 'j.agent_id')"

step "start it (POST /api/v1/agents/{id}/start)"
status="$(request start POST "/api/v1/agents/$id/start")"
[[ "$status" == 200 ]] || fail "start answered $status: $(cat "$work/start.body")"
json "$work/start.body" '`status: ${j.status}, session: ${j.session}, next tick scheduled: ${j.next_tick_at !== null}`'

step "wait for $RUNS_SHOWN runs at the agent's frequency"
deadline=$((SECONDS + RUNS_WAIT_S))
while :; do
  status="$(request runs GET "/api/v1/agents/$id/runs?limit=200")"
  if [[ "$status" == 200 ]] && (($(json "$work/runs.body" 'j.items.length') >= RUNS_SHOWN)); then break; fi
  ((SECONDS < deadline)) || fail "fewer than $RUNS_SHOWN runs after ${RUNS_WAIT_S} s"
  sleep 0.5
done
echo "got them"

step "stop it (POST /api/v1/agents/{id}/stop)"
status="$(request stop POST "/api/v1/agents/$id/stop" --data '{"reason":"demo over"}')"
[[ "$status" == 200 ]] || fail "stop answered $status: $(cat "$work/stop.body")"
json "$work/stop.body" '`status: ${j.status}`'
last_tick="$(json "$work/stop.body" 'j.last_tick_no')"

step "the first $RUNS_SHOWN runs (oldest first), each price checked against the simulator"
request runs GET "/api/v1/agents/$id/runs?limit=200" >/dev/null
first_at="$(json "$work/runs.body" 'j.items[j.items.length - 1].scheduled_at')"
for i in $(seq 1 "$RUNS_SHOWN"); do
  run="$(json "$work/runs.body" "j.items[j.items.length - $i]")"
  printf '%s' "$run" >"$work/run.json"
  at="$(json "$work/run.json" 'j.scheduled_at')"
  price="$(json "$work/run.json" 'j.observation.price')"
  expected="$("$bin" sim --print --symbols BTC-USD --from "$at" --count 1 --seed 42 | tail -n 1 | cut -d, -f3)"
  offset="$(node -e 'console.log((Date.parse(process.argv[1]) - Date.parse(process.argv[2])) / 1000)' "$at" "$first_at")"
  verdict="matches the simulator"
  [[ "$price" == "$expected" ]] || verdict="DIFFERS from the simulator ($price vs $expected)"
  json "$work/run.json" "\`session \${j.session} tick \${j.tick_no}: scheduled at start+${offset}s, outcome \${j.outcome}, \${j.observation.symbol} price $verdict\`"
  [[ "$price" == "$expected" ]] || fail "run price differs from the simulator"
done

step "no runs after the stop"
sleep 3
request runs GET "/api/v1/agents/$id/runs?limit=200" >/dev/null
newest="$(json "$work/runs.body" 'j.items[0].tick_no')"
[[ "$newest" == "$last_tick" ]] || fail "a run after the stop: newest tick $newest, stop saw $last_tick"
echo "newest run is the last tick the stop saw: yes"

step "final state (GET /api/v1/agents/{id})"
request agent GET "/api/v1/agents/$id" >/dev/null
json "$work/agent.body" '({name: j.name, status: j.status, session: j.session, next_tick_at: j.next_tick_at})'
json "$work/agent.body" "\`runs_count equals the runs listed: \${j.runs_count === $(json "$work/runs.body" 'j.items.length')}\`"

step "stop strom with SIGTERM"
stop_server
printf '\ndemo-m1: OK\n'
