//! `/api/v1/targets`: the instances the caller can reach, for `jitgate targets` and the
//! name resolution of `jitgate ssh`.

use axum::Json;
use axum::extract::State;
use jitgate_proto::{ErrorBody, TargetView, TargetsView};
use serde::Deserialize;

use super::auth::ApiUser;
use super::error::ApiError;
use super::input::Q;
use crate::http::AppState;

/// The longest query taken (a Name tag is at most 256 characters).
const MAX_QUERY: usize = 256;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct TargetQuery {
    /// An instance id, or part of a Name tag (any case); absent: every target.
    q: Option<String>,
}

/// `GET /targets`.
#[utoipa::path(
    get,
    path = "/targets",
    summary = "Instances the caller can reach, with the profiles and grants that cover them",
    params(TargetQuery),
    responses(
        (status = 200, body = TargetsView),
        (status = 401, description = "no valid token or session", body = ErrorBody),
        (status = 422, description = "invalid input (names the field)", body = ErrorBody),
        (status = 503, description = "the instances have not been looked up yet", body = ErrorBody),
    )
)]
pub(super) async fn list(
    State(state): State<AppState>,
    caller: ApiUser,
    Q(query): Q<TargetQuery>,
) -> Result<Json<TargetsView>, ApiError> {
    let q = query.q.unwrap_or_default();
    if q.chars().count() > MAX_QUERY || q.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "q",
            format!("give an instance id or part of a Name tag, at most {MAX_QUERY} characters"),
        ));
    }
    let found = state.broker.targets(&caller.user.actor, &q).await?;
    Ok(Json(TargetsView {
        looked_up_at: found.looked_up_at,
        targets: found
            .reachable
            .into_iter()
            .map(|r| TargetView {
                instance_id: r.target.instance_id,
                name: r.target.name,
                account_id: r.target.account.to_string(),
                region: r.target.region,
                ping_status: r.target.ping,
                profiles: r.profiles,
                grants: r.grants.iter().map(ToString::to_string).collect(),
            })
            .collect(),
    }))
}
