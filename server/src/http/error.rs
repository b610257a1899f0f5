//! The one place where a failure of the HTTP layer becomes a status code
//! ([`WebError::status_and_code`]), for both renderers: the page here and the JSON body
//! of the API (http/api/error.rs). Internal errors are logged in full with a reference
//! id and answered with that id only: no SQL, AWS or provider text reaches a client.
//!
//! Pages that show a refusal inside themselves (a form with the message next to its
//! field, a request page with the refused action's message) take the status from
//! [`WebError::status`], so every status code is still chosen here.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use super::session::UserView;
use crate::aws::AwsError;
use crate::broker::BrokerError;
use crate::domain::{DomainError, ErrorKind};
use jitgate_core::app::AppError;

/// What went wrong serving a page.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("sign in first")]
    SignInRequired,
    /// An API call without valid credentials (a bearer token or a session).
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    /// Approving needs a fresh sign-in (a `step_up` profile): the web sends the person
    /// to sign in again; the API, the CLI and Slack say so.
    #[error("{0}")]
    StepUpRequired(String),
    /// The signed-in person has no IAM Identity Center user to grant access to.
    #[error("{0}")]
    NoIdcUser(String),
    /// The person's sign-in points to another IdC user than the one bound to them, or
    /// to someone else's.
    #[error("{0}")]
    IdcBinding(String),
    /// The person lacks a role the page needs; says which groups give it, unless the
    /// person has no role at all (then the configuration is none of their business).
    #[error("{}", missing_role(.role, .groups.as_deref(), .yours))]
    MissingRole {
        /// "requester", "approver" or "admin".
        role: &'static str,
        /// The groups that give the role; `None` for someone with no role anywhere.
        groups: Option<Vec<String>>,
        /// The person's groups.
        yours: Vec<String>,
    },
    /// Nothing here, or nothing this person may see (the same answer, so ids cannot be probed).
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    /// Input a form can show next to `field`.
    #[error("{message}")]
    Invalid {
        field: Option<&'static str>,
        message: String,
    },
    /// What policy or the request's state refused.
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("sign-in failed: {0}")]
    SignInRefused(String),
    #[error("{0}")]
    Unavailable(String),
    /// A per-person limit is reached (open requests, API tokens).
    #[error("{0}")]
    Limit(String),
    /// IAM Identity Center failed; the text is logged, never shown.
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error("{0}")]
    Internal(String),
}

impl From<BrokerError> for WebError {
    fn from(e: BrokerError) -> Self {
        match e {
            BrokerError::App(e) => WebError::from(e),
            BrokerError::Store(e) => WebError::Internal(e.to_string()),
            BrokerError::Aws(e) => WebError::Aws(e),
            BrokerError::Port(e) => WebError::Internal(e.to_string()),
        }
    }
}

/// What the application layer's refusals are to the web and the API.
impl From<AppError> for WebError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Domain(e) => WebError::Domain(e),
            AppError::NotFound(id) => WebError::NotFound(format!("no request {id}")),
            e @ AppError::UnknownProfile { .. } => WebError::Invalid {
                field: Some("profile"),
                message: e.to_string(),
            },
            e @ AppError::NoIdcUser { .. } => WebError::NoIdcUser(e.to_string()),
            e @ (AppError::IdcBindingMismatch { .. } | AppError::IdcUserTaken { .. }) => {
                WebError::IdcBinding(e.to_string())
            }
            e @ AppError::TooManyOpen { .. } => WebError::Limit(e.to_string()),
            e @ AppError::NoPermissionSet(_) => WebError::Unavailable(e.to_string()),
            AppError::Limit(why) => WebError::Limit(why),
            AppError::NoSuch(what) => WebError::NotFound(what),
            AppError::Forbidden(why) => WebError::Forbidden(why),
            e @ AppError::StepUpRequired { .. } => WebError::StepUpRequired(e.to_string()),
            AppError::NotReady(what) => WebError::Unavailable(what.to_owned()),
            e @ (AppError::Store(_) | AppError::Directory(_)) => WebError::Internal(e.to_string()),
        }
    }
}

