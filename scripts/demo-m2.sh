#!/usr/bin/env bash
# M2 demo (`make demo-m2`): an agent paper-trades on the simulated market (seed 42), against the real `strom` binary
# over HTTP. Starts `strom serve` with a fill model of 5 bps slippage and 10 bps fee, creates an agent that trades on
# every turn of the price (SMA crossover fast 1 / slow 2, qty 0.5, every second) with a tight daily-loss limit, starts
# it, waits until it has both a filled and a rejected order, stops it, and prints its orders, trades, position and
# PnL summary. Then it checks, with exact decimals (scripts/lib/trading_report.py): pnl = realized + unrealized − fees
# = equity − starting_cash; the position recomputed from the listed trades; the summary's counts, win rate, return and
# drawdown recomputed from the listings; paging by cursor; the thinned PnL series (max_points). It checks that nothing
# runs or trades after the stop, that another user sees 404, and, on Postgres, that `strom replay --verify` finds the
# hash chains and read models intact. Then the parity rule (specs/06 §1): the agent's config and its runs'
# observations (from the API) go through `strom backtest` with the same fill model, which must end with the paper
# agent's orders, fills, cash and position; on Postgres, `strom parity` compares every order, fill, position and PnL
# point and prints its verdict.
#
# Why a rejection and a fill are certain (specs/06 §2–§3): with fast 1 / slow 2 the strategy buys when the price turns
# up and sells when it turns down, alternately. A sell with nothing held is rejected (`insufficient_position`); a buy
# is placed and filled. A buy after a round trip is rejected (`max_daily_loss_exceeded`): a round trip costs 2 × (5 +
# 10) bps of slippage and fees, far more than the few bps the simulated price moves between two turns, so the day's
# loss exceeds max_daily_loss 0.01. Whichever way the price turns first, the first three signals hold a fill and a
# rejection.
#
# Backing: the embedded default (memory) unless STROM_DATABASE_URL is set; then it runs on that Postgres (plus NATS
# when STROM_NATS_URL is set too) in a schema and NATS prefix of its own (`demo_m2_<pid>` / `demom2<pid>`), runs
# `strom replay --verify` on it after the server stopped, and drops the schema at the end (with psql, when installed);
# the prefix's JetStream streams are left (no NATS client here to delete them).
# Stdout varies with the wall clock: the prices the agent sees depend on when it starts. Ids and ports are not printed.
# Needs curl, node (for JSON) and python3 (exact decimal checks).
# JavaScript template literals below are single-quoted on purpose.
# shellcheck disable=SC2016
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

readonly START_WAIT_S=60
# The agent must have a filled and a rejected order (and MIN_RUNS runs) within this long after its start; the
# reasoning above expects both within ~20 s (prices turn every few seconds).
readonly TRADE_WAIT_S=60
# Once both are there, wait up to this long after the start for a closed round trip (a filled sell) too, so the
# summary has a closing trade; without one the demo goes on (win_rate is then null).
readonly ROUND_TRIP_WAIT_S=40
readonly MIN_RUNS=5
# An order placed just before the stop still fills after it (specs/04 §3.1); the execution role does it at once.
readonly SETTLE_WAIT_S=10
readonly QUIET_S=3
readonly STOP_WAIT_S=15
readonly HTTP_TIMEOUT_S=5
readonly FEE_BPS=10
readonly SLIPPAGE_BPS=5

CARGO="${CARGO:-cargo}"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
bin="$target_dir/release/strom"
work="$(mktemp -d "${TMPDIR:-/tmp}/strom-demo-m2.XXXXXX")"
log="$work/strom.log"
server_pid=""
schema=""
prefix=""

DEMO_NAME=demo-m2
# shellcheck source=scripts/lib/demo.sh
source "$root/scripts/lib/demo.sh"
trap cleanup EXIT

command -v curl >/dev/null 2>&1 || fail "curl is not installed: apt-get install curl"
command -v node >/dev/null 2>&1 || fail "node is not installed (the README's prerequisites: Rust and Node)"
command -v python3 >/dev/null 2>&1 || fail "python3 is not installed (the exact decimal checks use it)"

