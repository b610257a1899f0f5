//! The credentials jitgate gives people: API bearer tokens (made from a web session or
//! a CLI login, listed and revoked by their owner) and the CLI login's one-time codes.
//! Secrets are shown once and stored only as SHA-256 hashes; each issue, revocation
//! and CLI login approval is one transaction with its audit event.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use rand::RngCore;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{Broker, BrokerError};
use crate::audit::{Action, NewEvent};
use crate::aws::IdentityCenter;
use crate::domain::{Actor, ApiToken, CliLogin, User};
use crate::store::{audit, cli_logins, tokens};

/// Every API token starts with this, so a leaked one is recognisable (secret scanners).
pub const TOKEN_PREFIX: &str = "jgt_";

/// How long the CLI has to trade its login code.
pub const CLI_CODE_LIFETIME: TimeDelta = TimeDelta::minutes(5);

/// The stored form of a token or code: its SHA-256, hex. The secrets are 256 random
/// bits, so a plain hash is enough; looking one up by its hash leaks no timing about
/// the secret.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn random_hex() -> String {
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    hex::encode(secret)
}

/// A token just made: the only place its secret appears.
#[derive(Debug)]
pub struct IssuedToken {
    /// The token's id.
    pub id: String,
    /// The secret, to hand to its owner once.
    pub token: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

impl<I: IdentityCenter> Broker<I> {
    /// Makes a token for `user_id`, called `name`, living `lifetime`; `via` says how it
    /// was asked for (`web`, `cli`). Refused past `[auth] max_tokens` live tokens.
    pub async fn issue_token(
        &self,
        user_id: &str,
        name: &str,
        lifetime: Duration,
        via: &str,
    ) -> Result<IssuedToken, BrokerError> {
        let token = format!("{TOKEN_PREFIX}{}", random_hex());
        let now = self.now();
        let record = ApiToken {
            id: uuid::Uuid::new_v4().to_string(),
            user_id: user_id.to_owned(),
            name: name.to_owned(),
            created_at: now,
            expires_at: now + TimeDelta::from_std(lifetime).unwrap_or(TimeDelta::days(30)),
            last_used_at: None,
            revoked_at: None,
        };
        let event = NewEvent::new(Action::TokenIssued, user_id, now).details(json!({
            "token_id": record.id,
            "name": record.name,
            "expires_at": record.expires_at,
            "via": via,
        }));
        let mut tx = self.db().begin().await?;
        let live = tokens::live_count(&mut tx, user_id, now).await?;
        if live >= i64::from(self.config().auth.max_tokens) {
            return Err(BrokerError::Limit(format!(
                "you hold {live} live API tokens, the most one person may; revoke some you no \
                 longer use (GET and DELETE /api/v1/tokens) first"
            )));
        }
        tokens::insert(&mut tx, &record, &secret_hash(&token)).await?;
        audit::append(&mut tx, event).await?;
        tx.commit().await?;
        Ok(IssuedToken {
            id: record.id,
            token,
            expires_at: record.expires_at,
        })
    }

    /// `actor`'s tokens, without their secrets.
    pub async fn tokens_of(&self, actor: &Actor) -> Result<Vec<ApiToken>, BrokerError> {
        Ok(tokens::of_user(self.db(), actor.user.as_str()).await?)
    }

    /// Revokes `actor`'s live token `id`; `false` when they have no such live token.
    pub async fn revoke_token(&self, actor: &Actor, id: &str) -> Result<bool, BrokerError> {
        let now = self.now();
        let mut tx = self.db().begin().await?;
        if !tokens::revoke(&mut tx, actor.user.as_str(), id, now).await? {
            return Ok(false);
        }
        let event = NewEvent::new(Action::TokenRevoked, actor.user.as_str(), now)
            .details(json!({ "token_id": id }));
        audit::append(&mut tx, event).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The owner of a live `token`; `None` for an unknown, expired or revoked one.
    pub async fn token_owner(&self, token: &str) -> Result<Option<User>, BrokerError> {
        if !token.starts_with(TOKEN_PREFIX) {
            return Ok(None);
        }
        let found = tokens::authenticate(self.db(), &secret_hash(token), self.now()).await?;
        Ok(found.map(|(_, user)| user))
    }

    /// Records that `user_id` confirmed a CLI login in the browser; answers the one-time
    /// code for the CLI's loopback listener (stored hashed, audited).
    pub async fn approve_cli_login(&self, login: CliLogin) -> Result<String, BrokerError> {
        let code = random_hex();
        let now = self.now();
        let event = NewEvent::new(Action::CliLoginApproved, login.user_id.as_str(), now)
            .details(json!({ "token_name": login.token_name }));
        let mut tx = self.db().begin().await?;
        cli_logins::insert(
            &mut tx,
            &secret_hash(&code),
            &login,
            now + CLI_CODE_LIFETIME,
        )
        .await?;
        audit::append(&mut tx, event).await?;
        tx.commit().await?;
        Ok(code)
    }

    /// Uses up a CLI login code: what it stands for, if it exists, is unexpired and was
    /// not used before (a replayed code finds nothing).
    pub async fn redeem_cli_login(&self, code: &str) -> Result<Option<CliLogin>, BrokerError> {
        Ok(cli_logins::redeem(self.db(), &secret_hash(code), self.now()).await?)
    }
}
