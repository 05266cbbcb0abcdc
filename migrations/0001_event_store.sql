-- STROM event store: postgres-es's `events` and `snapshots` tables plus the columns the global log, the relay and
-- tamper evidence need, and the `checkpoints` table for log readers.
--
-- Every name here is unqualified on purpose: the tables land in whatever schema is first on the migrating
-- connection's search_path (tests use one schema per test). Functions capture that search_path at creation
-- (`SET search_path FROM CURRENT`) so triggers resolve `events` to the same schema whoever inserts.

-- postgres-es's columns, types and keys exactly as its db/init.sql declares them; the columns after `metadata` are
-- ours and all have defaults, so postgres-es's INSERT (which names only its own seven columns) keeps working.
CREATE TABLE events
(
    aggregate_type  text                         NOT NULL,
    aggregate_id    text                         NOT NULL,
    sequence        bigint CHECK (sequence >= 0) NOT NULL,
    event_type      text                         NOT NULL,
    event_version   text                         NOT NULL,
    payload         json                         NOT NULL,
    metadata        json                         NOT NULL,
    -- Commit-independent insertion counter. Not a safe cursor on its own: a transaction that commits later can hold
    -- a smaller number. Readers order by (tx_id, global_position) and only read below the xmin watermark.
    global_position bigserial                    NOT NULL UNIQUE,
    tx_id           xid8                         NOT NULL DEFAULT pg_current_xact_id(),
    event_id        uuid                         NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    recorded_at     timestamptz                  NOT NULL DEFAULT now(),
    -- Set by events_hash_chain below; whatever the client sends is overwritten.
    hash            text                         NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);

CREATE INDEX events_tx_id_global_position_idx ON events (tx_id, global_position);

CREATE TABLE snapshots
(
    aggregate_type   text                                 NOT NULL,
    aggregate_id     text                                 NOT NULL,
    last_sequence    bigint CHECK (last_sequence >= 0)    NOT NULL,
    current_snapshot bigint CHECK (current_snapshot >= 0) NOT NULL,
    payload          json                                 NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
);

-- hash = hex(sha256(prev_hash \n aggregate_type \n aggregate_id \n sequence \n event_type \n event_version \n
-- payload as jsonb text)), prev_hash = hash of the same aggregate's sequence-1 row, 64 zeros for sequence 1.
-- The payload column is `json` (postgres-es's choice), which keeps whatever text the client sent; casting through
-- jsonb hashes the canonical jsonb text form instead, which is what postgres-es writes anyway (sqlx sends jsonb)
-- and what the Rust side (`jsonb_text`) reproduces, so a row written by any other client hashes the same way.
CREATE FUNCTION events_hash_chain() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path FROM CURRENT
AS
$$
DECLARE
    prev_hash text;
BEGIN
    IF NEW.sequence = 1 THEN
        prev_hash := repeat('0', 64);
    ELSE
        SELECT e.hash
        INTO prev_hash
        FROM events e
        WHERE e.aggregate_type = NEW.aggregate_type
          AND e.aggregate_id = NEW.aggregate_id
          AND e.sequence = NEW.sequence - 1;
        IF prev_hash IS NULL THEN
            RAISE EXCEPTION 'event store: % % sequence % has no previous event (sequence %)',
                NEW.aggregate_type, NEW.aggregate_id, NEW.sequence, NEW.sequence - 1
                USING ERRCODE = 'foreign_key_violation';
        END IF;
    END IF;
    NEW.hash := encode(sha256(convert_to(
            prev_hash || E'\n' ||
            NEW.aggregate_type || E'\n' ||
            NEW.aggregate_id || E'\n' ||
            NEW.sequence::text || E'\n' ||
            NEW.event_type || E'\n' ||
            NEW.event_version || E'\n' ||
            NEW.payload::jsonb::text, 'UTF8')), 'hex');
    RETURN NEW;
END;
$$;

CREATE TRIGGER events_hash_chain
    BEFORE INSERT
    ON events
    FOR EACH ROW
EXECUTE FUNCTION events_hash_chain();

-- The log is append-only: nothing in STROM updates or deletes events, so a statement that tries is a bug or an
-- attack. (Table owners can still disable the trigger; the hash chain is what makes that visible.)
CREATE FUNCTION events_append_only() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path FROM CURRENT
AS
$$
BEGIN
    RAISE EXCEPTION 'event store: events are append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER events_append_only
    BEFORE UPDATE OR DELETE
    ON events
    FOR EACH ROW
EXECUTE FUNCTION events_append_only();

-- Log readers' positions, saved in the same transaction as the effects they cover.
CREATE TABLE checkpoints
(
    name            text PRIMARY KEY,
    tx_id           xid8        NOT NULL,
    global_position bigint      NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
