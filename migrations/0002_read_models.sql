-- Read models (specs/02-data-model.md §3) and Telegram link state (§4).
-- Read-model tables are written only by projectors, rows and checkpoint in one transaction, and are rebuildable:
-- `strom replay --rebuild <projector>` truncates them. Telegram tables are security state, never rebuilt.

-- projector:agents ------------------------------------------------------------------------------------------------

CREATE TABLE agents
(
    agent_id      text        NOT NULL PRIMARY KEY,
    owner         text        NOT NULL,
    name          text        NOT NULL,
    symbol        text        NOT NULL,
    strategy      jsonb       NOT NULL,
    frequency_s   integer     NOT NULL CHECK (frequency_s BETWEEN 1 AND 86400),
    risk          jsonb       NOT NULL,
    starting_cash numeric     NOT NULL,
    seed          numeric(20, 0) NOT NULL CHECK (seed >= 0),
    status        text        NOT NULL CHECK (status IN ('stopped', 'running', 'archived')),
    session       bigint      NOT NULL DEFAULT 0,
    started_at    timestamptz NULL,
    stopped_at    timestamptz NULL,
    last_tick_no  bigint      NULL,
    last_run_at   timestamptz NULL,
    runs_count    bigint      NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    version       bigint      NOT NULL
);
CREATE INDEX agents_owner_created_idx ON agents (owner, created_at DESC, agent_id DESC);

CREATE TABLE agent_runs
(
    agent_id       text        NOT NULL,
    session        bigint      NOT NULL,
    tick_no        bigint      NOT NULL,
    scheduled_at   timestamptz NOT NULL,
    started_at     timestamptz NOT NULL,
    completed_at   timestamptz NOT NULL,
    symbol         text        NOT NULL,
    price          numeric     NOT NULL,
    observed_at    timestamptz NOT NULL,
    outcome        text        NOT NULL CHECK (outcome IN ('observed', 'signalled')),
    signal_side    text        NULL CHECK (signal_side IN ('buy', 'sell')),
    signal_qty     numeric     NULL,
    order_id       text        NULL,
    correlation_id text        NOT NULL,
    PRIMARY KEY (agent_id, session, tick_no)
);

-- projector:trading -----------------------------------------------------------------------------------------------

CREATE TABLE orders
(
    order_id       text        NOT NULL PRIMARY KEY,
    agent_id       text        NOT NULL,
    owner          text        NOT NULL,
    symbol         text        NOT NULL,
    side           text        NOT NULL CHECK (side IN ('buy', 'sell')),
    qty            numeric     NOT NULL,
    status         text        NOT NULL CHECK (status IN ('accepted', 'rejected', 'filled', 'cancelled')),
    observed_price numeric     NOT NULL,
    observed_at    timestamptz NOT NULL,
    slippage_bps   numeric     NOT NULL,
    fee_bps        numeric     NOT NULL,
    reason_code    text        NULL,
    reason         text        NULL,
    fill_price     numeric     NULL,
    fill_qty       numeric     NULL,
    fee            numeric     NULL,
    created_at     timestamptz NOT NULL,
    filled_at      timestamptz NULL,
    cancelled_at   timestamptz NULL,
    updated_at     timestamptz NOT NULL,
    version        bigint      NOT NULL
);
CREATE INDEX orders_agent_created_idx ON orders (agent_id, created_at DESC, order_id DESC);

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
    realized_pnl numeric     NOT NULL,
    filled_at    timestamptz NOT NULL
);
CREATE INDEX trades_agent_filled_idx ON trades (agent_id, filled_at DESC, trade_id DESC);

CREATE TABLE positions
(
    agent_id       text        NOT NULL PRIMARY KEY,
    owner          text        NOT NULL,
    symbol         text        NOT NULL,
    qty            numeric     NOT NULL,
    avg_price      numeric     NOT NULL,
    cash           numeric     NOT NULL,
    starting_cash  numeric     NOT NULL,
    realized_pnl   numeric     NOT NULL,
    fees           numeric     NOT NULL,
    mark_price     numeric     NULL,
    unrealized_pnl numeric     NOT NULL,
    equity         numeric     NOT NULL,
    pnl            numeric     NOT NULL,
    updated_at     timestamptz NOT NULL
);

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

-- projector:backtests ---------------------------------------------------------------------------------------------

CREATE TABLE backtests
(
    backtest_id    text        NOT NULL PRIMARY KEY,
    owner          text        NOT NULL,
    agent_id       text        NULL,
    config         jsonb       NOT NULL,
    source         jsonb       NOT NULL,
    fill_model     jsonb       NOT NULL,
    status         text        NOT NULL CHECK (status IN ('requested', 'running', 'completed', 'failed', 'cancelled')),
    requested_at   timestamptz NOT NULL,
    started_at     timestamptz NULL,
    completed_at   timestamptz NULL,
    failed_at      timestamptz NULL,
    cancelled_at   timestamptz NULL,
    error          text        NULL,
    bars           bigint      NULL,
    orders         bigint      NULL,
    fills          bigint      NULL,
    final_cash     numeric     NULL,
    final_position numeric     NULL,
    final_equity   numeric     NULL,
    pnl            numeric     NULL,
    return_pct     numeric     NULL,
    updated_at     timestamptz NOT NULL,
    version        bigint      NOT NULL
);
CREATE INDEX backtests_owner_requested_idx ON backtests (owner, requested_at DESC, backtest_id DESC);

-- Telegram (not event-sourced) ------------------------------------------------------------------------------------

CREATE TABLE telegram_link_codes
(
    code_hash       text        NOT NULL PRIMARY KEY,
    user_sub        text        NOT NULL,
    roles           text[]      NOT NULL,
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    used_at         timestamptz NULL,
    used_by_chat_id bigint      NULL
);

CREATE TABLE telegram_links
(
    chat_id           bigint      NOT NULL PRIMARY KEY,
    user_sub          text        NOT NULL,
    roles             text[]      NOT NULL,
    telegram_username text        NULL,
    linked_at         timestamptz NOT NULL
);
CREATE INDEX telegram_links_user_idx ON telegram_links (user_sub);
