-- One-time codes of the CLI's browser login (a loopback redirect with PKCE, RFC 8252):
-- the browser session approves, the CLI trades the code and its PKCE verifier for an
-- API token. Stored as a SHA-256 of the code; usable once, for a few minutes.
CREATE TABLE cli_login_codes (
    code_hash      TEXT PRIMARY KEY,
    user_id        TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    token_name     TEXT NOT NULL,
    expires_at     INTEGER NOT NULL,
    used_at        INTEGER
);
