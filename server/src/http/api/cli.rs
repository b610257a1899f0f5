//! `POST /api/v1/cli/token`: the last step of the CLI's browser login. The CLI trades
//! the one-time code it received on its loopback redirect, with the PKCE verifier only
//! it knows, for an API token (RFC 8252 native-app flow, RFC 7636 PKCE).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jitgate_proto::{ErrorBody, TokenCreated};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::input::Required;
use super::tokens::{DEFAULT_LIFETIME, issue};
use crate::http::AppState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Exchange {
    code: String,
    code_verifier: String,
}

/// The S256 challenge of a PKCE verifier.
fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
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
    let login = state
        .broker
        .redeem_cli_login(&body.code)
        .await?
        .ok_or_else(refused)?;
    let expected = login.code_challenge.as_bytes();
    if !bool::from(
        pkce_challenge(&body.code_verifier)
            .as_bytes()
            .ct_eq(expected),
    ) {
        // The code is used up either way: a guessed verifier gets one try.
        return Err(refused());
    }
    let created = issue(
        &state,
        &login.user_id,
        &login.token_name,
        DEFAULT_LIFETIME,
        "cli",
    )
    .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_matches_rfc_7636_appendix_b() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
