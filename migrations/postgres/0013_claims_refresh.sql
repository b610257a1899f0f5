-- Roles follow the identity provider within `[auth] claims_max_age`: when the person's
-- claims were last confirmed, the provider's refresh token to confirm them again, and
-- when the provider stopped accepting them (sessions from before it end).
ALTER TABLE users ADD COLUMN claims_at BIGINT;
ALTER TABLE users ADD COLUMN refresh_token TEXT;
ALTER TABLE users ADD COLUMN cut_off_at BIGINT;
