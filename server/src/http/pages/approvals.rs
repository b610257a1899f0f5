//! `GET /approvals`: the requests and extensions waiting for the viewer's decision.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;

use super::view::RequestRow;
use super::{OrPage, PageResult, Viewer, render};
use crate::broker::BrokerError;
use crate::domain::RequestRecord;
use crate::http::session::UserView;
use crate::http::{AppState, CurrentUser, WebError, access};

/// Requests on one page of the queue.
pub(super) const QUEUE_PAGE: i64 = 50;

#[derive(Template)]
#[template(path = "approvals.html")]
struct ApprovalsPage {
    user: Option<UserView>,
    rows: Vec<RequestRow>,
    profiles: Vec<String>,
    /// Page links: the previous and next page numbers, when there are such pages.
    previous: Option<i64>,
    next: Option<i64>,
}

#[derive(serde::Deserialize)]
pub(super) struct QueuePage {
    #[serde(default)]
    page: i64,
}

/// `GET /approvals?page=N`: 403 for someone who approves no profile.
pub(super) async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    axum::extract::Query(at): axum::extract::Query<QueuePage>,
) -> PageResult {
    let profiles = access::approved_profiles(&viewer.user, state.broker.rules());
    if profiles.is_empty() {
        return Err(viewer.refuse(missing_approver_role(&state, &viewer.user)));
    }
    let page = at.page.max(0);
    let waiting = queue(&state, &viewer.user, page).await.or_page(&viewer)?;
    let next = (waiting.len() as i64 == QUEUE_PAGE).then_some(page + 1);
    let rows = RequestRow::all(&state, &waiting, state.broker.now())
        .await
        .or_page(&viewer)?;
    let page = ApprovalsPage {
        user: Some(viewer.view.clone()),
        rows,
        profiles,
        previous: (page > 0).then_some(page - 1),
        next,
    };
    render(StatusCode::OK, &page).or_page(&viewer)
}

/// The refusal for someone who approves nothing, naming the groups that approve.
fn missing_approver_role(state: &AppState, user: &CurrentUser) -> WebError {
    let mut groups: Vec<String> = Vec::new();
    for profile in &state.config.profiles {
        for group in &profile.approver_groups {
            if !groups.contains(group) {
                groups.push(group.clone());
            }
        }
    }
    if state.config.auth.admins_approve {
        groups.extend(state.config.auth.admin_groups.iter().cloned());
    }
    user.missing_role(state.broker.rules(), "approver", groups)
}

/// Page `page` of the requests waiting for `user`'s decision: the application
/// layer's one queue (`jitgate_core::app::Requests::approval_queue`), shared with the
/// API.
pub(super) async fn queue(
    state: &AppState,
    user: &CurrentUser,
    page: i64,
) -> Result<Vec<RequestRecord>, BrokerError> {
    state
        .broker
        .approval_queue(&user.actor, None, page.max(0) * QUEUE_PAGE, QUEUE_PAGE)
        .await
}
