-- Convergence follows IdC's asynchronous assignment operations across passes instead of
-- waiting inside one (a slow or stuck operation must not hold up the person's other
-- work, revocations above all), and keeps each failure with its cause: one failing
-- assignment or attribute write backs off on its own and fails only the grants that need
-- it. See server/src/scheduler/converge.

-- The operation in progress on this assignment, if any: its kind ('create' or 'delete'),
-- IdC's request id to follow, and when it was sent. A crash between sending and
-- recording leaves no id: the next pass sends again, which IdC answers with the state.
ALTER TABLE assignments ADD COLUMN op_kind TEXT;
ALTER TABLE assignments ADD COLUMN op_request_id TEXT;
ALTER TABLE assignments ADD COLUMN op_started_at BIGINT;
-- Failures in a row of the current operation on this assignment, the last one's error
-- (AWS text: for admins and the audit trail only), and when to try again.
ALTER TABLE assignments ADD COLUMN failures BIGINT NOT NULL DEFAULT 0;
ALTER TABLE assignments ADD COLUMN last_error TEXT;
ALTER TABLE assignments ADD COLUMN retry_at BIGINT NOT NULL DEFAULT 0;

-- The same for the person's run-as attribute write or clear.
ALTER TABLE principals ADD COLUMN run_as_failures BIGINT NOT NULL DEFAULT 0;
ALTER TABLE principals ADD COLUMN run_as_error TEXT;
ALTER TABLE principals ADD COLUMN run_as_retry_at BIGINT NOT NULL DEFAULT 0;

-- Assignments on jitgate's permission sets that jitgate did not make (drift), as the
-- sweep last saw them: each is reported once, not again after every restart, and again
-- if it disappears and comes back. principal_type is 'user' or 'group'.
CREATE TABLE drift_seen (
    principal_type     TEXT NOT NULL,
    principal_id       TEXT NOT NULL,
    account_id         TEXT NOT NULL,
    permission_set_arn TEXT NOT NULL,
    first_seen_at      BIGINT NOT NULL,
    PRIMARY KEY (principal_type, principal_id, account_id, permission_set_arn)
);
