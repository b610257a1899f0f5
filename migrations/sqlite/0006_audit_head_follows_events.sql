-- The head of the audit chain takes each appended event's hash in the same statement
-- as the insert: an append is two statements (take the next number, insert the event)
-- instead of three, and the head cannot fall behind the last event.
CREATE TRIGGER audit_events_advance_head AFTER INSERT ON audit_events
BEGIN
    UPDATE audit_head SET hash = NEW.hash WHERE id = 1;
END;
