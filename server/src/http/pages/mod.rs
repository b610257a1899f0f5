//! Server-rendered pages (templates in the repository's web/templates). They work
//! without JavaScript and on a phone; every form carries the session's CSRF token and
//! every POST checks it before anything else.
//!
//! Submodules, one per page or resource: `home`, `new_request` (form and submit),
//! `my_requests`, `approvals` (the queue), `request_page` (details, timeline, actions),
//! `actions` (approve, deny, cancel, revoke, extend), `admin` (all requests, audit
//! search and export), `slack_settings` (linking a Slack account); `view` holds the formatting the pages share.
//!
//! Handlers take a [`Viewer`] (the signed-in person and their navigation) and fail with
//! a [`PageError`], so an error page keeps the person's navigation; statuses come from
//! [`WebError::status`].

mod actions;
mod admin;
mod approvals;
mod home;
mod my_requests;
mod new_request;
mod request_page;
mod slack_settings;
mod view;

use askama::Template;
use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};

use super::session::UserView;
use super::{AppState, CurrentUser, WebError};

/// The page routes.
pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home::show))
        .route("/requests/new", get(new_request::show))
        .route(
            "/requests",
            get(my_requests::show).post(new_request::submit),
        )
        .route("/approvals", get(approvals::show))
        .route("/requests/{id}", get(request_page::show))
        .route("/requests/{id}/approve", post(actions::approve))
        .route("/requests/{id}/deny", post(actions::deny))
        .route("/requests/{id}/cancel", post(actions::cancel))
        .route("/requests/{id}/revoke", post(actions::revoke))
        .route("/requests/{id}/extend", post(actions::extend))
        .route("/admin/requests", get(admin::requests::show))
        .route("/admin/audit", get(admin::audit::show))
        .route("/admin/audit/export", get(admin::export::download))
        .route("/settings/slack", get(slack_settings::show))
        .route("/settings/slack/link", post(slack_settings::link))
        .route("/settings/slack/confirm", post(slack_settings::confirm))
        .route("/settings/slack/unlink", post(slack_settings::unlink))
}

/// What a page handler answers.
type PageResult = Result<Response, PageError>;

/// The signed-in person viewing a page, with what the navigation shows of them.
/// Extracting it answers anonymous requests with "sign in first".
pub(super) struct Viewer {
    pub user: CurrentUser,
    pub view: UserView,
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = PageError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let user = CurrentUser::from_request_parts(parts, state)
            .await
            .map_err(|error| {
                // A signed-out deep link keeps its target through the sign-in.
                let back = (parts.method == axum::http::Method::GET)
                    .then(|| parts.uri.path_and_query().map(|p| p.as_str().to_owned()))
                    .flatten();
                PageError(Box::new((None, error, back)))
            })?;
        let view = user.view(state);
        Ok(Viewer { user, view })
    }
}

impl Viewer {
    /// `error` as a page with this person's navigation.
    pub fn refuse(&self, error: impl Into<WebError>) -> PageError {
        PageError::new(Some(self.view.clone()), error.into())
    }
}

/// A failed page: the error page, with the navigation of whoever was signed in, and for
/// "sign in first" the page to come back to. (Boxed: handlers pass it through every `?`.)
pub(super) struct PageError(Box<(Option<UserView>, WebError, Option<String>)>);

impl PageError {
    fn new(user: Option<UserView>, error: WebError) -> Self {
        PageError(Box::new((user, error, None)))
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (user, error, back) = *self.0;
        error.render_returning(user, back.as_deref())
    }
}

/// Any path no route serves: the 404 page, with the person's navigation.
pub(super) async fn not_found(
    axum::extract::State(state): axum::extract::State<AppState>,
    super::session::MaybeUser(user): super::session::MaybeUser,
    uri: axum::http::Uri,
) -> Response {
    let view = user.map(|u| u.view(&state));
    WebError::NotFound(format!("there is no page at {}", uri.path())).render(view)
}

/// Turns any failure into a [`PageError`] shown to `viewer`: `result.or_page(&viewer)?`.
pub(super) trait OrPage<T> {
    fn or_page(self, viewer: &Viewer) -> Result<T, PageError>;
}

impl<T, E: Into<WebError>> OrPage<T> for Result<T, E> {
    fn or_page(self, viewer: &Viewer) -> Result<T, PageError> {
        self.map_err(|e| viewer.refuse(e))
    }
}

/// Renders `page` with `status`.
fn render(status: StatusCode, page: &impl Template) -> Result<Response, WebError> {
    let html = page
        .render()
        .map_err(|e| WebError::Internal(format!("rendering a page: {e}")))?;
    Ok((status, Html(html)).into_response())
}
