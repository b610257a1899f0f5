-- How a person is looked up in IAM Identity Center, as their last sign-in's trusted
-- claims say (`[auth] idc_match`; JSON, see core/src/domain/identity.rs), and the IdC
-- user bound to them at first use. One IdC user is bound to at most one person.
ALTER TABLE users ADD COLUMN idc_lookup TEXT;
ALTER TABLE users ADD COLUMN idc_user_id TEXT;
CREATE UNIQUE INDEX users_idc_user_id ON users (idc_user_id);
