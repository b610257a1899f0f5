//! IAM Identity Center adapters: the [`IdentityCenter`] trait the scheduler and broker
//! need, and its implementation on the AWS SDK (`sdk`), with client-side limits
//! (`limits`) and retries (`retry`).

mod limits;
mod member;
mod retry;
mod sdk;

pub use limits::Limits;
pub use member::{FoundInstance, LiveSession, MemberAccounts, MemberClients};
pub use sdk::{IdcClient, IdcSettings, Instance};

use std::future::Future;
use std::sync::Arc;

use crate::domain::{IdcLookup, PermissionSetArn, PrincipalId};

/// One account assignment: a permission set on an account for a principal. The IdC
/// vocabulary the store keeps rows of (the store imports it from here, never the reverse).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct AssignmentKey {
    pub principal_id: PrincipalId,
    pub account_id: String,
    pub permission_set_arn: PermissionSetArn,
}

/// Why an AWS operation failed, after retries.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    /// The API refused or failed the call (after retries, for throttling and 5xx).
    #[error("{operation} failed: {code}: {message}")]
    Api {
        operation: &'static str,
        code: String,
        message: String,
        /// Throttling, 5xx or a transport failure: the call may have had its effect, and
        /// trying again later may work.
        transient: bool,
    },
    /// An assignment operation ended in FAILED.
    #[error("{operation} ended FAILED: {reason}")]
    OperationFailed {
        operation: &'static str,
        reason: String,
    },
    /// An assignment operation stayed IN_PROGRESS past the configured timeout.
    #[error("{operation} still in progress after {waited_secs}s")]
    Timeout {
        operation: &'static str,
        waited_secs: u64,
    },
    /// Something in jitgate's own configuration does not match AWS.
    #[error("{0}")]
    Setup(String),
}

impl AwsError {
    /// Whether AWS gave a definite answer that the call was refused, so nothing changed
    /// (a missing permission, a bad value); `false` for throttling, 5xx, transport errors
    /// and timeouts, after which the change may or may not have happened.
    pub fn is_refusal(&self) -> bool {
        match self {
            AwsError::Api { transient, .. } => !transient,
            AwsError::Setup(_) => true,
            AwsError::OperationFailed { .. } | AwsError::Timeout { .. } => false,
        }
    }

    /// What a requester may read about this failure of `what` (e.g. "set your OS user"):
    /// the kind of problem, never AWS's text (that goes to the audit trail for admins).
    pub fn plain_reason(&self, what: &str) -> String {
        match self {
            AwsError::Api { code, .. } if code.contains("AccessDenied") => {
                format!("jitgate's AWS role is not allowed to {what} (a missing IAM permission)")
            }
            AwsError::Api { code, .. } if code.contains("ResourceNotFound") => {
                format!("IAM Identity Center could not {what}: something it needs does not exist")
            }
            AwsError::OperationFailed { .. } => {
                format!("IAM Identity Center could not {what} (the operation failed)")
            }
            AwsError::Timeout { .. } => {
                format!("IAM Identity Center did not finish trying to {what} in time")
            }
            AwsError::Setup(_) => format!("jitgate's AWS set-up does not allow it to {what}"),
            AwsError::Api { .. } => format!("IAM Identity Center failed to {what}"),
        }
    }
}

/// The two asynchronous assignment writes of IdC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpKind {
    Create,
    Delete,
}

impl OpKind {
    /// The stored form (`assignments.op_kind`).
    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::Create => "create",
            OpKind::Delete => "delete",
        }
    }

    /// The API operation's name, for messages.
    pub fn operation(self) -> &'static str {
        match self {
            OpKind::Create => "CreateAccountAssignment",
            OpKind::Delete => "DeleteAccountAssignment",
        }
    }
}

/// Where an assignment operation stands (`DescribeAccountAssignment*Status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpStatus {
    InProgress,
    Succeeded,
    /// Ended FAILED, with IdC's reason.
    Failed(String),
}

/// An assignment operation IdC accepted: follow it with
/// [`IdentityCenter::operation_status`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartedOp {
    pub request_id: String,
    pub status: OpStatus,
}

/// Who holds an assignment: IdC assigns permission sets to users and to groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PrincipalKind {
    User,
    Group,
}

