//! API tokens and CLI login codes, as the broker runs them on the core's use cases
//! (`jitgate_core::app::credentials`: secrets shown once, stored as hashes, every write
//! audited in its transaction).

use std::time::Duration;

pub use jitgate_core::app::IssuedToken;
pub use jitgate_core::app::credentials::TOKEN_PREFIX;

use super::{Broker, BrokerError};
use crate::aws::IdentityCenter;
use crate::domain::{Actor, ApiToken, User};

impl<I: IdentityCenter> Broker<I> {
    /// Makes a token for `actor` (from their web session), called `name`, living
    /// `lifetime`.
    pub async fn issue_token(
        &self,
        actor: &Actor,
        name: &str,
        lifetime: Duration,
    ) -> Result<IssuedToken, BrokerError> {
        Ok(self
            .credentials
            .issue_token(&actor.user, name, lifetime, "web", self.now())
            .await?)
    }

    /// `actor`'s tokens, without their secrets.
    pub async fn tokens_of(&self, actor: &Actor) -> Result<Vec<ApiToken>, BrokerError> {
        Ok(self.credentials.tokens_of(actor).await?)
    }

    /// Revokes `actor`'s live token `id` ("not found" when they have none such).
    pub async fn revoke_token(&self, actor: &Actor, id: &str) -> Result<(), BrokerError> {
        Ok(self.credentials.revoke_token(actor, id, self.now()).await?)
    }

    /// The owner of a live `token`; `None` for an unknown, expired or revoked one.
    pub async fn token_owner(&self, token: &str) -> Result<Option<User>, BrokerError> {
        Ok(self.credentials.token_owner(token, self.now()).await?)
    }

    /// `actor` confirmed a CLI login: the one-time code for the CLI's listener.
    pub async fn approve_cli_login(
        &self,
        actor: &Actor,
        code_challenge: String,
        token_name: String,
    ) -> Result<String, BrokerError> {
        Ok(self
            .credentials
            .approve_cli_login(actor, code_challenge, token_name, self.now())
            .await?)
    }

    /// Trades a CLI login code and its PKCE verifier for a token living `lifetime`;
    /// `None` when the code is unknown, used or expired, or the verifier is wrong.
    pub async fn exchange_cli_login(
        &self,
        code: &str,
        verifier: &str,
        lifetime: Duration,
    ) -> Result<Option<IssuedToken>, BrokerError> {
        Ok(self
            .credentials
            .exchange_cli_login(code, verifier, lifetime, self.now())
            .await?)
    }
}
