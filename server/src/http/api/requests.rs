//! `/api/v1/requests`: create, list, read, and the actions on one request.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use jitgate_proto::{CommentBody, ErrorBody, ExtendBody, NewRequest, RequestView};
use serde::Deserialize;

use super::auth::ApiUser;
use super::error::ApiError;
use super::input::{self, Body, Q, Required};
use super::views;
use crate::broker::Action;
use crate::broker::Listing;
use crate::domain::RequestRecord;
use crate::domain::{Draft, RequestId, StateName};
use crate::http::AppState;

/// Reads `text` as a duration (`2h`, `30m`, `1h30m`); `field` names the input at fault.
pub(super) fn duration(field: &'static str, text: &str) -> Result<Duration, ApiError> {
    jitgate_core::parse::duration(text).map_err(|e| ApiError::invalid(field, e.0))
}

fn request_id(text: &str) -> Result<RequestId, ApiError> {
    text.parse()
        .map_err(|_| ApiError::not_found(format!("no request {text}")))
}

/// `POST /requests`.
#[utoipa::path(
    post,
    path = "/requests",
    summary = "Ask for access",
    request_body = NewRequest,
    responses(
        (status = 201, description = "filed (approved at once under auto-approval)", body = RequestView),
        (status = 401, description = "no valid token or session", body = ErrorBody),
        (status = 403, description = "may not request this profile, or has no IAM Identity Center user (code no_idc_user)", body = ErrorBody),
        (status = 409, description = "not possible in the request's state", body = ErrorBody),
        (status = 422, description = "invalid input (names the field)", body = ErrorBody),
        (status = 503, description = "IAM Identity Center not reached yet", body = ErrorBody),
    )
)]
pub(super) async fn create(
    State(state): State<AppState>,
    caller: ApiUser,
    Required(body): Required<NewRequest>,
) -> Result<(StatusCode, Json<RequestView>), ApiError> {
    let draft = Draft {
        profile: body.profile,
        account: body.account_id,
        os_user: body.os_user,
        duration: duration("duration", &body.duration)?,
        reason: body.reason,
        ticket: body.ticket,
    };
    let stored = state
        .broker
        .submit(&caller.user.actor, draft, state.broker.now())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(views::request(&stored, &state.config)),
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// Only the caller's own requests.
    #[serde(default)]
    mine: bool,
    /// The caller's approval queue (the web's `/approvals`): what waits for their
    /// decision, oldest first, requesters taking turns; paged with `offset`.
    #[serde(default)]
    to_approve: bool,
    /// Paging of `to_approve`: how many of the queue to skip.
    #[param(minimum = 0)]
    offset: Option<i64>,
    state: Option<String>,
    profile: Option<String>,
    /// Paging: requests created before this time (the last `created_at` seen).
    before: Option<DateTime<Utc>>,
    /// How many to return (default 100; at most 500).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
}

/// `GET /requests`: what the caller may see, newest first.
#[utoipa::path(
    get,
    path = "/requests",
    summary = "Requests the caller may see, newest first; or their approval queue",
    params(ListQuery),
    responses(
        (status = 200, body = [RequestView]),
        (status = 401, description = "no valid token or session", body = ErrorBody),
        (status = 422, description = "invalid input (names the field)", body = ErrorBody),
    )
)]
pub(super) async fn list(
    State(state): State<AppState>,
    caller: ApiUser,
    Q(query): Q<ListQuery>,
) -> Result<Json<Vec<RequestView>>, ApiError> {
    let user = &caller.user;
    if query.to_approve {
        return approval_queue(&state, user, &query).await;
    }
    if query.offset.is_some() {
        return Err(ApiError::invalid(
            "offset",
            "offset pages the approval queue (to_approve); other listings page with before",
        ));
    }
    let mut filter = Listing {
        created_before: query.before,
        limit: input::in_range("limit", query.limit, 100, 1, 500)?,
        ..Listing::default()
    };
    if let Some(s) = &query.state {
        filter.states = vec![
            s.parse::<StateName>()
                .map_err(|e| ApiError::invalid("state", e.to_string()))?,
        ];
    }
    if let Some(p) = &query.profile {
        filter.profiles = Some(vec![p.clone()]);
    }
    if query.mine {
        filter.requester = Some(user.actor.user.clone());
    }
    let found = state.broker.list(&user.actor, filter).await?;
    let views = found
        .iter()
        .map(|s| views::request(s, &state.config))
        .collect();
    Ok(Json(views))
}