/// What jitgate needs from IAM Identity Center and its identity store.
///
/// Assignment writes are asynchronous in IdC: `start_*` sends one and returns at once;
/// the caller follows it with `operation_status` (see scheduler/converge), so no
/// person's work waits on another's slow operation.
pub trait IdentityCenter: Send + Sync + 'static {
    /// The identity-store user id `lookup` finds (by userName, email or external id);
    /// `None` when there is none, or the lookup is unusable.
    fn find_user(
        &self,
        lookup: &IdcLookup,
    ) -> impl Future<Output = Result<Option<PrincipalId>, AwsError>> + Send;

    /// Writes (or with `None` clears) the user attribute that carries `SSMSessionRunAs`.
    fn set_run_as(
        &self,
        principal_id: &PrincipalId,
        os_user: Option<&str>,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;

    /// Sends `CreateAccountAssignment`. Creating one that exists succeeds.
    fn start_create(
        &self,
        key: &AssignmentKey,
    ) -> impl Future<Output = Result<StartedOp, AwsError>> + Send;

    /// Sends `DeleteAccountAssignment` for the user or group `key.principal_id`; `None`
    /// when the assignment does not exist (a previous attempt got through), which counts
    /// as done.
    fn start_delete(
        &self,
        key: &AssignmentKey,
        kind: PrincipalKind,
    ) -> impl Future<Output = Result<Option<StartedOp>, AwsError>> + Send;

    /// The status of an operation started by this or any other process.
    fn operation_status(
        &self,
        kind: OpKind,
        request_id: &str,
    ) -> impl Future<Output = Result<OpStatus, AwsError>> + Send;

    /// The identity-store user name of `principal_id` (the session name in the roles IdC
    /// makes, so in the owner of every Session Manager session they open); `None` when
    /// the user no longer exists.
    fn user_name(
        &self,
        principal_id: &PrincipalId,
    ) -> impl Future<Output = Result<Option<String>, AwsError>> + Send;

    /// The name of the permission set `arn` (`DescribePermissionSet`); `None` when it no
    /// longer exists.
    fn permission_set_name(
        &self,
        arn: &str,
    ) -> impl Future<Output = Result<Option<String>, AwsError>> + Send;

    /// Every permission set of the instance: name → ARN.
    fn permission_sets(
        &self,
    ) -> impl Future<Output = Result<std::collections::HashMap<String, String>, AwsError>> + Send;

    /// The principals (users and groups) assigned `permission_set_arn` on `account_id`.
    fn assigned_principals(
        &self,
        account_id: &str,
        permission_set_arn: &str,
    ) -> impl Future<Output = Result<Vec<(PrincipalKind, String)>, AwsError>> + Send;
}

/// Deletes an assignment and follows the operation until it ends, for work outside the
/// converge loop (removing drift). `timeout` bounds the wait.
pub async fn delete_and_wait<I: IdentityCenter>(
    idc: &I,
    key: &AssignmentKey,
    kind: PrincipalKind,
    timeout: std::time::Duration,
) -> Result<(), AwsError> {
    let Some(op) = idc.start_delete(key, kind).await? else {
        return Ok(());
    };
    let started = std::time::Instant::now();
    let mut status = op.status;
    let mut delay = std::time::Duration::from_millis(200);
    loop {
        match status {
            OpStatus::Succeeded => return Ok(()),
            OpStatus::Failed(reason) => {
                return Err(AwsError::OperationFailed {
                    operation: OpKind::Delete.operation(),
                    reason,
                });
            }
            OpStatus::InProgress if started.elapsed() >= timeout => {
                return Err(AwsError::Timeout {
                    operation: OpKind::Delete.operation(),
                    waited_secs: started.elapsed().as_secs(),
                });
            }
            OpStatus::InProgress => {}
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 3 / 2).min(std::time::Duration::from_secs(2));
        status = idc.operation_status(OpKind::Delete, &op.request_id).await?;
    }
}

/// IAM Identity Center as the application layer's directory port.
pub struct IdcDirectory<I>(pub Arc<I>);

impl<I: IdentityCenter> jitgate_core::app::ports::Directory for IdcDirectory<I> {
    async fn find_user(
        &self,
        lookup: &IdcLookup,
    ) -> jitgate_core::app::ports::PortResult<Option<PrincipalId>> {
        self.0
            .find_user(lookup)
            .await
            .map_err(jitgate_core::app::ports::PortFailure::new)
    }
}
