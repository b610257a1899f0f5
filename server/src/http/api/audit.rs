//! `/api/v1/audit`: the audit trail, for admins.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use jitgate_proto::{AuditEventView, ErrorBody};
use serde::Deserialize;

use super::auth::ApiUser;
use super::error::ApiError;
use super::input::Q;
use crate::http::AppState;
use crate::store::audit;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct AuditQuery {
    /// Only the events of this request.
    request_id: Option<String>,
    /// Only events at or after this time (RFC 3339).
    since: Option<DateTime<Utc>>,
    /// Paging: events after this sequence number.
    after: Option<i64>,
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
    if !caller.user.actor.is_admin {
        return Err(ApiError::forbidden(format!(
            "the audit trail is for administrators (groups: {})",
            state.config.auth.admin_groups.join(", ")
        )));
    }
    let events = match &query.request_id {
        Some(id) => audit::for_request(&state.db, id).await?,
        None => {
            let since = query.since.map_or(i64::MIN, |t| t.timestamp_millis());
            let limit = query.limit.unwrap_or(200).clamp(1, 1000);
            audit::page_since(&state.db, since, query.after.unwrap_or(0), limit).await?
        }
    };
    Ok(Json(
        events
            .into_iter()
            .map(|e| AuditEventView {
                seq: e.seq,
                at: e.at,
                actor: e.actor,
                action: e.action,
                request_id: e.request_id,
                details: e.details,
                hash: e.hash,
            })
            .collect(),
    ))
}
