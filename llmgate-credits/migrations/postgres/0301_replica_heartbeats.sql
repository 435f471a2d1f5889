-- Holds carry the replica that placed them, and replicas beat: the holds of a replica that
-- stopped beating (killed, or cut off) are reclaimed by the others long before they expire.
-- Holds placed before this migration, or by a store that never beats, carry no live replica
-- and wait for their expiry.
ALTER TABLE credit_holds ADD COLUMN replica_id TEXT;

CREATE INDEX credit_holds_by_replica ON credit_holds (replica_id);

CREATE TABLE ledger_replicas (
    replica_id   TEXT   NOT NULL PRIMARY KEY,
    -- Unix seconds of the replica's last beat.
    heartbeat_at BIGINT NOT NULL
);
