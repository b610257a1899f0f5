//! The credentials jitgate gives people, as use cases: API bearer tokens (made from a
//! web session or a CLI login, listed and revoked by their owner, looked up on every API
//! call) and the CLI login's one-time codes (RFC 8252 loopback redirect with RFC 7636
//! PKCE). Secrets are random, shown once and stored only as SHA-256 hashes; each write is
//! one transaction with its audit event.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeDelta, Utc};
use rand::RngCore;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::audit::{Action, NewEvent};
use crate::domain::{Actor, ApiToken, CliLogin, User, UserId};

use super::error::AppError;
use super::ports::{PortFailure, Store, Transaction};

/// Every API token starts with this, so a leaked one is recognisable (secret scanners).
pub const TOKEN_PREFIX: &str = "jgt_";

/// How long the CLI has to trade its login code.
pub const CLI_CODE_LIFETIME: TimeDelta = TimeDelta::minutes(5);

/// The stored form of a token or code: its SHA-256, hex. The secrets are 256 random
/// bits, so a plain hash is enough, and looking one up by its hash leaks no timing
/// about the secret.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The S256 challenge of a PKCE verifier.
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn random_hex() -> String {
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    hex::encode(secret)
}

fn store_err(e: PortFailure) -> AppError {
    AppError::Store(e)
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

/// The credential use cases over a store.
#[derive(Clone)]
pub struct Credentials<S> {
    store: S,
    max_tokens: i64,
}

impl<S: Store> Credentials<S> {
    /// The use cases over `store`, allowing each person `max_tokens` live tokens.
    pub fn new(store: S, max_tokens: u32) -> Self {
        Self {
            store,
            max_tokens: i64::from(max_tokens),
        }
    }

    /// Makes a token for `owner`, called `name`, living `lifetime`; `via` says how it
    /// was asked for (`web`, `cli`). Refused past the live-token limit.
    pub async fn issue_token(
        &self,
        owner: &UserId,
        name: &str,
        lifetime: Duration,
        via: &str,
        now: DateTime<Utc>,
    ) -> Result<IssuedToken, AppError> {
        let token = format!("{TOKEN_PREFIX}{}", random_hex());
        let record = ApiToken {
            id: uuid::Uuid::new_v4().to_string(),
            user_id: owner.clone(),
            name: name.to_owned(),
            created_at: now,
            expires_at: now + TimeDelta::from_std(lifetime).unwrap_or(TimeDelta::days(30)),
            last_used_at: None,
            revoked_at: None,
        };
        let event = NewEvent::new(Action::TokenIssued, owner.as_str(), now).details(json!({
            "token_id": record.id,
            "name": record.name,
            "expires_at": record.expires_at,
            "via": via,
        }));
        let mut tx = self.store.begin().await.map_err(store_err)?;
        let live = tx.live_tokens(owner, now).await.map_err(store_err)?;
        if live >= self.max_tokens {
            return Err(AppError::Limit(format!(
                "you hold {live} live API tokens, the most one person may; revoke some you no \
                 longer use (GET and DELETE /api/v1/tokens) first"
            )));
        }
        tx.insert_token(&record, &secret_hash(&token))
            .await
            .map_err(store_err)?;
        tx.append(event).await.map_err(store_err)?;
        tx.commit().await.map_err(store_err)?;
        Ok(IssuedToken {
            id: record.id,
            token,
            expires_at: record.expires_at,
        })
    }

    /// `actor`'s tokens, without their secrets.
    pub async fn tokens_of(&self, actor: &Actor) -> Result<Vec<ApiToken>, AppError> {
        self.store.tokens_of(&actor.user).await.map_err(store_err)
    }

    /// Revokes `actor`'s live token `id`; "not found" when they have no such live token
    /// (someone else's token is not theirs to know of).
    pub async fn revoke_token(
        &self,
        actor: &Actor,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        let mut tx = self.store.begin().await.map_err(store_err)?;
        if !tx
            .revoke_token(&actor.user, id, now)
            .await
            .map_err(store_err)?
        {
            return Err(AppError::NoSuch(format!("you have no live token {id}")));
        }
        let event = NewEvent::new(Action::TokenRevoked, actor.user.as_str(), now)
            .details(json!({ "token_id": id }));
        tx.append(event).await.map_err(store_err)?;
        tx.commit().await.map_err(store_err)
    }

    /// The owner of a live `token`; `None` for an unknown, expired or revoked one.
    pub async fn token_owner(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<User>, AppError> {
        if !token.starts_with(TOKEN_PREFIX) {
            return Ok(None);
        }
        self.store
            .token_owner(&secret_hash(token), now)
            .await
            .map_err(store_err)
    }

    /// `actor` confirmed a CLI login in the browser: answers the one-time code for the
    /// CLI's loopback listener (stored hashed, audited), redeemable for
    /// [`CLI_CODE_LIFETIME`] with the verifier of `code_challenge` (S256).
    pub async fn approve_cli_login(
        &self,
        actor: &Actor,
        code_challenge: String,
        token_name: String,
        now: DateTime<Utc>,
    ) -> Result<String, AppError> {
        let code = random_hex();
        let login = CliLogin {
            user_id: actor.user.clone(),
            code_challenge,
            token_name,
        };
        let event = NewEvent::new(Action::CliLoginApproved, actor.user.as_str(), now)
            .details(json!({ "token_name": login.token_name }));
        let mut tx = self.store.begin().await.map_err(store_err)?;
        tx.insert_cli_login(&secret_hash(&code), &login, now + CLI_CODE_LIFETIME)
            .await
            .map_err(store_err)?;
        tx.append(event).await.map_err(store_err)?;
        tx.commit().await.map_err(store_err)?;
        Ok(code)
    }

    /// Trades a CLI login code and the PKCE verifier only the CLI knows for a token
    /// living `lifetime`. `None` when the code is unknown, used or expired, or the
    /// verifier does not match; the code is used up either way, so a guessed verifier
    /// gets one try.
    pub async fn exchange_cli_login(
        &self,
        code: &str,
        verifier: &str,
        lifetime: Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<IssuedToken>, AppError> {
        let Some(login) = self
            .store
            .redeem_cli_login(&secret_hash(code), now)
            .await
            .map_err(store_err)?
        else {
            return Ok(None);
        };
        let matches = pkce_challenge(verifier)
            .as_bytes()
            .ct_eq(login.code_challenge.as_bytes());
        if !bool::from(matches) {
            return Ok(None);
        }
        let owner = login.user_id;
        let issued = self
            .issue_token(&owner, &login.token_name, lifetime, "cli", now)
            .await?;
        Ok(Some(issued))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::memory::MemStore;

    fn now() -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap()
    }

    fn actor(user: &str) -> Actor {
        Actor {
            user: UserId::new(user),
            groups: vec!["developers".into()],
            is_admin: false,
            approves_all: false,
            authenticated_at: None,
        }
    }

    fn person(user: &str) -> User {
        User {
            id: UserId::new(user),
            issuer: "https://idp.example".into(),
            user_name: user.into(),
            email: None,
            name: None,
            groups: vec!["developers".into()],
            last_login: now(),
            idc_lookup: None,
            idc_user_id: None,
            claims_at: Some(now()),
            refresh_token: None,
            cut_off_at: None,
        }
    }

    fn store_with(users: &[&str]) -> MemStore {
        let store = MemStore::default();
        for u in users {
            store
                .0
                .lock()
                .unwrap()
                .users
                .insert(UserId::new(*u), person(u));
        }
        store
    }

    const DAY: Duration = Duration::from_secs(24 * 3600);

    #[tokio::test]
    async fn a_token_is_shown_once_stored_hashed_and_works_until_revoked() {
        let store = store_with(&["alice"]);
        let c = Credentials::new(store.clone(), 5);
        let issued = c
            .issue_token(&UserId::new("alice"), "laptop", DAY, "web", now())
            .await
            .unwrap();
        assert!(issued.token.starts_with(TOKEN_PREFIX));
        let state = store.state();
        assert_eq!(
            state.tokens[0].1,
            secret_hash(&issued.token),
            "only the hash is kept"
        );
        assert!(!state.tokens[0].1.contains(&issued.token));
        assert_eq!(
            c.token_owner(&issued.token, now())
                .await
                .unwrap()
                .map(|u| u.id),
            Some(UserId::new("alice"))
        );
        assert_eq!(c.token_owner("jgt_guessed", now()).await.unwrap(), None);
        assert_eq!(
            c.token_owner(&issued.token, now() + TimeDelta::days(2))
                .await
                .unwrap(),
            None,
            "expired"
        );

        // Bob cannot revoke Alice's token, nor learn it exists.
        let e = c
            .revoke_token(&actor("bob"), &issued.id, now())
            .await
            .unwrap_err();
        assert!(matches!(e, AppError::NoSuch(_)), "{e:?}");
        c.revoke_token(&actor("alice"), &issued.id, now())
            .await
            .unwrap();
        assert_eq!(
            c.token_owner(&issued.token, now()).await.unwrap(),
            None,
            "revoked"
        );
        let actions: Vec<Action> = store.actions();
        assert_eq!(actions, [Action::TokenIssued, Action::TokenRevoked]);
    }

    #[tokio::test]
    async fn the_live_token_limit_holds() {
        let store = store_with(&["alice"]);
        let c = Credentials::new(store.clone(), 2);
        let alice = UserId::new("alice");
        c.issue_token(&alice, "a", DAY, "web", now()).await.unwrap();
        c.issue_token(&alice, "b", DAY, "web", now()).await.unwrap();
        let e = c
            .issue_token(&alice, "c", DAY, "web", now())
            .await
            .unwrap_err();
        assert!(matches!(e, AppError::Limit(_)), "{e:?}");
        assert_eq!(store.state().tokens.len(), 2);
    }

    #[tokio::test]
    async fn a_cli_login_code_needs_its_verifier_and_works_once() {
        let store = store_with(&["alice"]);
        let c = Credentials::new(store.clone(), 5);
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let code = c
            .approve_cli_login(
                &actor("alice"),
                pkce_challenge(verifier),
                "cli".into(),
                now(),
            )
            .await
            .unwrap();
        // A wrong verifier uses the code up: a guess gets one try.
        assert!(
            c.exchange_cli_login(&code, "wrong", DAY, now())
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            c.exchange_cli_login(&code, verifier, DAY, now())
                .await
                .unwrap()
                .is_none()
        );

        let code = c
            .approve_cli_login(
                &actor("alice"),
                pkce_challenge(verifier),
                "cli".into(),
                now(),
            )
            .await
            .unwrap();
        let late = now() + CLI_CODE_LIFETIME + TimeDelta::seconds(1);
        assert!(
            c.exchange_cli_login(&code, verifier, DAY, late)
                .await
                .unwrap()
                .is_none(),
            "expired"
        );
        let code = c
            .approve_cli_login(
                &actor("alice"),
                pkce_challenge(verifier),
                "cli".into(),
                now(),
            )
            .await
            .unwrap();
        let issued = c
            .exchange_cli_login(&code, verifier, DAY, now())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            c.token_owner(&issued.token, now())
                .await
                .unwrap()
                .map(|u| u.id),
            Some(UserId::new("alice"))
        );
        assert!(
            c.exchange_cli_login(&code, verifier, DAY, now())
                .await
                .unwrap()
                .is_none(),
            "replayed"
        );
        assert_eq!(store.actions().last(), Some(&Action::TokenIssued));
    }

    #[test]
    fn the_pkce_challenge_matches_rfc_7636_appendix_b() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn a_token_hash_is_the_sha256_of_the_secret() {
        assert_eq!(
            secret_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