# counts: sets runs, buys and sells (filled), rejected and open (accepted, waiting for the fill) from the agent's runs
# and orders listings (in this shell, not a subshell, so that a failed GET stops the demo).
counts() {
  get runs "/api/v1/agents/$id/runs?limit=200"
  get orders "/api/v1/agents/$id/orders?limit=200"
  runs="$(json "$work/runs.body" 'j.items.length')"
  read -r buys sells rejected open <<<"$(json "$work/orders.body" \
    '["filled buy", "filled sell", "rejected", "accepted"].map((s) => j.items.filter((o) => s === o.status || s === `${o.status} ${o.side}`).length).join(" ")')"
}

demo_env=(env -u STROM_AUTH_JWKS_URL -u STROM_AUTH_ISSUER -u STROM_ROLES -u STROM_LISTEN
  STROM_AUTH_DEV_KEY_FILE="$work/dev-jwt.key" STROM_LOG=info STROM_LOG_FORMAT=json STROM_SIM_SEED=42
  STROM_FILL_FEE_BPS="$FEE_BPS" STROM_FILL_SLIPPAGE_BPS="$SLIPPAGE_BPS")

build_strom

if [[ -n "${STROM_DATABASE_URL:-}" ]]; then
  schema="demo_m2_$$"
  demo_env+=(STROM_DATABASE_SCHEMA="$schema")
  if [[ -n "${STROM_NATS_URL:-}" ]]; then
    backing="Postgres + NATS (STROM_DATABASE_URL, STROM_NATS_URL)"
    prefix="demom2$$"
    demo_env+=(STROM_NATS_PREFIX="$prefix")
  else
    backing="Postgres (STROM_DATABASE_URL; no STROM_NATS_URL, so no relay)"
    demo_env=(env -u STROM_NATS_URL "${demo_env[@]:1}")
  fi
  "${demo_env[@]}" "$bin" migrate >>"$log" 2>&1 || fail "strom migrate failed"
else
  backing="embedded (memory adapters; set STROM_DATABASE_URL (and STROM_NATS_URL) for the real services)"
  # `env` takes its -u options before any assignment.
  demo_env=(env -u STROM_DATABASE_URL -u STROM_NATS_URL -u STROM_DATABASE_SCHEMA -u STROM_VALKEY_URL "${demo_env[@]:1}")
fi

start_server 18280 18379
echo "backing: $backing"
echo "roles: api, projectors, scheduler, runtime, execution, sim (and relay with NATS); simulator seed 42"
echo "fill model: slippage $SLIPPAGE_BPS bps, fee $FEE_BPS bps (STROM_FILL_SLIPPAGE_BPS, STROM_FILL_FEE_BPS)"

token="$("${demo_env[@]}" "$bin" token --sub alice --role trader 2>>"$log" | tr -d '[:space:]')"
[[ -n "$token" ]] || fail "strom token printed no token"

step "create an agent (POST /api/v1/agents)"
status="$(request create POST /api/v1/agents --data '{"name":"demo m2","symbol":"BTC-USD",
  "strategy":{"kind":"sma_crossover","params":{"fast":1,"slow":2,"qty":"0.5"}},"frequency_s":1,
  "risk":{"max_position_qty":"1","max_order_qty":"1","max_notional":"10000","max_daily_loss":"0.01"},
  "starting_cash":"10000","seed":42}')"
[[ "$status" == 201 ]] || fail "create answered $status: $(cat "$work/create.body")"
json "$work/create.body" '({name: j.name, symbol: j.symbol, strategy: j.strategy, frequency_s: j.frequency_s, starting_cash: j.starting_cash, risk: j.risk, seed: j.seed})'
id="$(json "$work/create.body" 'j.agent_id')"
get position0 "/api/v1/agents/$id/positions"
json "$work/position0.body" '`before any run: ${j.items.length} position, qty ${j.items[0].qty}, cash ${j.items[0].cash}, mark_price ${j.items[0].mark_price}`'

step "start it (POST /api/v1/agents/{id}/start)"
status="$(request start POST "/api/v1/agents/$id/start")"
[[ "$status" == 200 ]] || fail "start answered $status: $(cat "$work/start.body")"
json "$work/start.body" '`status: ${j.status}, session: ${j.session}`'
started=$SECONDS

step "wait for a filled and a rejected order (at most ${TRADE_WAIT_S} s)"
while :; do
  counts
  if ((runs >= MIN_RUNS && buys + sells >= 1 && rejected >= 1)); then
    ((sells >= 1 || SECONDS - started >= ROUND_TRIP_WAIT_S)) && break
  fi
  ((SECONDS - started < TRADE_WAIT_S)) ||
    fail "after ${TRADE_WAIT_S} s: $runs runs, $buys filled buys, $sells filled sells, $rejected rejected, $open open orders; expected at least $MIN_RUNS runs, a filled and a rejected order (is the execution role running? see the log)"
  sleep 0.5
