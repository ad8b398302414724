-- Signed checkpoints of the audit chain: the head (an event's sequence number
-- and hash) signed with an ed25519 key that the database never holds, so a
-- rewritten chain no longer matches an earlier checkpoint kept elsewhere.

CREATE TABLE audit_checkpoints (
    seq        BIGINT NOT NULL,                 -- the last event the checkpoint covers
    head       TEXT NOT NULL,               -- that event's hash
    at         TEXT NOT NULL,               -- when it was signed (RFC 3339 UTC)
    public_key TEXT NOT NULL,               -- base64 ed25519 key that verifies it
    signature  TEXT NOT NULL,               -- base64 signature of the checkpoint's message
    PRIMARY KEY (seq, public_key)
);
