// Backtest fixtures shaped like the API's answers (specs/openapi.yaml `Backtest`).

export const BACKTEST_ID = "b7000000-0000-4000-8000-000000000001";

export function backtest(overrides: Record<string, unknown> = {}) {
  return {
    backtest_id: BACKTEST_ID,
    owner: "demo",
    agent_id: "d3e00000-0000-4000-8000-000000000001",
    config: {
      name: "demo-sma-3-8",
      symbol: "BTC-USD",
      strategy: { kind: "sma_crossover", params: { fast: 3, slow: 8, qty: "0.01" } },
      frequency_s: 2,
      risk: { max_position_qty: "1", max_order_qty: "1", max_notional: "10000", max_daily_loss: null },
      starting_cash: "10000",
      seed: 42,
    },
    source: {
      kind: "sim",
      seed: 42,
      from: "2026-01-01T00:00:00Z",
      to: "2026-01-02T00:00:00Z",
      step_s: 60,
    },
    fill_model: { slippage_bps: "5", fee_bps: "10" },
    status: "completed",
    requested_at: "2026-12-02T12:00:00Z",
    started_at: "2026-12-02T12:00:01Z",
    completed_at: "2026-12-02T12:00:03Z",
    failed_at: null,
    cancelled_at: null,
    error: null,
    summary: {
      bars: 1440,
      orders: 12,
      fills: 10,
      final_cash: "9359.875",
      final_position: "0.01",
      final_equity: "10012.345678901234567",
      pnl: "12.345678901234567",
      return_pct: "0.1235",
    },
    updated_at: "2026-12-02T12:00:03Z",
    version: 3,
    attempts: 1,
    progress: { bars_done: 1440, bars_total: 1440 },
    result: result(),
    ...overrides,
  };
}

export function metrics(overrides: Record<string, unknown> = {}) {
  return {
    total_return_pct: "0.1235",
    buy_and_hold_return_pct: "-1.0000",
    cagr_pct: null,
    sharpe: "1.3381",
    sortino: "2.4673",
    calmar: null,
    max_drawdown_pct: "0.5000",
    max_drawdown_duration_s: 2_592_000,
    max_drawdown: "50.25",
    profit_factor: "1.8091",
    expectancy: "29.6667",
    win_rate_pct: "66.6667",
    avg_win: "99.5",
    avg_loss: "-110",
    best_trade: "100",
    worst_trade: "-110",
    exposure_pct: "50.0000",
    trades: 3,
    fills: 10,
    fees: "1.25",
    sqn: "0.4248",
    ...overrides,
  };
}

export function result(overrides: Record<string, unknown> = {}) {
  return {
    rejected_orders: 2,
    max_drawdown_pct: "0.5000",
    metrics: metrics(),
    equity: [
      { at: "2026-01-01T00:01:00Z", equity: "10000", drawdown_pct: "0" },
      { at: "2026-01-01T00:02:00Z", equity: "9950", drawdown_pct: "0.5000" },
      { at: "2026-01-01T00:03:00Z", equity: "10012.345678901234567", drawdown_pct: "0" },
    ],
    orders: [
      order(),
      order({
        order_id: `${BACKTEST_ID}-1-7`,
        status: "rejected",
        reason_code: "insufficient_cash",
        reason: "buying 0.01 at 64100.00 needs 641.00 but cash is 12.50",
        fill_price: null,
        fill_qty: null,
        fee: null,
        filled_at: null,
      }),
    ],
    orders_truncated: false,
    trades: [trade()],
    trades_truncated: false,
    ...overrides,
  };
}

export function order(overrides: Record<string, unknown> = {}) {
  return {
    order_id: `${BACKTEST_ID}-1-3`,
    agent_id: BACKTEST_ID,
    symbol: "BTC-USD",
    side: "buy",
    qty: "0.01",
    status: "filled",
    observation: { price: "64012.50", observed_at: "2026-01-01T00:03:00Z" },
    fill_model: { slippage_bps: "5", fee_bps: "10" },
    reason_code: null,
    reason: null,
    fill_price: "64044.50625",
    fill_qty: "0.01",
    fee: "0.6404450625",
    created_at: "2026-01-01T00:03:00Z",
    filled_at: "2026-01-01T00:03:00Z",
    updated_at: "2026-01-01T00:03:00Z",
    ...overrides,
  };
}

export function trade(overrides: Record<string, unknown> = {}) {
  return {
    trade_id: `${BACKTEST_ID}-1-3`,
    order_id: `${BACKTEST_ID}-1-3`,
    agent_id: BACKTEST_ID,
    symbol: "BTC-USD",
    side: "buy",
    qty: "0.01",
    price: "64044.50625",
    fee: "0.6404450625",
    notional: "640.4450625",
    realized_pnl: "0",
    filled_at: "2026-01-01T00:03:00Z",
    ...overrides,
  };
}

/** What GET /api/v1/me answers for a user of `role`. */
export function me(role: "viewer" | "trader" | "admin" = "trader") {
  return { sub: "demo", roles: [role], role, auth_mode: "dev", telegram_links: 0 };
}
