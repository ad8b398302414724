-- The SDRS job an accepted mutating call started: a resumed run follows that
-- job instead of sending the call again.

ALTER TABLE step_attempts ADD COLUMN job_id TEXT;
