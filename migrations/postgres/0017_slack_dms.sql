-- Direct messages to the requester as their request moves (issue 12): one row per
-- request and event (approved, active, ended, denied, failed, lapsed), written in the
-- transaction of the change (store/requests.rs), so each is sent once and none is lost;
-- scheduler/slack.rs delivers them with a lease and records when (or why not).
CREATE TABLE slack_dms (
    request_id      TEXT NOT NULL,
    event           TEXT NOT NULL,
    owed_at         BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    lease_owner     TEXT,
    lease_until     BIGINT,
    done_at         BIGINT,
    PRIMARY KEY (request_id, event)
);
CREATE INDEX slack_dms_owed ON slack_dms (next_attempt_at) WHERE done_at IS NULL;
