-- Backtests in the product (specs/02 §3, specs/06 §7). Projector `backtests` never wrote its table (the endpoints were
-- planned), so it is replaced by one whose row is the fold state as JSON beside the columns the listings sort and
-- filter on. Beside it, the backtest runner's artifacts, which are not derived from events and survive a rebuild:
-- the uploaded CSV (written by the API before RequestBacktest) and each run's attempts, progress and result
-- (written by the runner before CompleteBacktest).
DROP TABLE backtests;
CREATE TABLE backtests
(
    backtest_id  text        NOT NULL PRIMARY KEY,
    owner        text        NOT NULL,
    status       text        NOT NULL CHECK (status IN ('requested', 'running', 'completed', 'failed', 'cancelled')),
    requested_at timestamptz NOT NULL,
    state        jsonb       NOT NULL,
    version      bigint      NOT NULL
);
CREATE INDEX backtests_owner_requested_idx ON backtests (owner, requested_at DESC, backtest_id DESC);
CREATE INDEX backtests_requested_idx ON backtests (requested_at DESC, backtest_id DESC);
CREATE INDEX backtests_unfinished_idx ON backtests (requested_at, backtest_id) WHERE status IN ('requested', 'running');
DELETE FROM checkpoints WHERE name = 'projector:backtests';

CREATE TABLE backtest_inputs
(
    backtest_id text        NOT NULL PRIMARY KEY,
    csv         bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE backtest_results
(
    backtest_id text        NOT NULL PRIMARY KEY,
    attempts    integer     NOT NULL DEFAULT 0,
    bars_done   bigint      NULL,
    bars_total  bigint      NULL,
    result      jsonb       NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
