//! `POST /api/v1/cli/token`: the last step of the CLI's browser login. The CLI trades
//! the one-time code it received on its loopback redirect, with the PKCE verifier only
//! it knows, for an API token (RFC 8252 native-app flow, RFC 7636 PKCE).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use jitgate_proto::{ErrorBody, TokenCreated};
use serde::Deserialize;

use super::error::ApiError;
use super::input::Required;
use super::tokens::{DEFAULT_LIFETIME, created};
use crate::http::AppState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Exchange {
    code: String,
    code_verifier: String,
}

/// `POST /cli/token`: one-time code + PKCE verifier → API token.
#[utoipa::path(
    post,
    path = "/cli/token",
    summary = "Trade the CLI login's one-time code and PKCE verifier for an API token",
    request_body = Exchange,
    responses(
        (status = 201, body = TokenCreated),
        (status = 401, description = "the code is unknown, used or expired, or the verifier does not match", body = ErrorBody),
        (status = 422, description = "invalid input (names the field)", body = ErrorBody),
    )
)]
pub(super) async fn token(
    State(state): State<AppState>,
    Required(body): Required<Exchange>,
) -> Result<(StatusCode, Json<TokenCreated>), ApiError> {
    let refused = || {
        ApiError::unauthorized("this login code is unknown, used or expired; run the login again")
    };
    let issued = state
        .broker
        .exchange_cli_login(&body.code, &body.code_verifier, DEFAULT_LIFETIME)
        .await?
        .ok_or_else(refused)?;
    Ok((StatusCode::CREATED, Json(created(issued))))
}
