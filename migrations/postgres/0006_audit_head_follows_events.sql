-- The head of the audit chain takes each appended event's hash in the same statement
-- as the insert: an append is two statements (take the next number, insert the event)
-- instead of three, and the head cannot fall behind the last event.
CREATE FUNCTION audit_events_advance_head() RETURNS trigger AS $$
BEGIN
    UPDATE audit_head SET hash = NEW.hash WHERE id = 1;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_events_advance_head AFTER INSERT ON audit_events
FOR EACH ROW EXECUTE FUNCTION audit_events_advance_head();
