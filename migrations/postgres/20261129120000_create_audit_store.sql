-- The audit store on PostgreSQL: the same tables and columns as the SQLite
-- migrations together, in PostgreSQL's types. Timestamps are RFC 3339 UTC
-- text and JSON columns are text on both backends, so that the hash chain
-- and every value read back are the same whichever database holds them.

CREATE TABLE runs (
    id                  TEXT PRIMARY KEY,       -- UUID v7 (time-ordered)
    runbook             TEXT NOT NULL,
    runbook_digest      TEXT NOT NULL,
    runbook_source      TEXT NOT NULL,
    runbook_path        TEXT NOT NULL,
    kind                TEXT NOT NULL,
    trigger             TEXT NOT NULL,
    requested_by        TEXT NOT NULL,
    params              TEXT NOT NULL,
    dry_run             BIGINT NOT NULL,        -- 0 or 1, as on SQLite
    status              TEXT NOT NULL,
    error               TEXT,
    created_at          TEXT NOT NULL,
    finished_at         TEXT,
    recovered_at        TEXT,
    cancel_requested_by TEXT
);
CREATE INDEX runs_by_status ON runs (status);

CREATE TABLE steps (
    run_id      TEXT NOT NULL REFERENCES runs (id),
    step_id     TEXT NOT NULL,
    position    BIGINT NOT NULL,
    phase       TEXT NOT NULL,
    status      TEXT NOT NULL,
    output      TEXT,
    error       TEXT,
    started_at  TEXT,
    finished_at TEXT,
    PRIMARY KEY (run_id, step_id)
);

CREATE TABLE step_attempts (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id        TEXT NOT NULL REFERENCES runs (id),
    step_id       TEXT NOT NULL,
    attempt       BIGINT NOT NULL,
    kind          TEXT NOT NULL,
    request       TEXT NOT NULL,
    request_body  TEXT,
    pre_image     TEXT,
    http_status   BIGINT,
    error_code    TEXT,
    error_message TEXT,
    outcome       TEXT,
    started_at    TEXT NOT NULL,
    duration_ms   BIGINT,
    job_id        TEXT
);
CREATE INDEX attempts_by_step ON step_attempts (run_id, step_id);

CREATE TABLE approvals (
    run_id   TEXT NOT NULL REFERENCES runs (id),
    step_id  TEXT NOT NULL,
    approver TEXT NOT NULL,
    decision TEXT NOT NULL,
    comment  TEXT,
    at       TEXT NOT NULL,
    PRIMARY KEY (run_id, step_id, approver)
);

CREATE TABLE target_leases (
    target      TEXT PRIMARY KEY,
    run_id      TEXT NOT NULL REFERENCES runs (id),
    acquired_at TEXT NOT NULL
);

CREATE TABLE audit_events (
    seq       BIGINT PRIMARY KEY,
    at        TEXT NOT NULL,
    actor     TEXT NOT NULL,
    kind      TEXT NOT NULL,
    run_id    TEXT,
    step_id   TEXT,
    data      TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);

CREATE TABLE schedule_fires (
    runbook     TEXT NOT NULL,
    schedule    TEXT NOT NULL,
    fire_at     TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    run_id      TEXT,
    detail      TEXT,
    recorded_at TEXT NOT NULL,
    PRIMARY KEY (runbook, schedule, fire_at)
);

CREATE TABLE idempotency_keys (
    actor      TEXT NOT NULL,
    key        TEXT NOT NULL,
    request    TEXT NOT NULL,
    run_id     TEXT NOT NULL REFERENCES runs (id),
    created_at TEXT NOT NULL,
    PRIMARY KEY (actor, key)
);
