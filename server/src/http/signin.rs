//! `GET /login`, `GET /auth/callback`, `POST /logout`.

use axum::Form;
use axum::extract::{Query, State};
use axum::response::Redirect;
use secrecy::ExposeSecret;
use serde::Deserialize;
use subtle::ConstantTimeEq;
use tower_sessions::Session;

use super::session::{FLOW_KEY, SessionUser, USER_KEY, check_csrf, csrf_token, internal};
use super::{AppState, WebError};
use crate::broker::SignInCheck;
use crate::domain::{RefreshToken, User, UserId};
use crate::oidc::LoginFlow;
use crate::oidc::idc_match;

#[derive(Deserialize)]
pub(super) struct LoginQuery {
    return_to: Option<String>,
    /// `1`: authenticate again at the provider, for an approval that needs it.
    step_up: Option<String>,
}

/// How far the provider's clock may be behind ours when it says when it authenticated
/// someone for a step-up.
const STEP_UP_SKEW: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// Longest `return_to` kept: a deep link, not a place to store data in someone's session.
const MAX_RETURN_TO: usize = 1024;

/// How long an anonymous sign-in in progress keeps its session (state, nonce, PKCE
/// verifier, where to return): minutes, not the signed-in idle timeout.
const SIGN_IN_WINDOW: tower_sessions::cookie::time::Duration =
    tower_sessions::cookie::time::Duration::minutes(10);

/// Only a normalized local path: an open redirect would let a link through jitgate land
/// anywhere. Browsers drop tabs and newlines from a URL and read `\` as `/`, so
/// `/%09/evil.example` would become `//evil.example`: only visible ASCII, no `\`, not
/// starting with `//`, and bounded. Anything else returns home.
fn local_path(return_to: Option<String>) -> String {
    match return_to {
        Some(p)
            if p.len() <= MAX_RETURN_TO
                && p.starts_with('/')
                && !p.starts_with("//")
                && p.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') =>
        {
            p
        }
        _ => "/".into(),
    }
}

/// Starts a sign-in: remembers state, nonce and PKCE verifier, sends the browser to the
/// provider.
pub(super) async fn login(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<LoginQuery>,
) -> Result<Redirect, WebError> {
    let oidc = state.oidc.get().map_err(WebError::Unavailable)?;
    let step_up = query
        .step_up
        .is_some_and(|v| v == "1")
        .then(|| state.broker.now());
    let (url, flow) = oidc.start(local_path(query.return_to), step_up);
    session.set_expiry(Some(tower_sessions::Expiry::OnInactivity(SIGN_IN_WINDOW)));
    session.insert(FLOW_KEY, &flow).await.map_err(internal)?;
    Ok(Redirect::to(&url))
}

