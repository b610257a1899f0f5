-- One approval queue for the web and the API (server/src/store/requests.rs,
-- `approval_queue`): it reads what waits for a decision and who has already approved
-- it from columns, so excluding what the caller approved happens in SQL, before any
-- LIMIT (filtering after the LIMIT let a page come back short or empty while more
-- requests waited).

-- 1 while a decision is awaited: the request is pending, or it is active with an
-- extension asked for.
ALTER TABLE requests ADD COLUMN awaiting_decision BIGINT NOT NULL DEFAULT 0;
UPDATE requests SET awaiting_decision = 1
WHERE state = 'pending'
   OR (state = 'active' AND jsonb_typeof(detail::jsonb -> 'extension') = 'object');
CREATE INDEX requests_awaiting ON requests (profile, created_at) WHERE awaiting_decision = 1;

-- The approvals of the decision awaited (of the request while pending, of its extension
-- while one is asked for), one row per approver; rewritten with every save.
CREATE TABLE decision_approvals (
    request_id TEXT NOT NULL,
    approver   TEXT NOT NULL,
    PRIMARY KEY (request_id, approver)
);
INSERT INTO decision_approvals (request_id, approver)
SELECT r.id, a ->> 'by'
FROM requests r, jsonb_array_elements(r.detail::jsonb -> 'approvals') a
WHERE r.state = 'pending'
ON CONFLICT DO NOTHING;
INSERT INTO decision_approvals (request_id, approver)
SELECT r.id, a ->> 'by'
FROM requests r, jsonb_array_elements(r.detail::jsonb -> 'extension' -> 'approvals') a
WHERE r.state = 'active' AND jsonb_typeof(r.detail::jsonb -> 'extension') = 'object'
ON CONFLICT DO NOTHING;
