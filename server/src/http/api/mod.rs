//! The JSON API under `/api/v1`, for the `jitgate` CLI and scripts. Wire types are in
//! the `jitgate-proto` crate; errors are `{"error": {"code", "message", "field"?}}`
//! (`error`); callers authenticate with a bearer token or the web session (`auth`).

mod audit;
mod auth;
mod cli;
mod error;
mod input;
mod me;
mod requests;
mod tokens;
mod views;

pub use auth::token_hash;
pub use error::ApiError;

use axum::Router;
use axum::routing::{delete, get, post};

use super::AppState;

/// The API routes (nested under `/api/v1`).
pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/me", get(me::me))
        .route("/profiles", get(me::profiles))
        .route("/requests", get(requests::list).post(requests::create))
        .route("/requests/{id}", get(requests::get))
        .route("/requests/{id}/approve", post(requests::approve))
        .route("/requests/{id}/deny", post(requests::deny))
        .route("/requests/{id}/cancel", post(requests::cancel))
        .route("/requests/{id}/revoke", post(requests::revoke))
        .route("/requests/{id}/extend", post(requests::extend))
        .route("/tokens", get(tokens::list).post(tokens::create))
        .route("/tokens/{id}", delete(tokens::revoke))
        .route("/audit", get(audit::list))
        .route("/cli/token", post(cli::token))
        .route("/openapi.json", get(openapi))
        .fallback(not_found)
}

/// The API described for tools (OpenAPI 3.1). Hand-written next to the routes; a test
/// checks that the two list the same operations.
const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> ([(axum::http::HeaderName, &'static str); 1], &'static str) {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such API route; see /api/v1/openapi.json")
}
