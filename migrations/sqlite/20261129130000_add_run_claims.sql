-- Which process executes a run: its node name, host and process id, the
-- claim's epoch (raised by every new claimer; every write for the run is
-- fenced by it) and when the claim expires unless renewed (milliseconds since
-- the Unix epoch, by the database's clock).

ALTER TABLE runs ADD COLUMN owner TEXT;
ALTER TABLE runs ADD COLUMN owner_host TEXT;
ALTER TABLE runs ADD COLUMN owner_pid INTEGER;
ALTER TABLE runs ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN claim_expires_ms INTEGER;
