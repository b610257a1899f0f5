//! The API's one error type: every status code of a JSON answer is chosen in
//! [`ApiError::status_and_code`]. Bodies are `{"error": {"code", "message", "field"?}}`;
//! internal failures are logged with a reference id and answered with it alone.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use jitgate_proto::{ErrorBody, ErrorDetail};

use crate::broker::BrokerError;
use crate::domain::{DomainError, ErrorKind};
use crate::store::StoreError;

/// Why an API call was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{message}")]
    Invalid {
        message: String,
        field: Option<&'static str>,
    },
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error(transparent)]
    Broker(BrokerError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<BrokerError> for ApiError {
    fn from(e: BrokerError) -> Self {
        match e {
            BrokerError::Domain(d) => ApiError::Domain(d),
            BrokerError::Store(s) => ApiError::Store(s),
            BrokerError::NotFound(id) => ApiError::NotFound(format!("no request {id}")),
            BrokerError::UnknownProfile { .. } => ApiError::Invalid {
                message: e.to_string(),
                field: Some("profile"),
            },
            other => ApiError::Broker(other),
        }
    }
}

impl ApiError {
    /// An invalid input field.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        ApiError::Invalid {
            message: message.into(),
            field: Some(field),
        }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Invalid { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Domain(d) => match d.kind() {
                ErrorKind::Invalid => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
                ErrorKind::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
                ErrorKind::Conflict => (StatusCode::CONFLICT, "conflict"),
            },
            ApiError::Broker(BrokerError::NoIdcUser { .. }) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "no_idc_user")
            }
            ApiError::Broker(BrokerError::Aws(_)) => (StatusCode::BAD_GATEWAY, "aws_unavailable"),
            ApiError::Broker(BrokerError::Catalog(_) | BrokerError::NotReady(_)) => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
            ApiError::Broker(_) | ApiError::Store(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let (message, field) = match &self {
            ApiError::Broker(
                BrokerError::NoIdcUser { .. } | BrokerError::Catalog(_) | BrokerError::NotReady(_),
            ) => (self.to_string(), None),
            ApiError::Broker(BrokerError::Aws(e)) => {
                let reference = uuid::Uuid::new_v4().simple().to_string();
                tracing::error!(reference, error = %e, "AWS call failed serving an API request");
                (
                    format!(
                        "IAM Identity Center did not answer; try again (reference {reference})"
                    ),
                    None,
                )
            }
            ApiError::Broker(_) | ApiError::Store(_) => {
                let reference = uuid::Uuid::new_v4().simple().to_string();
                tracing::error!(reference, error = %self, "API request failed");
                (
                    format!("jitgate could not complete this request (reference {reference})"),
                    None,
                )
            }
            ApiError::Domain(d) => (d.to_string(), d.field()),
            ApiError::Invalid { message, field } => (message.clone(), *field),
            other => (other.to_string(), None),
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
