//! Server-rendered pages.

use askama::Template;
use axum::extract::State;
use axum::response::Html;

use super::session::{MaybeUser, UserView};
use super::{AppState, WebError};

#[derive(Template)]
#[template(path = "home.html")]
struct Home {
    user: Option<UserView>,
}

/// `GET /`: who is signed in and what they may do; a sign-in link otherwise.
pub(super) async fn home(
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