/// `GET /requests?to_approve`: the same queue as the web's approval page.
async fn approval_queue(
    state: &AppState,
    user: &crate::http::CurrentUser,
    query: &ListQuery,
) -> Result<Json<Vec<RequestView>>, ApiError> {
    if query.mine || query.state.is_some() || query.before.is_some() {
        return Err(ApiError::invalid(
            "to_approve",
            "to_approve is the approval queue: it takes profile, offset and limit only",
        ));
    }
    let limit = input::in_range("limit", query.limit, 100, 1, 500)?;
    let offset = input::in_range("offset", query.offset, 0, 0, i64::MAX)?;
    let found = state
        .broker
        .approval_queue(&user.actor, query.profile.as_deref(), offset, limit)
        .await?;
    Ok(Json(
        found
            .iter()
            .map(|s| views::request(s, &state.config))
            .collect(),
    ))
}

/// A request the caller may see; any other id is "not found", so ids cannot be probed.
async fn visible(state: &AppState, caller: &ApiUser, id: &str) -> Result<RequestRecord, ApiError> {
    let id = request_id(id)?;
    Ok(state.broker.request(&caller.user.actor, id).await?)
}

/// `GET /requests/{id}`.
#[utoipa::path(
    get,
    path = "/requests/{id}",
    summary = "One request",
    params(("id" = String, Path, description = "the request id")),
    responses(
        (status = 200, body = RequestView),
        (status = 401, description = "no valid token or session", body = ErrorBody),
        (status = 404, description = "no such request, or not one the caller may see", body = ErrorBody),
    )
)]
pub(super) async fn get(
    State(state): State<AppState>,
    caller: ApiUser,
    Path(id): Path<String>,
) -> Result<Json<RequestView>, ApiError> {
    let stored = visible(&state, &caller, &id).await?;
    Ok(Json(views::request(&stored, &state.config)))
}

/// Applies `action` to a request the caller may see.
async fn act(
    state: &AppState,
    caller: &ApiUser,
    id: &str,
    action: Action,
) -> Result<Json<RequestView>, ApiError> {
    let stored = visible(state, caller, id).await?;
    let next = state
        .broker
        .act(
            &caller.user.actor,
            stored.request.id,
            action,
            state.broker.now(),
        )
        .await?;
    Ok(Json(views::request(&next, &state.config)))
}

/// `POST /requests/{id}/approve`.
#[utoipa::path(
    post,
    path = "/requests/{id}/approve",
    summary = "Approve a request or its pending extension",
    params(("id" = String, Path, description = "the request id")),
    responses(
        (status = 200, description = "the request as it is now", body = RequestView),
        (status = 401, description = "no valid token or session", body = ErrorBody),
        (status = 403, description = "not allowed (says why); code step_up_required: the profile takes approvals only on the web, after a fresh sign-in", body = ErrorBody),
        (status = 404, description = "no such request, or not one the caller may see", body = ErrorBody),
        (status = 409, description = "not possible in the request's state", body = ErrorBody),
    )
)]
pub(super) async fn approve(
    State(state): State<AppState>,
    caller: ApiUser,
    Path(id): Path<String>,
) -> Result<Json<RequestView>, ApiError> {
    act(&state, &caller, &id, Action::Approve).await
}

