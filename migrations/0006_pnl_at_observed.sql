-- pnl_points.at is now the run's observation time (the instant of the mark price) instead of its wall-clock
-- completion, so a backtest over a paper agent's observations has the same points (specs/06 §1). The agents
-- projector's tables are emptied and its checkpoint forgotten, so it refolds everything on its next page.
TRUNCATE agents, agent_runs, orders, trades, positions, pnl_points;
DELETE FROM checkpoints WHERE name = 'projector:agents';
