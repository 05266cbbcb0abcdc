-- Snapshots of aggregate state (specs/02 §1), our own: commands load an aggregate from its latest snapshot plus the
-- events after it, so their cost does not grow with the aggregate's history. postgres-es's `snapshots` table is
-- dropped: its snapshot path (cqrs-es 0.5) applies new events twice, and it was never written.
--
-- A snapshot is a cache of `fold(events 1..=sequence)`: losing or ignoring one costs a longer load, never a wrong
-- state. `state_version` is the aggregate's state shape (`Decider::STATE_VERSION`); a snapshot of another shape is
-- ignored and replaced. `strom replay --verify` recomputes each snapshot from the events and reports a mismatch.

DROP TABLE snapshots;

CREATE TABLE snapshots
(
    aggregate_type text        NOT NULL,
    aggregate_id   text        NOT NULL,
    sequence       bigint      NOT NULL CHECK (sequence >= 1),
    state_version  integer     NOT NULL,
    state          jsonb       NOT NULL,
    taken_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (aggregate_type, aggregate_id)
);
