//! `GET /`: a sign-in card for visitors; for a signed-in person their access (with
//! time left), their pending requests and, for approvers, what waits for them.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;

use super::view::RequestRow;
use super::{OrPage, PageError, PageResult, Viewer, approvals, render};
use crate::domain::StateName;
use crate::http::AppState;
use crate::http::session::{MaybeUser, UserView};

/// A person has few open requests; more than this means something is stuck.
const OPEN_LIMIT: i64 = 50;

#[derive(Template)]
#[template(path = "home.html")]
struct Home {
    user: Option<UserView>,
    /// Approved (being set up) and active grants.
    grants: Vec<RequestRow>,
    pending: Vec<RequestRow>,
    /// For approvers: requests waiting for their decision.
    waiting: Vec<RequestRow>,
}

/// `GET /`.
pub(super) async fn show(State(state): State<AppState>, MaybeUser(user): MaybeUser) -> PageResult {
    let Some(user) = user else {
        let page = Home {
            user: None,
            grants: Vec::new(),
            pending: Vec::new(),
            waiting: Vec::new(),
        };
        return render(StatusCode::OK, &page).map_err(|error| PageError::new(None, error));
    };
    let view = user.view(&state);
    let viewer = Viewer { user, view };
    let now = state.broker.now();
    let mine = |states: Vec<StateName>| {
        state
            .broker
            .mine(&viewer.user.actor, states, None, OPEN_LIMIT)
    };
    let grants = mine(vec![StateName::Active, StateName::Approved])
        .await
        .or_page(&viewer)?;
    let pending = mine(vec![StateName::Pending]).await.or_page(&viewer)?;
    let waiting = approvals::queue(&state, &viewer.user, 0)
        .await
        .or_page(&viewer)?;
    let rows = |list| RequestRow::all(&state, list, now);
    let page = Home {
        user: Some(viewer.view.clone()),
        grants: rows(&grants).await.or_page(&viewer)?,
        pending: rows(&pending).await.or_page(&viewer)?,
        waiting: rows(&waiting).await.or_page(&viewer)?,
    };
    render(StatusCode::OK, &page).or_page(&viewer)
}
