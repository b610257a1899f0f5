//! `GET /admin/requests?state=&profile=&requester=&before=`: every request, filtered.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::require_admin;
use crate::broker::Listing;
use crate::domain::StateName;
use crate::domain::UserId;
use crate::http::pages::view::RequestRow;
use crate::http::pages::{OrPage, PageResult, Viewer, render};
use crate::http::session::UserView;
use crate::http::{AppState, WebError};
use chrono::DateTime;

const PAGE_SIZE: i64 = 100;

/// The filters, as typed (blank: no filter).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(in crate::http::pages) struct Filters {
    state: String,
    profile: String,
    /// A user id (the OIDC subject); the requester links of the list fill it in.
    requester: String,
    /// Paging: only requests made before this (milliseconds since the epoch).
    before: String,
}

#[derive(Template)]
#[template(path = "admin_requests.html")]
struct AdminRequests {
    user: Option<UserView>,
    filters: Filters,
    states: Vec<&'static str>,
    profiles: Vec<String>,
    rows: Vec<RequestRow>,
    older: Option<i64>,
    error: Option<String>,
    /// With `[slack]` and something failing to reach it: what is held back.
    slack_behind: Option<String>,
}

/// `GET /admin/requests`.
pub(in crate::http::pages) async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(filters): Query<Filters>,
) -> PageResult {
    require_admin(&state, &viewer.user).or_page(&viewer)?;
    let mut page = AdminRequests {
        user: Some(viewer.view.clone()),
        filters: filters.clone(),
        states: StateName::ALL.iter().map(|s| s.as_str()).collect(),
        profiles: state
            .config
            .profiles
            .iter()
            .map(|p| p.name.clone())
            .collect(),
        rows: Vec::new(),
        older: None,
        error: None,
        slack_behind: None,
    };
    if state.config.slack.is_some() {
        match state.broker.slack_behind().await {
            Ok((_, 0)) => {}
            Ok((behind, failing)) => {
                page.slack_behind = Some(format!(
                    "{behind} Slack message(s) do not show their request's latest change yet;                      {failing} failed to be delivered and are being retried (the server log                      says why: \"Slack message not delivered\")."
                ));
            }
            Err(e) => tracing::warn!(error = %e, "counting undelivered Slack messages failed"),
        }
    }
    let states = match filters.state.trim() {
        "" => Vec::new(),
        text => match text.parse::<StateName>() {
            Ok(s) => vec![s],
            Err(e) => {
                let e = WebError::from(e);
                page.error = Some(e.to_string());
                return render(e.status(), &page).or_page(&viewer);
            }
        },
    };
    let blank_is_none = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    let listing = Listing {
        requester: blank_is_none(&filters.requester).map(UserId::new),
        profiles: blank_is_none(&filters.profile).map(|p| vec![p]),
        states,
        created_before: filters
            .before
            .parse::<i64>()
            .ok()
            .and_then(DateTime::from_timestamp_millis),
        limit: PAGE_SIZE,
    };
    let list = state
        .broker
        .list(&viewer.user.actor, listing)
        .await
        .or_page(&viewer)?;
    page.older = match list.last() {
        Some(last) if list.len() as i64 == PAGE_SIZE => {
            Some(last.request.created_at.timestamp_millis())
        }
        _ => None,
    };
    page.rows = RequestRow::all(&state, &list, state.broker.now())
        .await
        .or_page(&viewer)?;
    render(StatusCode::OK, &page).or_page(&viewer)
}
