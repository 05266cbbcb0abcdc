// Fixtures for the agent page's tests: API bodies as the server sends them (decimals as strings).
import { summary } from "./api";

export const AGENT_ID = "d3e00000-0000-4000-8000-000000000001";

export function metrics(overrides: Record<string, unknown> = {}) {
  return {
    total_return_pct: "0.1235",
    buy_and_hold_return_pct: "-0.0182",
    cagr_pct: null,
    sharpe: "1.2345",
    sortino: null,
    calmar: null,
    max_drawdown_pct: "0.0119",
    max_drawdown_duration_s: 16,
    max_drawdown: "1.19",
    profit_factor: null,
    expectancy: "-0.3333",
    win_rate_pct: null,
    avg_win: null,
    avg_loss: null,
    best_trade: null,
    worst_trade: null,
    exposure_pct: "34.7826",
    trades: 0,
    fills: 1,
    fees: "0.0640",
    sqn: null,
    ...overrides,
  };
}

export function fullSummary(overrides: Record<string, unknown> = {}) {
  return summary({
    orders_placed: 2,
    orders_rejected: 1,
    trades: 1,
    closing_trades: 0,
    winning_trades: 0,
    win_rate: null,
    max_drawdown: "1.19",
    max_drawdown_pct: "0.0119",
    updated_at: "2026-12-02T12:00:08Z",
    metrics: metrics(),
    ...overrides,
  });
}

export function run(tickNo: number, overrides: Record<string, unknown> = {}) {
  const at = `2026-12-02T12:00:${String(tickNo * 2).padStart(2, "0")}`;
  return {
    agent_id: AGENT_ID,
    session: 1,
    tick_no: tickNo,
    scheduled_at: `${at}.000Z`,
    started_at: `${at}.001Z`,
    completed_at: `${at}.001Z`,
    observation: { symbol: "BTC-USD", price: "64012.50", observed_at: `${at}.000Z` },
    outcome: "observed",
    signal: null,
    waiting_for_order: null,
    correlation_id: "21b31a0b-ba2d-4c0b-82e7-25b8f0fa2394",
    lateness_ms: 1,
    ...overrides,
  };
}

export function order(tickNo: number, overrides: Record<string, unknown> = {}) {
  const at = `2026-12-02T12:00:${String(tickNo * 2).padStart(2, "0")}`;
  return {
    order_id: `${AGENT_ID}-1-${tickNo}`,
    agent_id: AGENT_ID,
    symbol: "BTC-USD",
    side: "buy",
    qty: "0.01",
    status: "filled",
    observation: { price: "64012.50", observed_at: `${at}.000Z` },
    fill_model: { slippage_bps: "0", fee_bps: "10" },
    reason_code: null,
    reason: null,
    fill_price: "64012.50",
    fill_qty: "0.01",
    fee: "0.0640125",
    created_at: `${at}.001Z`,
    filled_at: `${at}.002Z`,
    updated_at: `${at}.002Z`,
    ...overrides,
  };
}

export function rejectedOrder(tickNo: number, overrides: Record<string, unknown> = {}) {
  return order(tickNo, {
    side: "sell",
    status: "rejected",
    reason_code: "insufficient_position",
    reason: "sell 0.01 BTC-USD exceeds the position 0",
    fill_price: null,
    fill_qty: null,
    fee: null,
    filled_at: null,
    ...overrides,
  });
}

export function trade(tickNo: number, overrides: Record<string, unknown> = {}) {
  const at = `2026-12-02T12:00:${String(tickNo * 2).padStart(2, "0")}`;
  return {
    trade_id: `${AGENT_ID}-1-${tickNo}`,
    order_id: `${AGENT_ID}-1-${tickNo}`,
    agent_id: AGENT_ID,
    symbol: "BTC-USD",
    side: "buy",
    qty: "0.01",
    price: "64012.50",
    fee: "0.0640125",
    notional: "640.1250",
    realized_pnl: "0",
    filled_at: `${at}.002Z`,
    ...overrides,
  };
}

export function pnlPoint(tickNo: number, overrides: Record<string, unknown> = {}) {
  const at = `2026-12-02T12:00:${String(tickNo * 2).padStart(2, "0")}.000Z`;
  return {
    session: 1,
    tick_no: tickNo,
    at,
    mark_price: "64012.50",
    position_qty: "0",
    cash: "10000",
    equity: "10000",
    realized_pnl: "0",
    unrealized_pnl: "0",
    fees: "0",
    pnl: "0",
    ...overrides,
  };
}

export function page<T>(items: T[], next_cursor: string | null = null) {
  return { items, next_cursor };
}
