//! `GET /requests`: the viewer's own requests, newest first, a page at a time.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::view::RequestRow;
use super::{OrPage, PageResult, Viewer, render};
use crate::http::AppState;
use crate::http::session::UserView;
use chrono::DateTime;

const PAGE_SIZE: i64 = 50;

/// `?before=MILLIS`: the page of requests made before that time.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Paging {
    // Text, not a number: a hand-edited URL shows the first page, not a bare 400.
    before: String,
}

#[derive(Template)]
#[template(path = "my_requests.html")]
struct MyRequests {
    user: Option<UserView>,
    rows: Vec<RequestRow>,
    /// The `before` of the next (older) page, when there may be one.
    older: Option<i64>,
    paged: bool,
}

/// `GET /requests`.
pub(super) async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(paging): Query<Paging>,
) -> PageResult {
    let created_before = paging
        .before
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_millis);
    let list = state
        .broker
        .mine(&viewer.user.actor, Vec::new(), created_before, PAGE_SIZE)
        .await
        .or_page(&viewer)?;
    let older = match list.last() {
        Some(last) if list.len() as i64 == PAGE_SIZE => {
            Some(last.request.created_at.timestamp_millis())
        }
        _ => None,
    };
    let rows = RequestRow::all(&state, &list, state.broker.now())
        .await
        .or_page(&viewer)?;
    let page = MyRequests {
        user: Some(viewer.view.clone()),
        rows,
        older,
        paged: created_before.is_some(),
    };
    render(StatusCode::OK, &page).or_page(&viewer)
}
