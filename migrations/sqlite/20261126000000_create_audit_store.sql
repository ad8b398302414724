-- The audit store: runs, their steps and every attempt (with intents for
-- mutating calls), approvals, target leases, and the hash-chained event log.
-- Timestamps are RFC 3339 UTC text; JSON columns are text.

CREATE TABLE runs (
    id              TEXT PRIMARY KEY,           -- UUID v7 (time-ordered)
    runbook         TEXT NOT NULL,
    runbook_digest  TEXT NOT NULL,              -- sha256 of the file the run started with
    runbook_source  TEXT NOT NULL,              -- that file's text: a resumed run uses it
    runbook_path    TEXT NOT NULL,
    kind            TEXT NOT NULL,              -- switchover | failover | drill | maintenance
    trigger         TEXT NOT NULL,              -- cli | api | schedule
    requested_by    TEXT NOT NULL,
    params          TEXT NOT NULL,              -- JSON object
    dry_run         INTEGER NOT NULL,
    status          TEXT NOT NULL,              -- running | succeeded | failed | cancelled
    error           TEXT,
    created_at      TEXT NOT NULL,
    finished_at     TEXT,
    recovered_at    TEXT                        -- when the last main step succeeded
);
CREATE INDEX runs_by_status ON runs (status);

CREATE TABLE steps (
    run_id      TEXT NOT NULL REFERENCES runs (id),
    step_id     TEXT NOT NULL,
    position    INTEGER NOT NULL,               -- run order, main steps then finally
    phase       TEXT NOT NULL,                  -- main | finally
    status      TEXT NOT NULL,                  -- pending | running | succeeded | failed | skipped
    output      TEXT,                           -- JSON
    error       TEXT,
    started_at  TEXT,
    finished_at TEXT,
    PRIMARY KEY (run_id, step_id)
);

CREATE TABLE step_attempts (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id        TEXT NOT NULL REFERENCES runs (id),
    step_id       TEXT NOT NULL,
    attempt       INTEGER NOT NULL,
    kind          TEXT NOT NULL,                -- read | intent | reconcile | poll | request | approval
    request       TEXT NOT NULL,                -- METHOD path (no credentials)
    request_body  TEXT,
    pre_image     TEXT,                         -- the resource before a mutating call (JSON)
    http_status   INTEGER,
    error_code    TEXT,
    error_message TEXT,
    outcome       TEXT,                         -- NULL: intent sent (or about to be), answer unknown
    started_at    TEXT NOT NULL,
    duration_ms   INTEGER
);
CREATE INDEX attempts_by_step ON step_attempts (run_id, step_id);

CREATE TABLE approvals (
    run_id   TEXT NOT NULL REFERENCES runs (id),
    step_id  TEXT NOT NULL,
    approver TEXT NOT NULL,
    decision TEXT NOT NULL,                     -- approved | rejected
    comment  TEXT,
    at       TEXT NOT NULL,
    PRIMARY KEY (run_id, step_id, approver)
);

CREATE TABLE target_leases (
    target      TEXT PRIMARY KEY,               -- evs:<group> | sdrs:<group>
    run_id      TEXT NOT NULL REFERENCES runs (id),
    acquired_at TEXT NOT NULL
);

CREATE TABLE audit_events (
    seq       INTEGER PRIMARY KEY,
    at        TEXT NOT NULL,
    actor     TEXT NOT NULL,
    kind      TEXT NOT NULL,
    run_id    TEXT,
    step_id   TEXT,
    data      TEXT NOT NULL,                    -- JSON
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL                     -- sha256(prev_hash || canonical event)
);
