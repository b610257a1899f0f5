//! `/api/v1/tokens`: bearer tokens for the CLI and scripts, made from a signed-in web
//! session (a token cannot mint tokens), listed and revoked by their owner.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use jitgate_proto::{ErrorBody, NewToken, TokenCreated, TokenView};

use super::auth::ApiUser;
use super::error::ApiError;
use super::input::Required;
use super::requests::duration;
use crate::broker::IssuedToken;
use crate::http::AppState;

pub(in crate::http) const DEFAULT_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);
const MAX_LIFETIME: Duration = Duration::from_secs(90 * 24 * 3600);

/// `POST /tokens`: a new token, shown once.
#[utoipa::path(
    post,
    path = "/tokens",
    summary = "Make an API token (from a web session only); its secret is shown once",
    request_body = NewToken,
    responses(
        (status = 201, body = TokenCreated),
        (status = 401, description = "no valid token or session", body = ErrorBody),
        (status = 403, description = "not allowed (says why)", body = ErrorBody),
        (status = 422, description = "invalid input (names the field)", body = ErrorBody),
    )
)]
pub(super) async fn create(
    State(state): State<AppState>,
    caller: ApiUser,
    Required(body): Required<NewToken>,
) -> Result<(StatusCode, Json<TokenCreated>), ApiError> {
    if caller.by_token {
        return Err(ApiError::forbidden(
            "tokens are made from a signed-in session (web or `jitgate login`), not with another token",
        ));
    }
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::invalid(
            "name",
            "name the token (1-100 characters), e.g. \"laptop CLI\"",
        ));
    }
    crate::domain::visible_text("name", name)?;
    let lifetime = match body.expires_in.as_deref() {
        Some(text) => duration("expires_in", text)?,
        None => DEFAULT_LIFETIME,
    };
    if lifetime.is_zero() || lifetime > MAX_LIFETIME {
        return Err(ApiError::invalid(
            "expires_in",
            "a token lives longer than zero and at most 90d",
        ));
    }
    let issued = state
        .broker
        .issue_token(&caller.user.actor, name, lifetime)
        .await?;
    Ok((StatusCode::CREATED, Json(created(issued))))
}

/// The answer for a token just made: the only place its secret appears.
pub(in crate::http) fn created(issued: IssuedToken) -> TokenCreated {
    TokenCreated {
        id: issued.id,
        token: issued.token,
        expires_at: issued.expires_at,
    }
}

/// `GET /tokens`: the caller's tokens, without their secrets.
#[utoipa::path(
    get,
    path = "/tokens",
    summary = "The caller's tokens, without their secrets",
    responses(
        (status = 200, body = [TokenView]),
        (status = 401, description = "no valid token or session", body = ErrorBody),
    )
)]
pub(super) async fn list(
    State(state): State<AppState>,
    caller: ApiUser,
) -> Result<Json<Vec<TokenView>>, ApiError> {
    let list = state.broker.tokens_of(&caller.user.actor).await?;
    Ok(Json(
        list.into_iter()
            .map(|t| TokenView {
                id: t.id,
                name: t.name,
                created_at: t.created_at,
                expires_at: t.expires_at,
                last_used_at: t.last_used_at,
                revoked: t.revoked_at.is_some(),
            })
            .collect(),
    ))
}

/// `DELETE /tokens/{id}`: revokes one of the caller's tokens.
#[utoipa::path(
    delete,
    path = "/tokens/{id}",
    summary = "Revoke one of the caller's tokens",
    params(("id" = String, Path, description = "the token id")),
    responses(
        (status = 204, description = "revoked"),
        (status = 401, description = "no valid token or session", body = ErrorBody),
        (status = 404, description = "no such live token of the caller", body = ErrorBody),
    )
)]
pub(super) async fn revoke(
    State(state): State<AppState>,
    caller: ApiUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.broker.revoke_token(&caller.user.actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
