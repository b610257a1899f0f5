//! The JSON API under `/api/v1`, for the `jitgate` CLI and scripts. Wire types are in
//! the `jitgate-proto` crate; errors are `{"error": {"code", "message", "field"?}}`
//! (`error`); callers authenticate with a bearer token or the web session (`auth`).

mod audit;
mod auth;
mod cli;
mod connection;
mod error;
mod input;
mod me;
mod requests;
mod targets;
mod tokens;
mod views;

pub use connection::session_document;
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
        .route("/requests/{id}/connection", get(connection::get))
        .route("/targets", get(targets::list))
        .route("/tokens", get(tokens::list).post(tokens::create))
        .route("/tokens/{id}", delete(tokens::revoke))
        .route("/audit", get(audit::list))
        .route("/cli/token", post(cli::token))
        .route("/openapi.json", get(openapi))
        .fallback(not_found)
}

/// The API described for tools (OpenAPI 3.1), generated from the handlers' annotations
/// and the wire types' schemas; a test checks it lists the routes of [`router`].
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "jitgate API",
        description = "Just-in-time access to EC2 through IAM Identity Center. Authenticate \
                       with `Authorization: Bearer jgt_...` (a token from POST /tokens or \
                       the CLI login) or the web session cookie (changes then need the \
                       session's CSRF token in X-CSRF-Token). Errors are \
                       {\"error\": {\"code\", \"message\", \"field\"?}}."
    ),
    servers((url = "/api/v1")),
    paths(
        me::me,
        me::profiles,
        requests::list,
        requests::create,
        requests::get,
        requests::approve,
        requests::deny,
        requests::cancel,
        requests::revoke,
        requests::extend,
        connection::get,
        targets::list,
        tokens::list,
        tokens::create,
        tokens::revoke,
        audit::list,
        cli::token,
    ),
    security(("bearer" = []), ("session" = [])),
    modifiers(&Authentication, &MalformedInput)
)]
struct ApiDoc;

/// The two ways to authenticate, as security schemes.
struct Authentication;

impl utoipa::Modify for Authentication {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::SecurityScheme;
        use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(
                crate::http::SESSION_COOKIE,
            ))),
        );
    }
}

/// Every call answers 400 to what it cannot read at all (a body that is not its JSON,
/// an unknown or unparseable query parameter), before any rule is applied.
struct MalformedInput;

impl utoipa::Modify for MalformedInput {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let bad_request = ResponseBuilder::new()
            .description(
                "the body is not the JSON this call takes, or the query string has an \
                 unknown or unreadable parameter (code bad_request)",
            )
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build();
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ];
            for operation in operations.into_iter().flatten() {
                operation
                    .responses
                    .responses
                    .entry("400".into())
                    .or_insert_with(|| bad_request.clone().into());
            }
        }
    }
}

/// The document, rendered once.
static OPENAPI: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    use utoipa::OpenApi;
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"rendering the OpenAPI document: {e}\"}}"))
});

async fn openapi() -> ([(axum::http::HeaderName, &'static str); 1], &'static str) {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI.as_str(),
    )
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such API route; see /api/v1/openapi.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_describes_types_parameters_and_authentication() {
        let doc: serde_json::Value = serde_json::from_str(&OPENAPI).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let schemas = &doc["components"]["schemas"];
        for name in [
            "RequestView",
            "NewRequest",
            "ErrorBody",
            "TokenCreated",
            "MeView",
        ] {
            assert!(schemas.get(name).is_some(), "no schema {name}");
        }
        let list = &doc["paths"]["/requests"]["get"]["parameters"];
        let names: Vec<&str> = list
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        for name in [
            "mine",
            "to_approve",
            "offset",
            "state",
            "profile",
            "before",
            "limit",
        ] {
            assert!(names.contains(&name), "/requests lacks {name}: {names:?}");
        }
        let schemes = &doc["components"]["securitySchemes"];
        assert_eq!(schemes["bearer"]["scheme"], "bearer");
        assert_eq!(schemes["session"]["name"], crate::http::SESSION_COOKIE);
        assert_eq!(
            doc["paths"]["/requests"]["post"]["responses"]["201"]["content"]["application/json"]["schema"]
                ["$ref"],
            "#/components/schemas/RequestView"
        );
    }
}
