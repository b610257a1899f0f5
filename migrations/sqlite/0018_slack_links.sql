-- Slack accounts people linked on /settings/slack (issue 12): the member a Slack click
-- comes from is this jitgate user when [slack] user_match is "link" or "both". A member
-- is linked to one person at most. The link is made when the person types back the
-- one-time code jitgate sent that member (slack_link_codes, by its SHA-256; a row per
-- person, kept through a lockout after too many wrong codes).
CREATE TABLE slack_links (
    user_id      TEXT PRIMARY KEY REFERENCES users (id),
    slack_member TEXT NOT NULL UNIQUE,
    linked_at    INTEGER NOT NULL
);
CREATE TABLE slack_link_codes (
    user_id      TEXT PRIMARY KEY REFERENCES users (id),
    slack_member TEXT NOT NULL,
    code_hash    TEXT NOT NULL,
    expires_at   INTEGER NOT NULL,
    tries        INTEGER NOT NULL DEFAULT 0
);
