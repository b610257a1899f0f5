//! A request with what jitgate resolved for it in IAM Identity Center: the type the
//! application hands to every edge (pages, API, scheduler) and the store keeps.

use chrono::{DateTime, Utc};

use super::ids::{PermissionSetArn, PrincipalId};
use super::request::Request;

/// A request and where its grant lands in AWS.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestRecord {
    /// The request itself (state machine, approvals, times).
    pub request: Request,
    /// The identity-store user the requester is bound to.
    pub principal_id: PrincipalId,
    /// The permission set the grant assigns.
    pub permission_set_arn: PermissionSetArn,
    /// When AWS stopped carrying anything for this ended request.
    pub settled_at: Option<DateTime<Utc>>,
}
