//! `GET /api/v1/requests/{id}/connection`: what `jitgate ssh` needs to connect through
//! the caller's own active grant. The core decides who may connect (the grantee, while
//! the grant is active); this edge adds the IAM Identity Center sign-in from `[aws]`.

use axum::Json;
use axum::extract::{Path, State};
use jitgate_proto::{ConnectionView, ErrorBody, SsoView};

use super::auth::ApiUser;
use super::error::ApiError;
use crate::domain::RunAsMode;
use crate::http::{AppState, WebError};

/// The Session Manager document of an OS user in session-document mode; the operator
/// creates one per OS user (docs/OPERATIONS.md "Enforcing the OS user").
pub fn session_document(os_user: &str) -> String {
    format!("JitGate-RunAs-{os_user}")
}

/// `GET /requests/{id}/connection`.
#[utoipa::path(
    get,
    path = "/requests/{id}/connection",
    summary = "How to connect through the caller's active grant (for jitgate ssh)",
    params(("id" = String, Path, description = "the request id")),
    responses(
        (status = 200, body = ConnectionView),
        (status = 401, description = "no valid token or session", body = ErrorBody),
        (status = 403, description = "not the caller's grant", body = ErrorBody),
        (status = 404, description = "no such request, or not one the caller may see", body = ErrorBody),
        (status = 409, description = "the grant is not active", body = ErrorBody),
        (status = 503, description = "the server has no IAM Identity Center start URL configured", body = ErrorBody),
    )
)]
pub(super) async fn get(
    State(state): State<AppState>,
    caller: ApiUser,
    Path(id): Path<String>,
) -> Result<Json<ConnectionView>, ApiError> {
    let id = id
        .parse()
        .map_err(|_| ApiError::not_found(format!("no request {id}")))?;
    let aws = &state.config.aws;
    let Some(start_url) = aws.sso_start_url.clone() else {
        return Err(ApiError(WebError::Unavailable(
            "this jitgate server does not know the IAM Identity Center start URL; an \
             administrator must set [aws] sso_start_url"
                .into(),
        )));
    };
    let (record, role_name) = state.broker.connection(&caller.user.actor, id).await?;
    let request = record.request;
    let Some(role_name) = role_name else {
        return Err(ApiError(WebError::Unavailable(format!(
            "the grant's permission set {} no longer exists in IAM Identity Center",
            record.permission_set_arn.as_str()
        ))));
    };
    let expires_at = match request.state {
        crate::domain::RequestState::Active { expires_at, .. } => expires_at,
        // `connection` answers active grants only.
        _ => return Err(ApiError::not_found(format!("no active grant {id}"))),
    };
    Ok(Json(ConnectionView {
        request_id: request.id.to_string(),
        account_id: request.account.to_string(),
        role_name,
        document_name: match request.run_as_mode {
            RunAsMode::SessionDocument => Some(session_document(request.os_user.as_str())),
            RunAsMode::PrincipalTag => None,
        },
        os_user: request.os_user.to_string(),
        expires_at,
        sso: SsoView {
            start_url,
            region: aws.sso_region.clone().unwrap_or_else(|| aws.region.clone()),
            session_name: aws.sso_session.clone(),
        },
    }))
}
