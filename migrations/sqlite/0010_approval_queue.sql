-- One approval queue for the web and the API (server/src/store/requests.rs,
-- `approval_queue`): it reads what waits for a decision and who has already approved
-- it from columns, so excluding what the caller approved happens in SQL, before any
-- LIMIT (filtering after the LIMIT let a page come back short or empty while more
-- requests waited).

-- 1 while a decision is awaited: the request is pending, or it is active with an
-- extension asked for.
ALTER TABLE requests ADD COLUMN awaiting_decision INTEGER NOT NULL DEFAULT 0;
UPDATE requests SET awaiting_decision = 1
WHERE state = 'pending' OR (state = 'active' AND json_extract(detail, '$.extension') IS NOT NULL);
CREATE INDEX requests_awaiting ON requests (profile, created_at) WHERE awaiting_decision = 1;

-- The approvals of the decision awaited (of the request while pending, of its extension
-- while one is asked for), one row per approver; rewritten with every save.
CREATE TABLE decision_approvals (
    request_id TEXT NOT NULL,
    approver   TEXT NOT NULL,
    PRIMARY KEY (request_id, approver)
);
INSERT INTO decision_approvals (request_id, approver)
SELECT r.id, json_extract(a.value, '$.by')
FROM requests r, json_each(r.detail, '$.approvals') a
WHERE r.state = 'pending';
INSERT OR IGNORE INTO decision_approvals (request_id, approver)
SELECT r.id, json_extract(a.value, '$.by')
FROM requests r, json_each(r.detail, '$.extension.approvals') a
WHERE r.state = 'active' AND json_extract(r.detail, '$.extension') IS NOT NULL;
