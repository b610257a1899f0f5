//! `/api/v1/tokens`: bearer tokens for the CLI and scripts, made from a signed-in web
//! session (a token cannot mint tokens), listed and revoked by their owner.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::TimeDelta;
use jitgate_proto::{ErrorBody, NewToken, TokenCreated, TokenView};
use rand::RngCore;

use super::auth::{ApiUser, TOKEN_PREFIX, token_hash};
use super::error::ApiError;
use super::input::Required;
use super::requests::duration;
use crate::audit::{Action, NewEvent};
use crate::http::AppState;
use crate::store::audit;
use crate::store::tokens::{self, ApiToken};
use serde_json::json;

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
    let created = issue(&state, &caller.user.user.id, name, lifetime, "web").await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Makes and stores a token for `user_id`; the answer is the only place its secret
/// appears.
pub(in crate::http) async fn issue(
    state: &AppState,
    user_id: &str,
    name: &str,
    lifetime: Duration,
    via: &str,
) -> Result<TokenCreated, ApiError> {
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let token = format!("{TOKEN_PREFIX}{}", hex::encode(secret));
    let now = state.broker.now();
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
    let mut tx = state.db.begin().await?;
    let live = tokens::live_count(&mut tx, user_id, now).await?;
    if live >= i64::from(state.config.auth.max_tokens) {
        return Err(ApiError(crate::http::WebError::Limit(format!(
            "you hold {live} live API tokens, the most one person may; revoke some you no \
             longer use (GET and DELETE /api/v1/tokens) first"
        ))));
    }
    tokens::insert(&mut tx, &record, &token_hash(&token)).await?;
    audit::append(&mut tx, event).await?;
    tx.commit().await?;
    Ok(TokenCreated {
        id: record.id,
        token,
        expires_at: record.expires_at,
    })
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
    let list = tokens::of_user(&state.db, &caller.user.user.id).await?;
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
    let now = state.broker.now();
    let mut tx = state.db.begin().await?;
    if !tokens::revoke(&mut tx, &caller.user.user.id, &id, now).await? {
        return Err(ApiError::not_found(format!("you have no live token {id}")));
    }
    let event = NewEvent::new(Action::TokenRevoked, caller.user.user.id.as_str(), now)
        .details(json!({ "token_id": id }));
    audit::append(&mut tx, event).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
