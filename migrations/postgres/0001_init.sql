-- jitgate schema (Postgres). Same tables and meaning as migrations/sqlite; times are
-- milliseconds since the Unix epoch, UTC, so both backends compare them the same way.

-- One row per access request. The columns hold what queries filter on; `detail` holds
-- the rest of the domain state (who approved when, why it ended) as JSON.
CREATE TABLE requests (
    id                 TEXT PRIMARY KEY,
    requester          TEXT NOT NULL,
    profile            TEXT NOT NULL,
    account_id         TEXT NOT NULL,
    os_user            TEXT NOT NULL,
    run_as_mode        TEXT NOT NULL,
    duration_secs      BIGINT NOT NULL,
    reason             TEXT NOT NULL,
    ticket             TEXT,
    created_at         BIGINT NOT NULL,
    state              TEXT NOT NULL,
    -- Set while active: the expiry timer and sweep find due grants through it.
    expires_at         BIGINT,
    -- The IdC identity-store user and permission set the grant is for, resolved when the
    -- request was made so a person without an IdC user is refused up front.
    principal_id       TEXT NOT NULL,
    permission_set_arn TEXT NOT NULL,
    detail             TEXT NOT NULL,
    updated_at         BIGINT NOT NULL,
    -- Set once AWS no longer carries anything for this ended request (or another grant
    -- still needs the assignment): until then the revocation is still owed.
    settled_at         BIGINT
);
CREATE INDEX requests_state_expires ON requests (state, expires_at);
CREATE INDEX requests_principal ON requests (principal_id, state);
CREATE INDEX requests_requester ON requests (requester, created_at);

-- One row per IdC user jitgate manages: the unit of convergence. Any change to that
-- person's grants bumps `generation`; a worker holding the lease brings AWS in line and
-- records the generation it converged.
CREATE TABLE principals (
    principal_id         TEXT PRIMARY KEY,
    generation           BIGINT NOT NULL DEFAULT 1,
    converged_generation BIGINT NOT NULL DEFAULT 0,
    lease_owner          TEXT,
    lease_until          BIGINT,
    attempts             BIGINT NOT NULL DEFAULT 0,
    next_attempt_at      BIGINT NOT NULL DEFAULT 0,
    last_error           TEXT,
    -- The OS user jitgate may have written into the run-as attribute (set before the
    -- write, cleared after the clear), so a crash never leaves an attribute unaccounted.
    run_as_written       TEXT,
    -- The OS user IdC confirmed (set with the audit event after the write succeeded):
    -- a grant is activated only once this matches what it needs.
    run_as_confirmed     TEXT
);
CREATE INDEX principals_dirty ON principals (next_attempt_at) WHERE generation > converged_generation;

-- Account assignments jitgate may have created in AWS. A row is written before the
-- create call and removed after the delete succeeded, so after a crash at any point the
-- table over-approximates AWS and nothing jitgate made is forgotten.
CREATE TABLE assignments (
    principal_id       TEXT NOT NULL,
    account_id         TEXT NOT NULL,
    permission_set_arn TEXT NOT NULL,
    state              TEXT NOT NULL,
    updated_at         BIGINT NOT NULL,
    PRIMARY KEY (principal_id, account_id, permission_set_arn)
);

-- The tamper-evident audit trail: hash = sha256(prev_hash || canonical event).
CREATE TABLE audit_events (
    seq        BIGINT PRIMARY KEY,
    at         BIGINT NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    request_id TEXT,
    details    TEXT NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);
CREATE INDEX audit_events_request ON audit_events (request_id);
CREATE INDEX audit_events_at ON audit_events (at);

-- The chain head: every append updates this one row; its row lock serializes appends
-- from any number of replicas into one chain.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Audit rows are append-only: the application has no update or delete path, and this
-- trigger stops one by accident. (A superuser can still drop it; the hash chain is what
-- catches that.)
CREATE FUNCTION audit_events_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events
FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();

-- Leases on singleton jobs (the sweep), so one replica at a time runs each.
CREATE TABLE job_leases (
    name        TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,
    lease_until BIGINT NOT NULL
);