/// `POST /requests/{id}/deny`.
#[utoipa::path(
    post,
    path = "/requests/{id}/deny",
    summary = "Deny a request or its pending extension",
    params(("id" = String, Path, description = "the request id")),
    request_body = CommentBody,
    responses(
        (status = 200, description = "the request as it is now", body = RequestView),
        (status = 401, description = "no valid token or session", body = ErrorBody),
        (status = 403, description = "not allowed (says why)", body = ErrorBody),
        (status = 404, description = "no such request, or not one the caller may see", body = ErrorBody),
        (status = 409, description = "not possible in the request's state", body = ErrorBody),
        (status = 422, description = "invalid input (names the field)", body = ErrorBody),
    )
)]
pub(super) async fn deny(
    State(state): State<AppState>,
    caller: ApiUser,
    Path(id): Path<String>,
    Body(body): Body<CommentBody>,
) -> Result<Json<RequestView>, ApiError> {
    act(
        &state,
        &caller,
        &id,
        Action::Deny {
            comment: body.comment,
        },
    )
    .await
}

/// `POST /requests/{id}/cancel`.
#[utoipa::path(
    post,
    path = "/requests/{id}/cancel",
    summary = "Withdraw a request that is not active yet",
    params(("id" = String, Path, description = "the request id")),
    responses(
        (status = 200, description = "the request as it is now", body = RequestView),
        (status = 401, description = "no valid token or session", body = ErrorBody),
        (status = 403, description = "not allowed (says why)", body = ErrorBody),
        (status = 404, description = "no such request, or not one the caller may see", body = ErrorBody),
        (status = 409, description = "not possible in the request's state", body = ErrorBody),
    )
)]
pub(super) async fn cancel(
    State(state): State<AppState>,
    caller: ApiUser,
    Path(id): Path<String>,
) -> Result<Json<RequestView>, ApiError> {
    act(&state, &caller, &id, Action::Cancel).await
}

/// `POST /requests/{id}/revoke`.
#[utoipa::path(
    post,
    path = "/requests/{id}/revoke",
    summary = "End access now",
    params(("id" = String, Path, description = "the request id")),
    request_body = CommentBody,
    responses(
        (status = 200, description = "the request as it is now", body = RequestView),
        (status = 401, description = "no valid token or session", body = ErrorBody),
        (status = 403, description = "not allowed (says why)", body = ErrorBody),
        (status = 404, description = "no such request, or not one the caller may see", body = ErrorBody),
        (status = 409, description = "not possible in the request's state", body = ErrorBody),
        (status = 422, description = "invalid input (names the field)", body = ErrorBody),
    )
)]
pub(super) async fn revoke(
    State(state): State<AppState>,
    caller: ApiUser,
    Path(id): Path<String>,
    Body(body): Body<CommentBody>,
) -> Result<Json<RequestView>, ApiError> {
    act(
        &state,
        &caller,
        &id,
        Action::Revoke {
            comment: body.comment,
        },
    )
    .await
}

/// `POST /requests/{id}/extend`.
#[utoipa::path(
    post,
    path = "/requests/{id}/extend",
    summary = "Ask for more time on an active grant",
    params(("id" = String, Path, description = "the request id")),
    request_body = ExtendBody,
    responses(
        (status = 200, description = "the request as it is now", body = RequestView),
        (status = 401, description = "no valid token or session", body = ErrorBody),
        (status = 403, description = "not allowed (says why)", body = ErrorBody),
        (status = 404, description = "no such request, or not one the caller may see", body = ErrorBody),
        (status = 409, description = "not possible in the request's state", body = ErrorBody),
        (status = 422, description = "invalid input (names the field)", body = ErrorBody),
    )
)]
pub(super) async fn extend(
    State(state): State<AppState>,
    caller: ApiUser,
    Path(id): Path<String>,
    Required(body): Required<ExtendBody>,
) -> Result<Json<RequestView>, ApiError> {
    let extra = duration("duration", &body.duration)?;
    act(
        &state,
        &caller,
        &id,
        Action::Extend {
            extra,
            reason: body.reason,
        },
    )
    .await
}