#[derive(Deserialize)]
pub(super) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Finishes a sign-in: checks `state`, exchanges the code, verifies the ID token,
/// records the user and starts a fresh session (new id: no session fixation).
pub(super) async fn callback(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<CallbackQuery>,
) -> Result<Redirect, WebError> {
    let oidc = state.oidc.get().map_err(WebError::Unavailable)?;
    // One use only, whatever happens next.
    let flow: Option<LoginFlow> = session.remove(FLOW_KEY).await.map_err(internal)?;
    let Some(flow) = flow else {
        return Err(WebError::BadRequest(
            "no sign-in is in progress in this browser (it expired, or was started elsewhere); start again from /login"
                .into(),
        ));
    };
    if let Some(error) = query.error {
        let detail = query.error_description.unwrap_or_default();
        return Err(WebError::SignInRefused(format!(
            "the provider answered {error}: {detail}"
        )));
    }
    let sent_state = query.state.unwrap_or_default();
    if !bool::from(sent_state.as_bytes().ct_eq(flow.state.as_bytes())) {
        return Err(WebError::BadRequest(
            "the sign-in answer does not match the sign-in this browser started (state mismatch); start again"
                .into(),
        ));
    }
    let code = query
        .code
        .ok_or_else(|| WebError::BadRequest("the provider sent no authorization code".into()))?;
    let signed_in = oidc
        .finish(code, &flow)
        .await
        .map_err(|e| WebError::SignInRefused(e.to_string()))?;
    let now = state.broker.now();
    if let Some(since) = flow
        .step_up_since_millis
        .and_then(chrono::DateTime::from_timestamp_millis)
        && signed_in
            .auth_time
            .is_none_or(|at| at < since - STEP_UP_SKEW)
    {
        return Err(WebError::SignInRefused(format!(
            "asked to authenticate again, the provider answered with an earlier sign-in \
             (auth_time {:?}, asked at {since})",
            signed_in.auth_time
        )));
    }
    let lookup = idc_match::lookup(&state.config.auth, &signed_in.subject, &signed_in.claims);
    let check = state
        .broker
        .check_sign_in(&signed_in.subject, &lookup, now)
        .await?;
    if let SignInCheck::Mismatch { bound, found } = check {
        return Err(WebError::IdcBinding(format!(
            "This sign-in points to IAM Identity Center user {found}, but your jitgate \
             account is bound to {bound}, so it was refused (and recorded). If your account \
             at the identity provider changed on purpose, ask an administrator to re-bind \
             it: jitgate-server identity rebind --user {}",
            signed_in.subject
        )));
    }
    let user = User {
        claims_at: Some(now),
        refresh_token: signed_in
            .refresh_token
            .map(|t| RefreshToken(t.expose_secret().to_owned())),
        cut_off_at: None,
        id: UserId::new(signed_in.subject),
        issuer: signed_in.issuer,
        user_name: signed_in.user_name,
        email: signed_in.email,
        name: signed_in.name,
        groups: signed_in.groups,
        last_login: now,
        idc_lookup: Some(lookup),
        idc_user_id: None,
    };
    state.broker.record_sign_in(&user, now).await?;
    session.cycle_id().await.map_err(internal)?;
    // Signed in: the session lives by the configured idle timeout from now on.
    session.set_expiry(Some(tower_sessions::Expiry::OnInactivity(
        tower_sessions::cookie::time::Duration::seconds(
            i64::try_from(state.config.auth.session_idle.get().as_secs()).unwrap_or(i64::MAX),
        ),
    )));
    session
        .insert(
            USER_KEY,
            SessionUser {
                id: user.id.to_string(),
                signed_in_at_millis: now.timestamp_millis(),
                authenticated_at_millis: signed_in.auth_time.map(|t| t.timestamp_millis()),
            },
        )
        .await
        .map_err(internal)?;
    // A fresh CSRF token for the signed-in session.
    session.remove::<String>("csrf").await.map_err(internal)?;
    csrf_token(&session).await?;
    tracing::info!(user = %user.id, groups = ?user.groups, "signed in");
    Ok(Redirect::to(&flow.return_to))
}

#[derive(Deserialize)]
pub(super) struct CsrfForm {
    csrf: Option<String>,
}

/// Signs out: the whole session is deleted.
pub(super) async fn logout(
    session: Session,
    Form(form): Form<CsrfForm>,
) -> Result<Redirect, WebError> {
    check_csrf(&session, form.csrf.as_deref()).await?;
    session.flush().await.map_err(internal)?;
    Ok(Redirect::to("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(local_path(Some("/requests/1".into())), "/requests/1");
        assert_eq!(local_path(Some("//evil.example/x".into())), "/");
        assert_eq!(local_path(Some("https://evil.example".into())), "/");
        assert_eq!(local_path(Some("/\\evil.example".into())), "/");
        assert_eq!(local_path(None), "/");
        // What browsers would turn into another host, or cannot be a header.
        for bad in [
            "/\t/evil.example",
            "/\n/evil.example",
            "/\x0bx",
            "/a\r\nSet-Cookie: x=1",
            "/ a",
        ] {
            assert_eq!(local_path(Some(bad.into())), "/", "{bad:?}");
        }
        assert_eq!(local_path(Some(format!("/{}", "a".repeat(2000)))), "/");
        assert_eq!(
            local_path(Some("/requests/1?page=2".into())),
            "/requests/1?page=2"
        );
    }
}
