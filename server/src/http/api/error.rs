//! The API's error answers: the same failures as the pages ([`WebError`]), with the
//! status and code chosen by [`WebError::status_and_code`] (the one status map), rendered
//! as `{"error": {"code", "message", "field"?}}`. Internal failures are logged with a
//! reference id and answered with it alone.

use axum::Json;
use axum::response::{IntoResponse, Response};
use jitgate_proto::{ErrorBody, ErrorDetail};

use crate::http::WebError;

/// Why an API call was refused or failed: a [`WebError`] rendered as JSON.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct ApiError(pub WebError);

impl<E: Into<WebError>> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError(e.into())
    }
}

impl ApiError {
    /// An input field the request got wrong.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        ApiError(WebError::invalid(field, message))
    }

    /// No valid credentials.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError(WebError::Unauthorized(message.into()))
    }

    /// Not allowed for this caller.
    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError(WebError::Forbidden(message.into()))
    }

    /// Nothing there, or nothing this caller may see.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError(WebError::NotFound(message.into()))
    }

    /// A request the API cannot make sense of.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError(WebError::BadRequest(message.into()))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.0.status_and_code();
        let field = self.0.field();
        let (message, reference) = self.0.public_message();
        let message = match reference {
            Some(reference) => format!("{message} (reference {reference})"),
            None => message,
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.into(),
                message,
                field: field.map(str::to_owned),
            },
        };
        (status, Json(body)).into_response()
    }
}
