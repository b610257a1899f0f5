//! Server-rendered pages (templates in the repository's web/templates). They work
//! without JavaScript; every form carries the session's CSRF token.

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::response::Html;
use axum::routing::get;

use super::session::{MaybeUser, UserView};
use super::{AppState, WebError};

/// The page routes.
pub(super) fn router() -> Router<AppState> {
    Router::new().route("/", get(home))
}

#[derive(Template)]
#[template(path = "home.html")]
struct Home {
    user: Option<UserView>,
}

/// `GET /`: who is signed in and what they may do; a sign-in link otherwise.
async fn home(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
) -> Result<Html<String>, WebError> {
    let page = Home {
        user: user.map(|u| u.view(&state)),
    };
    page.render()
        .map(Html)
        .map_err(|e| WebError::Internal(format!("rendering home: {e}")))
}