done
if ((sells >= 1)); then
  echo "got them, and a closed round trip (a filled sell)"
else
  echo "got them (no filled sell within ${ROUND_TRIP_WAIT_S} s: the summary has no closing trade)"
fi

step "stop it (POST /api/v1/agents/{id}/stop)"
status="$(request stop POST "/api/v1/agents/$id/stop" --data '{"reason":"demo over"}')"
[[ "$status" == 200 ]] || fail "stop answered $status: $(cat "$work/stop.body")"
json "$work/stop.body" '`status: ${j.status}`'
last_tick="$(json "$work/stop.body" 'j.last_tick_no')"

step "let an order placed before the stop fill (at most ${SETTLE_WAIT_S} s)"
deadline=$((SECONDS + SETTLE_WAIT_S))
while :; do
  counts
  ((open == 0)) && break
  ((SECONDS < deadline)) || fail "an order is still open (accepted, not filled) ${SETTLE_WAIT_S} s after the stop"
  sleep 0.5
done
echo "no open order"

step "nothing runs, orders or trades after the stop (${QUIET_S} s)"
before="$runs $buys $sells $rejected"
get trades "/api/v1/agents/$id/trades?limit=200"
trades_before="$(json "$work/trades.body" 'j.items.length')"
sleep "$QUIET_S"
counts
[[ "$runs $buys $sells $rejected" == "$before" ]] ||
  fail "runs/fills/rejections changed after the stop: $before -> $runs $buys $sells $rejected"
newest="$(json "$work/runs.body" 'j.items[0].tick_no')"
[[ "$newest" == "$last_tick" ]] || fail "a run after the stop: newest tick $newest, stop saw $last_tick"
get trades "/api/v1/agents/$id/trades?limit=200"
[[ "$(json "$work/trades.body" 'j.items.length')" == "$trades_before" ]] || fail "a trade after the stop"
echo "no new runs, orders or trades: yes"
echo "runs: $runs; orders: $((buys + sells)) filled (buy: $buys, sell: $sells), $rejected rejected"

step "one order (GET /api/v1/orders/{id}): the first rejection"
order_id="$(json "$work/orders.body" 'j.items.filter((o) => o.status === "rejected").pop().order_id')"
get order "/api/v1/orders/$order_id"
json "$work/order.body" '({side: j.side, qty: j.qty, status: j.status, observation: j.observation, fill_model: j.fill_model, reason_code: j.reason_code, reason: j.reason, fill_price: j.fill_price})'

step "another user sees none of it (404)"
alice="$token"
token="$("${demo_env[@]}" "$bin" token --sub bob --role viewer 2>>"$log" | tr -d '[:space:]')"
status="$(request bob-orders GET "/api/v1/agents/$id/orders")"
code="$(json "$work/bob-orders.body" 'j.code' 2>/dev/null || true)"
[[ "$status" == 404 && "$code" == agent_not_found ]] || fail "bob's GET of alice's orders answered $status $code"
status="$(request bob-order GET "/api/v1/orders/$order_id")"
code="$(json "$work/bob-order.body" 'j.code' 2>/dev/null || true)"
[[ "$status" == 404 && "$code" == order_not_found ]] || fail "bob's GET of alice's order answered $status $code"
echo "bob: GET …/orders → 404 agent_not_found, GET /orders/{id} → 404 order_not_found"
token="$alice"

step "read the trading views"
get orders "/api/v1/agents/$id/orders?limit=200"
cp "$work/orders.body" "$work/orders.json"
# The same listing, two orders a page, following next_cursor.
node -e 'require("fs").writeFileSync(process.argv[1], JSON.stringify({items: []}))' "$work/orders-paged.json"
cursor=""
for _ in $(seq 1 200); do
  get page "/api/v1/agents/$id/orders?limit=2${cursor:+&cursor=$cursor}"
  node -e 'const fs = require("fs"); const all = JSON.parse(fs.readFileSync(process.argv[1], "utf8")); const page = JSON.parse(fs.readFileSync(process.argv[2], "utf8")); all.items.push(...page.items); fs.writeFileSync(process.argv[1], JSON.stringify(all));' "$work/orders-paged.json" "$work/page.body"
  cursor="$(json "$work/page.body" 'j.next_cursor === null ? "" : j.next_cursor')"
  [[ -n "$cursor" ]] || break
