-- Cancel requests (kept in the run so that they survive a restart) and the
-- Idempotency-Key of API triggers.

ALTER TABLE runs ADD COLUMN cancel_requested_by TEXT;

CREATE TABLE idempotency_keys (
    actor      TEXT NOT NULL,
    key        TEXT NOT NULL,
    request    TEXT NOT NULL,                   -- sha256 of the request body
    run_id     TEXT NOT NULL REFERENCES runs (id),
    created_at TEXT NOT NULL,
    PRIMARY KEY (actor, key)
);
