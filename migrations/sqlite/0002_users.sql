-- People who signed in through OIDC. `id` is the OIDC subject (one issuer per
-- deployment); the rest is refreshed from the ID token and userinfo at each sign-in.
CREATE TABLE users (
    id          TEXT PRIMARY KEY,
    issuer      TEXT NOT NULL,
    user_name   TEXT NOT NULL,
    email       TEXT,
    name        TEXT,
    -- JSON array of group names, as the provider last said.
    groups      TEXT NOT NULL,
    first_seen  INTEGER NOT NULL,
    last_login  INTEGER NOT NULL
);
CREATE INDEX users_email ON users (email);
