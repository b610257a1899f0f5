-- Live Session Manager sessions a grant opened are ended when it ends. A row is written
-- in the transaction that ends the request (store/requests.rs `save`), so the duty
-- survives a crash at any point; a worker claims owed rows with a lease, ends the
-- sessions (scheduler/sessions.rs) and marks the row closed with its audit event.
CREATE TABLE session_closings (
    request_id      TEXT PRIMARY KEY,
    owed_at         BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    lease_owner     TEXT,
    lease_until     BIGINT,
    closed_at       BIGINT
);
CREATE INDEX session_closings_owed ON session_closings (next_attempt_at) WHERE closed_at IS NULL;
