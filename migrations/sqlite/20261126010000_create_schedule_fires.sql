-- What the scheduler did with each fire time of each schedule, so that a
-- restarted daemon knows what it missed and an auditor can see it.

CREATE TABLE schedule_fires (
    runbook     TEXT NOT NULL,
    schedule    TEXT NOT NULL,
    fire_at     TEXT NOT NULL,                  -- the cron instant, RFC 3339 UTC
    outcome     TEXT NOT NULL,                  -- started | missed | skipped_overlap | not_started
    run_id      TEXT,
    detail      TEXT,
    recorded_at TEXT NOT NULL,
    PRIMARY KEY (runbook, schedule, fire_at)
);
