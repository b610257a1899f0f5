//! The provider as the server knows it at any moment: not configured, not reached yet
//! (discovery is retried in the background, so a server whose identity provider is down
//! at start still starts, and revokes), or ready.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::Oidc;
use crate::config::OidcConfig;

/// Longest pause between two discovery attempts.
const MAX_RETRY: Duration = Duration::from_secs(30);

#[derive(Clone)]
enum State {
    NotConfigured,
    Discovering {
        issuer: String,
        last_error: Option<String>,
    },
    Ready(Arc<Oidc>),
}

/// The sign-in provider of a server; cheap to clone.
#[derive(Clone)]
pub struct Provider(Arc<RwLock<State>>);

impl Provider {
    /// No `[oidc]` configured: sign-in is off.
    pub fn not_configured() -> Self {
        Provider(Arc::new(RwLock::new(State::NotConfigured)))
    }

    /// A provider already discovered.
    pub fn ready(oidc: Oidc) -> Self {
        Provider(Arc::new(RwLock::new(State::Ready(Arc::new(oidc)))))
    }

    /// Starts discovering `config.issuer` in the background, retrying with back-off
    /// until it answers; until then sign-in answers that the provider is unavailable.
    pub fn discover(config: OidcConfig, public_url: String) -> Self {
        let provider = Provider(Arc::new(RwLock::new(State::Discovering {
            issuer: config.issuer.clone(),
            last_error: None,
        })));
        let slot = provider.clone();
        tokio::spawn(async move {
            let mut pause = Duration::from_secs(1);
            loop {
                match Oidc::discover(&config, &public_url).await {
                    Ok(oidc) => {
                        tracing::info!(issuer = %config.issuer, "OpenID provider discovered; sign-in is on");
                        slot.set(State::Ready(Arc::new(oidc)));
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(issuer = %config.issuer, error = %e, retry_in_secs = pause.as_secs(), "OpenID provider not reachable; sign-in waits for it");
                        slot.set(State::Discovering {
                            issuer: config.issuer.clone(),
                            last_error: Some(e.to_string()),
                        });
                    }
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_RETRY);
            }
        });
        provider
    }

    fn set(&self, state: State) {
        if let Ok(mut slot) = self.0.write() {
            *slot = state;
        }
    }

    fn state(&self) -> State {
        self.0
            .read()
            .map(|s| s.clone())
            .unwrap_or(State::NotConfigured)
    }

    /// The provider to sign in with, or what a person reads when there is none.
    pub fn get(&self) -> Result<Arc<Oidc>, String> {
        match self.state() {
            State::Ready(oidc) => Ok(oidc),
            State::NotConfigured => {
                Err("sign-in is not configured on this server ([oidc] is missing)".into())
            }
            State::Discovering { issuer, .. } => Err(format!(
                "sign-in is unavailable: jitgate cannot reach the identity provider ({issuer}) \
                 and keeps trying. Try again in a minute; if it lasts, tell your jitgate \
                 administrator."
            )),
        }
    }

    /// For `/readyz`: `None` when sign-in works (or is not configured), else why not.
    pub fn problem(&self) -> Option<String> {
        match self.state() {
            State::Ready(_) | State::NotConfigured => None,
            State::Discovering { issuer, last_error } => Some(format!(
                "oidc: provider {issuer} not reached yet{}",
                last_error.map(|e| format!(" ({e})")).unwrap_or_default()
            )),
        }
    }
}
