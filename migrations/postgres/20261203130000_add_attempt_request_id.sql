-- The request id the cloud gave an answer (an X-Request-Id header or the
-- error body's request_id), so that a report can hand it to the cloud's
-- support; the API gateway's errors name it.

ALTER TABLE step_attempts ADD COLUMN request_id TEXT;
