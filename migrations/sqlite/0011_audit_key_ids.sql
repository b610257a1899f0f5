-- Events are keyed (HMAC-SHA256) with a key that never enters the database: this names
-- the key that signed each one. NULL: an event from before the chain was keyed, hashed
-- with plain SHA-256 (see server/src/audit/chain.rs).
ALTER TABLE audit_events ADD COLUMN key_id TEXT;
