//! `GET /admin/audit?request=&actor=&action=&since=&after=`: the audit trail searched,
//! oldest first, a page at a time, with links to export it.
//!
//! The database matches the filters. Without a request id (which is indexed), one page
//! looks at most `broker::AUDIT_SCAN_LIMIT` events past `after`, so a rare match cannot make a page
//! read the whole trail: the "next" link then continues the scan where it stopped.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::{parse_since, require_admin};
use crate::audit::EventFilter;
use crate::http::AppState;
use crate::http::pages::view::{People, when};
use crate::http::pages::{OrPage, PageResult, Viewer, render};
use crate::http::session::UserView;

/// Events shown per page.
const PAGE_SIZE: usize = 100;

/// The search, as typed (blank: no filter).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(in crate::http::pages) struct Search {
    /// A request id: only its events.
    request: String,
    /// A user id, or `jitgate` for what jitgate did on its own.
    actor: String,
    /// An action (`request.approved`) or its beginning (`aws.`).
    action: String,
    /// See [`parse_since`].
    since: String,
    /// Paging: only events after this sequence number.
    after: String,
}

impl Search {
    fn filter(&self, since_millis: i64) -> EventFilter<'_> {
        EventFilter {
            request_id: given(&self.request),
            actor: given(&self.actor),
            action_prefix: given(&self.action),
            since_millis,
        }
    }
}

/// A search field as a filter: blank means none.
fn given(text: &str) -> Option<&str> {
    Some(text.trim()).filter(|t| !t.is_empty())
}

/// One event as a row.
struct EventRow {
    seq: i64,
    at: String,
    actor: String,
    actor_id: String,
    action: String,
    request_id: Option<String>,
    details: String,
}

#[derive(Template)]
#[template(path = "admin_audit.html")]
struct AuditPage {
    user: Option<UserView>,
    search: Search,
    rows: Vec<EventRow>,
    /// The `after` of the next page, when there may be more.
    next: Option<i64>,
    /// The page stopped reading before it was full (see `broker::AUDIT_SCAN_LIMIT`).
    scan_stopped: bool,
    error: Option<String>,
}

/// `GET /admin/audit`.
pub(in crate::http::pages) async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(search): Query<Search>,
) -> PageResult {
    require_admin(&state, &viewer.user).or_page(&viewer)?;
    let mut page = AuditPage {
        user: Some(viewer.view.clone()),
        search: search.clone(),
        rows: Vec::new(),
        next: None,
        scan_stopped: false,
        error: None,
    };
    let since = match parse_since(&search.since, state.broker.now()) {
        Ok(since) => since,
        Err(e) => {
            page.error = Some(e.to_string());
            return render(e.status(), &page).or_page(&viewer);
        }
    };
    let since_millis = since.map_or(i64::MIN, |t| t.timestamp_millis());
    let after = search.after.trim().parse::<i64>().unwrap_or(0);
    let found = state
        .broker
        .search_audit(
            &viewer.user.actor,
            &search.filter(since_millis),
            after,
            PAGE_SIZE,
        )
        .await
        .or_page(&viewer)?;
    let actors: Vec<&str> = found.events.iter().map(|e| e.actor.as_str()).collect();
    let people = People::load(&state, actors).await.or_page(&viewer)?;
    page.rows = found
        .events
        .into_iter()
        .map(|e| EventRow {
            seq: e.seq,
            at: when(e.at),
            actor: people.name(&e.actor),
            actor_id: e.actor,
            action: e.action.to_string(),
            request_id: e.request_id,
            details: e.details.to_string(),
        })
        .collect();
    page.next = found.next;
    page.scan_stopped = found.scan_stopped;
    render(StatusCode::OK, &page).or_page(&viewer)
}
