//! The one place where a web failure becomes a status code and a page. Internal errors
//! are logged in full with a reference id and answered with that id only: no SQL, AWS
//! or provider text reaches the browser.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use crate::store::StoreError;

/// What went wrong serving a page.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("sign in first")]
    SignInRequired,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("sign-in failed: {0}")]
    SignInRefused(String),
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    user: Option<super::session::UserView>,
    status: u16,
    heading: &'a str,
    message: String,
    request_id: Option<String>,
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, heading) = match &self {
            WebError::SignInRequired => (StatusCode::UNAUTHORIZED, "Sign in first"),
            WebError::Forbidden(_) => (StatusCode::FORBIDDEN, "Not allowed"),
            WebError::BadRequest(_) => (StatusCode::BAD_REQUEST, "Bad request"),
            WebError::SignInRefused(_) => (StatusCode::UNAUTHORIZED, "Sign-in refused"),
            WebError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "Unavailable"),
            WebError::Store(_) | WebError::Internal(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong")
            }
        };
        let (message, request_id) = match &self {
            WebError::Store(_) | WebError::Internal(_) => {
                let id = uuid::Uuid::new_v4().simple().to_string();
                tracing::error!(reference = %id, error = %self, "request failed");
                (
                    "jitgate could not complete this request.".to_owned(),
                    Some(id),
                )
            }
            WebError::SignInRefused(why) => {
                tracing::warn!(reason = %why, "sign-in refused");
                (
                    "The identity provider's answer could not be verified. Sign in again; if it keeps \
                     happening, tell your jitgate administrator."
                        .to_owned(),
                    None,
                )
            }
            other => (other.to_string(), None),
        };
        let page = ErrorPage {
            user: None,
            status: status.as_u16(),
            heading,
            message,
            request_id,
        };
        match page.render() {
            Ok(html) => (status, Html(html)).into_response(),
            Err(_) => (status, heading.to_owned()).into_response(),
        }
    }
}