impl WebError {
    /// An input field the request got wrong.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        WebError::Invalid {
            field: Some(field),
            message: message.into(),
        }
    }

    /// The one status map: the status code of this failure and the machine-readable
    /// code the API puts in its body.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            WebError::SignInRequired | WebError::Unauthorized(_) => {
                (StatusCode::UNAUTHORIZED, "unauthorized")
            }
            WebError::SignInRefused(_) => (StatusCode::UNAUTHORIZED, "sign_in_refused"),
            WebError::Forbidden(_) | WebError::MissingRole { .. } => {
                (StatusCode::FORBIDDEN, "forbidden")
            }
            WebError::NoIdcUser(_) => (StatusCode::FORBIDDEN, "no_idc_user"),
            WebError::StepUpRequired(_) => (StatusCode::FORBIDDEN, "step_up_required"),
            WebError::IdcBinding(_) => (StatusCode::FORBIDDEN, "idc_binding"),
            WebError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            WebError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            WebError::Invalid { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            WebError::Domain(e) => match e.kind() {
                ErrorKind::Invalid => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
                ErrorKind::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
                ErrorKind::Conflict => (StatusCode::CONFLICT, "conflict"),
            },
            WebError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            WebError::Limit(_) => (StatusCode::TOO_MANY_REQUESTS, "limit"),
            WebError::Aws(_) => (StatusCode::BAD_GATEWAY, "aws_unavailable"),
            WebError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// The status code of this failure, for pages that show it themselves.
    pub fn status(&self) -> StatusCode {
        self.status_and_code().0
    }

    /// The form input at fault, if the failure is about one.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            WebError::Invalid { field, .. } => *field,
            WebError::Domain(e) => e.field(),
            _ => None,
        }
    }

    /// Whether this is a refusal the person can act on (shown inside the page they
    /// were on), as opposed to a failure of jitgate or its peers (an error page).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            WebError::Forbidden(_)
                | WebError::StepUpRequired(_)
                | WebError::Limit(_)
                | WebError::NoIdcUser(_)
                | WebError::IdcBinding(_)
                | WebError::MissingRole { .. }
                | WebError::BadRequest(_)
                | WebError::Invalid { .. }
                | WebError::Domain(_)
        )
    }

    /// The message a person reads. Failures of jitgate or its peers are logged in full
    /// under a fresh reference id and shown as that id only.
    pub fn public_message(&self) -> (String, Option<String>) {
        match self {
            WebError::Internal(_) => {
                let id = reference();
                tracing::error!(reference = %id, error = %self, "request failed");
                (
                    "jitgate could not complete this request.".to_owned(),
                    Some(id),
                )
            }
            WebError::Aws(_) => {
                let id = reference();
                tracing::error!(reference = %id, error = %self, "AWS call failed");
                (
                    "IAM Identity Center did not answer as expected; nothing was changed. \
                     Try again in a minute."
                        .to_owned(),
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
        }
    }

    /// The error page, with the navigation of `user` when someone is signed in.
    pub fn render(self, user: Option<UserView>) -> Response {
        self.render_returning(user, None)
    }

    /// [`Self::render`]; a "sign in first" page's sign-in link comes back to `back`.
    pub fn render_returning(self, user: Option<UserView>, back: Option<&str>) -> Response {
        let status = self.status();
        let heading = match &self {
            WebError::SignInRequired | WebError::Unauthorized(_) => "Sign in first",
            WebError::Forbidden(_)
            | WebError::NoIdcUser(_)
            | WebError::IdcBinding(_)
            | WebError::MissingRole { .. } => "Not allowed",
            WebError::StepUpRequired(_) => "Sign in again",
            WebError::NotFound(_) => "Not found",
            WebError::BadRequest(_) | WebError::Invalid { .. } => "Bad request",
            WebError::Domain(e) => match e.kind() {
                ErrorKind::Invalid => "Bad request",
                ErrorKind::Forbidden => "Not allowed",
                ErrorKind::Conflict => "Not possible now",
            },
            WebError::SignInRefused(_) => "Sign-in refused",
            WebError::Unavailable(_) => "Unavailable",
            WebError::Limit(_) => "Too many",
            WebError::Aws(_) => "AWS did not answer",
            WebError::Internal(_) => "Something went wrong",
        };
        let sign_in = matches!(self, WebError::SignInRequired).then(|| match back {
            Some(back) => format!("/login?return_to={}", super::cli_login::urlencode(back)),
            None => "/login".to_owned(),
        });
        let (message, request_id) = self.public_message();
        let page = ErrorPage {
            user,
            status: status.as_u16(),
            heading,
            message,
            request_id,
            sign_in,
        };
        match page.render() {
            Ok(html) => (status, Html(html)).into_response(),
            Err(_) => (status, heading.to_owned()).into_response(),
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    user: Option<UserView>,
    status: u16,
    heading: &'a str,
    message: String,
    request_id: Option<String>,
    /// For "sign in first": where to sign in (coming back to the page asked for).
    sign_in: Option<String>,
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        self.render(None)
    }
}

fn reference() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn missing_role(role: &str, groups: Option<&[String]>, yours: &[String]) -> String {
    match groups {
        Some(groups) => format!(
            "this needs the {role} role, which members of {} have; you are in {}. Ask your \
             jitgate administrator to add you to one of these groups",
            names(groups, "no group (none configured)"),
            names(yours, "no group")
        ),
        None => format!(
            "this needs the {role} role; you have no role in jitgate (you are in {}). Ask \
             your jitgate administrator if you need one",
            names(yours, "no group")
        ),
    }
}

/// Joins names for a message, saying `none` when there are none.
fn names(items: &[String], none: &str) -> String {
    if items.is_empty() {
        none.to_owned()
    } else {
        items.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_refusals_map_by_kind() {
        assert_eq!(
            WebError::from(DomainError::ReasonRequired).status(),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(
            WebError::from(DomainError::SelfApproval).status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            WebError::from(DomainError::ExtensionPending).status(),
            StatusCode::CONFLICT
        );
        assert_eq!(
            WebError::from(DomainError::ReasonRequired).field(),
            Some("reason")
        );
    }

    #[test]
    fn a_missing_role_names_the_groups() {
        let e = WebError::MissingRole {
            role: "requester",
            groups: Some(vec!["developers".into(), "sre".into()]),
            yours: vec!["contractors".into()],
        };
        assert_eq!(e.status(), StatusCode::FORBIDDEN);
        let text = e.to_string();
        assert!(text.contains("requester role"), "{text}");
        assert!(text.contains("developers, sre"), "{text}");
        assert!(text.contains("you are in contractors"), "{text}");
    }

    #[test]
    fn an_unknown_profile_is_shown_at_the_profile_field() {
        let e = WebError::from(AppError::UnknownProfile {
            name: "x".into(),
            known: vec!["prod-web".into()],
        });
        assert_eq!(e.field(), Some("profile"));
        assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
}
