-- Projector `agents`, second shape (specs/02-data-model.md §3): what the agents list/detail and the countdown need
-- without recomputing it per request, and the log position of each run.
--   agents.archived_at   AgentArchived.archived_at
--   agents.last_price    observed price of the latest run
--   agents.next_tick_at  while running, when the tick after the last run is due; null otherwise
--   agent_runs.global_position  global-log position of the AgentRunRecorded event
-- Read models are rebuildable, so rather than inventing values for existing rows this empties the projector's
-- tables and forgets its checkpoint: the projector refolds them from the log on its next page.

TRUNCATE agents, agent_runs;
DELETE FROM checkpoints WHERE name = 'projector:agents';

ALTER TABLE agents
    ADD COLUMN archived_at  timestamptz NULL,
    ADD COLUMN last_price   numeric     NULL,
    ADD COLUMN next_tick_at timestamptz NULL;

ALTER TABLE agent_runs
    ADD COLUMN global_position bigint NOT NULL;

-- The admin listing (all owners), newest first; the owner listing has agents_owner_created_idx.
CREATE INDEX agents_created_idx ON agents (created_at DESC, agent_id DESC);
