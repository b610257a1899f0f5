-- A failing cause is one kind of operation: an assignment's create or its delete, the
-- attribute's write or its clear. The count of failures in a row restarts when the kind
-- changes, so a revocation's failures never count against a later grant (or the other
-- way round). NULL: no failure recorded since the count last restarted.
ALTER TABLE assignments ADD COLUMN failing_op TEXT;
ALTER TABLE principals ADD COLUMN run_as_failing TEXT;

-- Operations in progress are counted before each new one is sent: IdC allows about ten
-- at once for the whole account, whichever replica sent them.
CREATE INDEX assignments_in_flight ON assignments (op_kind) WHERE op_kind IS NOT NULL;
