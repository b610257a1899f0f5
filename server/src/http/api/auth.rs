//! Who is calling the API: a bearer token (the CLI, scripts) or the web session. A
//! session-authenticated call that changes something must also send the session's CSRF
//! token in `X-CSRF-Token`; a bearer token needs none (no browser sends it by itself).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, header};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use crate::broker::Stale;
use crate::http::session::MaybeUser;
use crate::http::{AppState, CurrentUser, WebError};

/// The caller of an API route, however authenticated.
pub struct ApiUser {
    pub user: CurrentUser,
    /// Authenticated by a bearer token rather than the web session.
    pub by_token: bool,
}

impl FromRequestParts<AppState> for ApiUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
            let token = value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim)
                .ok_or_else(|| {
                    ApiError::unauthorized("the Authorization header must be `Bearer <token>`")
                })?;
            let invalid = || {
                ApiError::unauthorized("this token is unknown, expired or revoked; log in again")
            };
            let user = state.broker.token_owner(token).await?.ok_or_else(invalid)?;
            let user = match state.broker.confirmed(user, &state.oidc).await {
                Ok(user) => user,
                Err(Stale::SignInAgain(why)) => return Err(ApiError::unauthorized(why)),
                Err(Stale::Unavailable(why)) => return Err(WebError::Unavailable(why).into()),
                Err(Stale::Failed(e)) => return Err(e.into()),
            };
            let actor = state
                .broker
                .rules()
                .actor(user.id.clone(), user.groups.clone());
            return Ok(ApiUser {
                user: CurrentUser {
                    user,
                    csrf: String::new(),
                    actor,
                },
                by_token: true,
            });
        }
        // A failure (the provider cannot confirm the roles: 503) is not "signed out".
        let MaybeUser(user) = MaybeUser::from_request_parts(parts, state).await?;
        let user = user.ok_or_else(|| ApiError::unauthorized("sign in, or send a bearer token"))?;
        if parts.method != Method::GET && parts.method != Method::HEAD {
            let sent = parts
                .headers
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !bool::from(sent.as_bytes().ct_eq(user.csrf.as_bytes())) || sent.is_empty() {
                return Err(ApiError::forbidden(
                    "a session-authenticated change needs the session's CSRF token in X-CSRF-Token",
                ));
            }
        }
        Ok(ApiUser {
            user,
            by_token: false,
        })
    }
}
