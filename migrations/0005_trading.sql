-- The agents' paper trading as read models of projector `agents` (specs/02-data-model.md §3), folded from the Agent
-- stream with the agent rows (OrderPlaced, OrderRejected, OrderFilled, AgentRunRecorded; specs/04 §2). Replaces the
-- placeholders of migration 0002, which no code ever wrote (orders were planned as an aggregate of their own then),
-- and lets agent_runs hold the runs skipped behind an open order. Read models are rebuildable: the projector's
-- tables are emptied and its checkpoint forgotten, so it refolds everything, trading included, on its next page.

DROP TABLE orders, trades, positions, pnl_points;
TRUNCATE agents, agent_runs;
DELETE FROM checkpoints WHERE name = 'projector:agents';

ALTER TABLE agent_runs
    DROP CONSTRAINT agent_runs_outcome_check,
    ADD CONSTRAINT agent_runs_outcome_check CHECK (outcome IN ('observed', 'signalled', 'skipped'));

-- One row per order: placed (status accepted, then filled) or rejected by risk.
CREATE TABLE orders
(
    order_id        text        NOT NULL PRIMARY KEY,
    agent_id        text        NOT NULL,
    owner           text        NOT NULL,
    symbol          text        NOT NULL,
    side            text        NOT NULL CHECK (side IN ('buy', 'sell')),
    qty             numeric     NOT NULL,
    status          text        NOT NULL CHECK (status IN ('accepted', 'rejected', 'filled')),
    observed_price  numeric     NOT NULL,
    observed_at     timestamptz NOT NULL,
    slippage_bps    numeric     NOT NULL,
    fee_bps         numeric     NOT NULL,
    reason_code     text        NULL,
    reason          text        NULL,
    fill_price      numeric     NULL,
    fill_qty        numeric     NULL,
    fee             numeric     NULL,
    created_at      timestamptz NOT NULL,
    filled_at       timestamptz NULL,
    updated_at      timestamptz NOT NULL,
    -- Sequence of the last event applied to the row.
    version         bigint      NOT NULL
);
CREATE INDEX orders_agent_created_idx ON orders (agent_id, created_at DESC, order_id DESC);
-- The fold loads an agent's open order (at most one) when its fill arrives.
CREATE INDEX orders_open_idx ON orders (agent_id) WHERE status = 'accepted';

-- One row per fill (an order fills once, so trade_id = order_id).
CREATE TABLE trades
(
    trade_id     text        NOT NULL PRIMARY KEY,
    order_id     text        NOT NULL,
    agent_id     text        NOT NULL,
    owner        text        NOT NULL,
    symbol       text        NOT NULL,
    side         text        NOT NULL CHECK (side IN ('buy', 'sell')),
    qty          numeric     NOT NULL,
    price        numeric     NOT NULL,
    fee          numeric     NOT NULL,
    notional     numeric     NOT NULL,
    -- A sell's proceeds less the sold units' share of the cost basis (fee excluded); 0 for a buy.
    realized_pnl numeric     NOT NULL,
    filled_at    timestamptz NOT NULL,
    -- Global-log position of the OrderFilled event.
    global_position bigint   NOT NULL
);
CREATE INDEX trades_agent_filled_idx ON trades (agent_id, filled_at DESC, trade_id DESC);

-- One row per agent (long-only, one symbol): the whole fold state of the agent's trading.
CREATE TABLE positions
(
    agent_id         text        NOT NULL PRIMARY KEY,
    owner            text        NOT NULL,
    symbol           text        NOT NULL,
    qty              numeric     NOT NULL,
    -- Exact cost basis of the units held (fees excluded); avg_price = cost_basis / qty is for display.
    cost_basis       numeric     NOT NULL,
    avg_price        numeric     NOT NULL,
    cash             numeric     NOT NULL,
    starting_cash    numeric     NOT NULL,
    realized_pnl     numeric     NOT NULL,
    fees             numeric     NOT NULL,
    mark_price       numeric     NULL,
    unrealized_pnl   numeric     NOT NULL,
    equity           numeric     NOT NULL,
    pnl              numeric     NOT NULL,
    orders_placed    bigint      NOT NULL,
    orders_rejected  bigint      NOT NULL,
    trades           bigint      NOT NULL,
    closing_trades   bigint      NOT NULL,
    winning_trades   bigint      NOT NULL,
    peak_equity      numeric     NOT NULL,
    max_drawdown     numeric     NOT NULL,
    max_drawdown_pct numeric     NOT NULL,
    updated_at       timestamptz NOT NULL,
    version          bigint      NOT NULL
);

-- One row per run: the position valued at the run's observed price.
CREATE TABLE pnl_points
(
    agent_id       text        NOT NULL,
    session        bigint      NOT NULL,
    tick_no        bigint      NOT NULL,
    at             timestamptz NOT NULL,
    mark_price     numeric     NOT NULL,
    position_qty   numeric     NOT NULL,
    cash           numeric     NOT NULL,
    equity         numeric     NOT NULL,
    realized_pnl   numeric     NOT NULL,
    unrealized_pnl numeric     NOT NULL,
    fees           numeric     NOT NULL,
    pnl            numeric     NOT NULL,
    PRIMARY KEY (agent_id, session, tick_no)
);
CREATE INDEX pnl_points_agent_at_idx ON pnl_points (agent_id, at);
