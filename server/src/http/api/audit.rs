//! `/api/v1/audit`: the audit trail, for admins.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use jitgate_proto::{AuditEventView, ErrorBody};
use serde::Deserialize;

use super::auth::ApiUser;
use super::error::ApiError;
use super::input::{self, Q};
use crate::http::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct AuditQuery {
    /// Only the events of this request.
    request_id: Option<String>,
    /// Only events at or after this time (RFC 3339).
    since: Option<DateTime<Utc>>,
    /// Paging: events after this sequence number.
    #[param(minimum = 0)]
    after: Option<i64>,
    /// How many to return (default 200; at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
}

/// `GET /audit`: events in order, for admins.
#[utoipa::path(
    get,
    path = "/audit",
    summary = "The audit trail in order (admins)",
    params(AuditQuery),
    responses(
        (status = 200, body = [AuditEventView]),
        (status = 401, description = "no valid token or session", body = ErrorBody),
        (status = 403, description = "not allowed (says why)", body = ErrorBody),
        (status = 422, description = "invalid input (names the field)", body = ErrorBody),
    )
)]
pub(super) async fn list(
    State(state): State<AppState>,
    caller: ApiUser,
    Q(query): Q<AuditQuery>,
) -> Result<Json<Vec<AuditEventView>>, ApiError> {
    // Checked whichever way the events are read: bad input is refused, never ignored.
    let limit = input::in_range("limit", query.limit, 200, 1, 1000)?;
    let after = input::in_range("after", query.after, 0, 0, i64::MAX)?;
    let actor = &caller.user.actor;
    let events = match &query.request_id {
        Some(id) => state.broker.audit_of_request(actor, id).await?,
        None => {
            state
                .broker
                .audit_events(actor, query.since, after, limit)
                .await?
        }
    };
    Ok(Json(
        events
            .into_iter()
            .map(|e| AuditEventView {
                seq: e.seq,
                at: e.at,
                actor: e.actor,
                action: e.action.to_string(),
                request_id: e.request_id,
                details: e.details,
                hash: e.hash,
            })
            .collect(),
    ))
}
