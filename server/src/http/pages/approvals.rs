//! `GET /approvals`: the requests and extensions waiting for the viewer's decision.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;

use super::view::RequestRow;
use super::{OrPage, PageResult, Viewer, render};
use crate::domain::{Approval, Request, RequestState, StateName};
use crate::http::session::UserView;
use crate::http::{AppState, CurrentUser, WebError, access};
use crate::store::StoreError;
use crate::store::requests::{self, ListFilter, StoredRequest};

/// Most requests of each kind a queue reads; a queue longer than this has bigger problems.
const QUEUE_LIMIT: i64 = 200;

#[derive(Template)]
#[template(path = "approvals.html")]
struct ApprovalsPage {
    user: Option<UserView>,
    rows: Vec<RequestRow>,
    profiles: Vec<String>,
}

/// `GET /approvals`: 403 for someone who approves no profile.
pub(super) async fn show(State(state): State<AppState>, viewer: Viewer) -> PageResult {
    let profiles = access::approved_profiles(&viewer.user, &state.config);
    if profiles.is_empty() {
        return Err(viewer.refuse(missing_approver_role(&state, &viewer.user)));
    }
    let waiting = queue(&state, &viewer.user).await.or_page(&viewer)?;
    let rows = RequestRow::all(&state.db, &waiting, &state.config, state.broker.now())
        .await
        .or_page(&viewer)?;
    let page = ApprovalsPage {
        user: Some(viewer.view.clone()),
        rows,
        profiles,
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
    groups.extend(state.config.auth.admin_groups.iter().cloned());
    WebError::MissingRole {
        role: "approver",
        groups,
        yours: user.user.groups.clone(),
    }
}

/// Requests waiting for `user`'s decision, oldest first: pending requests, and active
/// grants with an extension pending, in profiles `user` approves, not their own, and
/// not already approved by them (N-of-M needs someone else next).
pub(super) async fn queue(
    state: &AppState,
    user: &CurrentUser,
) -> Result<Vec<StoredRequest>, StoreError> {
    let profiles = access::approved_profiles(user, &state.config);
    if profiles.is_empty() {
        return Ok(Vec::new());
    }
    let mine = ListFilter {
        profiles: Some(profiles),
        not_requester: Some(user.user.id.clone()),
        limit: QUEUE_LIMIT,
        ..Default::default()
    };
    let mut waiting = requests::list(
        &state.db,
        &ListFilter {
            states: vec![StateName::Pending],
            ..mine.clone()
        },
    )
    .await?;
    waiting.extend(
        requests::list(
            &state.db,
            &ListFilter {
                states: vec![StateName::Active],
                ..mine
            },
        )
        .await?,
    );
    waiting.retain(|s| awaits(&s.request, &user.user.id));
    waiting.sort_by_key(|s| s.request.created_at);
    Ok(waiting)
}

/// Whether `request` waits for an approval `me` has not given yet.
pub(super) fn awaits(request: &Request, me: &str) -> bool {
    let given = |approvals: &[Approval]| approvals.iter().any(|a| a.by.as_str() == me);
    match (&request.state, &request.extension) {
        (RequestState::Pending, _) => !given(&request.approvals),
        (RequestState::Active { .. }, Some(extension)) => !given(&extension.approvals),
        _ => false,
    }
}
