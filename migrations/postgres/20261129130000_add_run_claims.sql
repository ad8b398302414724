-- Which process executes a run (see the SQLite migration of the same name).

ALTER TABLE runs ADD COLUMN owner TEXT;
ALTER TABLE runs ADD COLUMN owner_host TEXT;
ALTER TABLE runs ADD COLUMN owner_pid BIGINT;
ALTER TABLE runs ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN claim_expires_ms BIGINT;