done
get trades "/api/v1/agents/$id/trades?limit=200" && cp "$work/trades.body" "$work/trades.json"
get positions "/api/v1/agents/$id/positions" && cp "$work/positions.body" "$work/positions.json"
get summary "/api/v1/agents/$id/summary" && cp "$work/summary.body" "$work/summary.json"
get pnl "/api/v1/agents/$id/pnl?limit=5000" && cp "$work/pnl.body" "$work/pnl.json"
[[ "$(json "$work/pnl.body" 'j.next_cursor')" == null ]] || fail "more than 5000 PnL points for a one-minute demo"
get pnl-thin "/api/v1/agents/$id/pnl?max_points=5" && cp "$work/pnl-thin.body" "$work/pnl-thin.json"
echo "orders, trades, positions, summary, pnl (all points and max_points=5)"

python3 "$root/scripts/lib/trading_report.py" "$work" || fail "a trading check failed (see above)"

step "backtest the agent's observations (strom backtest over its runs, the parity rule)"
get agent "/api/v1/agents/$id"
get runs "/api/v1/agents/$id/runs?limit=200"
[[ "$(json "$work/runs.body" 'j.next_cursor')" == null ]] || fail "more than 200 runs for a one-minute demo"
# The agent's config as a POST /agents body, and its runs' observations as bar CSV, oldest first (specs/06 §5).
json "$work/agent.body" 'JSON.stringify({name: j.name, symbol: j.symbol, strategy: j.strategy, frequency_s: j.frequency_s, risk: j.risk, starting_cash: j.starting_cash, seed: j.seed})' >"$work/agent.json"
json "$work/runs.body" '["ts,open,high,low,close,volume"].concat(j.items.slice().reverse().map((r) => { const p = r.observation.price; return `${r.observation.observed_at},${p},${p},${p},${p},0`; })).join("\n")' >"$work/observations.csv"
"$bin" backtest --config "$work/agent.json" --csv "$work/observations.csv" --fill-slippage-bps "$SLIPPAGE_BPS" \
  --fill-fee-bps "$FEE_BPS" --json >"$work/backtest.json" 2>>"$log" || fail "strom backtest failed (see $log)"
skipped="$(json "$work/runs.body" 'j.items.filter((r) => r.outcome === "skipped").length')"
python3 - "$work" "$skipped" <<'PY' || fail "the backtest does not reproduce the paper agent"
import json, sys
from decimal import Decimal
work = sys.argv[1]
bt = json.load(open(f"{work}/backtest.json"))["summary"]
pos = json.load(open(f"{work}/positions.json"))["items"][0]
orders = json.load(open(f"{work}/orders.json"))["items"]
trades = json.load(open(f"{work}/trades.json"))["items"]
checks = [
    ("orders", bt["orders"], len(orders)),
    ("fills", bt["fills"], len(trades)),
    ("final cash", Decimal(bt["final_cash"]), Decimal(pos["cash"])),
    ("final position", Decimal(bt["final_position"]), Decimal(pos["qty"])),
]
for name, backtest, paper in checks:
    print(f"{name:<15} paper {paper}  backtest {backtest}")
if sys.argv[2] != "0":
    # specs/06 §1: a run skipped behind an unfilled order (the execution role was behind) voids parity.
    print(f"parity void: {sys.argv[2]} run(s) skipped while an order waited for its fill")
elif any(backtest != paper for _, backtest, paper in checks):
    sys.exit("the backtest differs from the paper agent")
else:
    print("parity: equal (orders, fills, cash and position)")
PY
if [[ -n "$schema" && "$skipped" == 0 ]]; then
  step "strom parity (orders, fills, positions and PnL points compared element by element)"
  "${demo_env[@]}" "$bin" parity "$id" >"$work/parity.out" 2>>"$log" || {
    cat "$work/parity.out"
    fail "strom parity did not find the backtest equal"
  }
  cat "$work/parity.out"
fi

step "stop strom with SIGTERM"
stop_server

if [[ -n "$schema" ]]; then
  step "strom replay --verify (hash chains and read models rebuilt from the log)"
  "${demo_env[@]}" "$bin" replay --verify >"$work/verify.out" 2>>"$log" || {
    cat "$work/verify.out"
    fail "strom replay --verify exited non-zero"
  }
  tail -n 5 "$work/verify.out"
  echo "replay --verify: exit 0"
fi
printf '\ndemo-m2: OK\n'
