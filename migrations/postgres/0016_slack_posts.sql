-- The channel message of each request (issue 12): a durable outbox. The transaction that
-- files or changes a request bumps its row's `wanted` (store/requests.rs), so no crash
-- or Slack outage loses an update; a worker (scheduler/slack.rs) claims rows that Slack
-- does not show yet with a lease, posts the message (or updates it in place once it has a
-- `ts`), rendering the request as it is then, and records the version it showed.
CREATE TABLE slack_posts (
    request_id      TEXT PRIMARY KEY,
    wanted          BIGINT NOT NULL,
    shown           BIGINT NOT NULL DEFAULT 0,
    channel         TEXT,
    ts              TEXT,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    lease_owner     TEXT,
    lease_until     BIGINT
);
CREATE INDEX slack_posts_owed ON slack_posts (next_attempt_at) WHERE shown < wanted;
