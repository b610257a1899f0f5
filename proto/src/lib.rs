//! Wire types shared by the jitgate server's JSON API and the `jitgate` CLI. Only serde
//! here: no server logic, so the CLI builds without the server's dependencies.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where a request stands, as the API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum RequestState {
    Pending,
    Approved,
    Active,
    Ended,
    Denied,
    Cancelled,
    Lapsed,
    Failed,
}

/// An access request as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RequestView {
    pub id: String,
    pub requester: String,
    pub profile: String,
    pub account_id: String,
    pub os_user: String,
    pub run_as_mode: String,
    pub duration_secs: u64,
    pub reason: String,
    pub ticket: Option<String>,
    pub state: RequestState,
    pub created_at: DateTime<Utc>,
    pub activated_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// `expired` or `revoked` once ended.
    pub end_reason: Option<String>,
    /// Why provisioning failed, for `failed` requests.
    pub failure_reason: Option<String>,
    /// Who denied it, for `denied` requests.
    #[serde(default)]
    pub denied_by: Option<String>,
    /// The approver's comment, for `denied` requests.
    #[serde(default)]
    pub deny_comment: Option<String>,
    pub approvals: Vec<ApprovalView>,
    /// Approvals still needed (of the request, or of its pending extension).
    pub approvals_missing: u32,
    pub extension: Option<ExtensionView>,
}

/// One approver's approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApprovalView {
    pub by: String,
    pub at: DateTime<Utc>,
}

/// An extension of an active grant waiting for approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExtensionView {
    pub extra_secs: u64,
    pub reason: String,
    pub requested_at: DateTime<Utc>,
    pub approvals: Vec<ApprovalView>,
}

/// `POST /api/v1/requests`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewRequest {
    pub profile: String,
    pub account_id: String,
    pub os_user: String,
    /// How long, written like `30m`, `2h` or `1h30m`.
    pub duration: String,
    pub reason: String,
    #[serde(default)]
    pub ticket: Option<String>,
}

/// Body of `deny` and `revoke` (optional comment).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CommentBody {
    #[serde(default)]
    pub comment: Option<String>,
}

/// Body of `extend`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ExtendBody {
    /// Extra time, written like `30m` or `1h`.
    pub duration: String,
    pub reason: String,
}

/// `GET /api/v1/me`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MeView {
    pub id: String,
    pub user_name: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub groups: Vec<String>,
    pub is_admin: bool,
    /// Profiles this person may request.
    pub requester_of: Vec<String>,
    /// Profiles whose requests this person approves.
    pub approver_of: Vec<String>,
}

/// `GET /api/v1/profiles`: a profile and what the caller may do with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProfileView {
    pub name: String,
    pub description: String,
    pub accounts: Vec<String>,
    pub allowed_os_users: Vec<String>,
    pub run_as_mode: String,
    pub max_duration_secs: u64,
    pub approvals_required: u32,
    pub auto_approve: bool,
    pub may_request: bool,
    pub may_approve: bool,
}

/// `POST /api/v1/tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// What the token is for, e.g. "laptop CLI".
    pub name: String,
    /// Lifetime, written like `30d` or `12h` (default 30 days, at most 90).
    #[serde(default)]
    pub expires_in: Option<String>,
}

/// A token just created: the only time its secret is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenCreated {
    pub id: String,
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

/// A token as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenView {
    pub id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked: bool,
}

/// One audit event (`GET /api/v1/audit`, admins).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEventView {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub request_id: Option<String>,
    pub details: serde_json::Value,
    pub hash: String,
}

/// The body of every API error: `{"error": {"code", "message", "field"?}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong, and where when it is one input field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_omit_an_absent_field() {
        let body = ErrorBody {
            error: ErrorDetail {
                code: "invalid".into(),
                message: "duration must be more than zero".into(),
                field: None,
            },
        };
        let json = serde_json::to_string(&body).unwrap_or_default();
        assert_eq!(
            json,
            r#"{"error":{"code":"invalid","message":"duration must be more than zero"}}"#
        );
    }
}

/// `GET /api/v1/targets`: the instances the caller can reach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TargetsView {
    /// When the server last looked the instances up (it refreshes them in the background).
    pub looked_up_at: DateTime<Utc>,
    /// By Name tag, then instance id.
    pub targets: Vec<TargetView>,
}

/// An instance the caller can reach: through which profiles, and their grants on it now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TargetView {
    pub instance_id: String,
    /// The `Name` tag.
    pub name: Option<String>,
    pub account_id: String,
    pub region: String,
    /// Session Manager's ping status (`Online`, `ConnectionLost`, ...); absent when the
    /// agent never registered.
    pub ping_status: Option<String>,
    /// Profiles covering it that the caller may request (every one for an admin).
    pub profiles: Vec<String>,
    /// The caller's active grants that reach it now (request ids).
    pub grants: Vec<String>,
}

/// `GET /api/v1/requests/{id}/connection`: what `jitgate ssh` needs to connect through
/// the caller's active grant: the IAM Identity Center sign-in, the role to ask the portal
/// for, and the Session Manager document that enforces the OS user (session-document mode).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConnectionView {
    pub request_id: String,
    pub account_id: String,
    /// The permission set's name: the role name of `sso:GetRoleCredentials`.
    pub role_name: String,
    pub os_user: String,
    /// `StartSession`'s `DocumentName`; absent in principal-tag mode (AWS then runs the
    /// session as the `SSMSessionRunAs` tag's user).
    pub document_name: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub sso: SsoView,
}

/// The IAM Identity Center sign-in the AWS CLI would use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SsoView {
    /// The AWS access portal URL.
    pub start_url: String,
    /// The region of the sign-in (sso-oidc and the portal).
    pub region: String,
    /// The AWS CLI `sso-session` name, when the company uses one: it keys the token cache.
    pub session_name: Option<String>,
}
