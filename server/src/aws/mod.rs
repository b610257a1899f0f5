//! IAM Identity Center adapters: the [`IdentityCenter`] trait the scheduler and broker
//! need, and its implementation on the AWS SDK (`sdk`), with client-side limits
//! (`limits`) and retries (`retry`).

mod limits;
mod retry;
mod sdk;

pub use limits::Limits;
pub use sdk::{IdcClient, IdcSettings};

use std::future::Future;

pub use crate::store::assignments::AssignmentKey;

/// Why an AWS operation failed, after retries.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    /// The API refused or failed the call (after retries, for throttling and 5xx).
    #[error("{operation} failed: {code}: {message}")]
    Api {
        operation: &'static str,
        code: String,
        message: String,
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

/// What jitgate needs from IAM Identity Center and its identity store.
pub trait IdentityCenter: Send + Sync + 'static {
    /// The identity-store user id for a person: by `userName`, then by primary email.
    fn find_user(
        &self,
        user_name: &str,
        email: Option<&str>,
    ) -> impl Future<Output = Result<Option<String>, AwsError>> + Send;

    /// Writes (or with `None` clears) the user attribute that carries `SSMSessionRunAs`.
    fn set_run_as(
        &self,
        principal_id: &str,
        os_user: Option<&str>,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;

    /// Creates an account assignment and waits until it has SUCCEEDED. Creating one that
    /// exists succeeds.
    fn create_assignment(
        &self,
        key: &AssignmentKey,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;

    /// Deletes an account assignment and waits until it has SUCCEEDED. Deleting one that
    /// does not exist succeeds.
    fn delete_assignment(
        &self,
        key: &AssignmentKey,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;

    /// The user principals assigned `permission_set_arn` on `account_id`.
    fn assigned_users(
        &self,
        account_id: &str,
        permission_set_arn: &str,
    ) -> impl Future<Output = Result<Vec<String>, AwsError>> + Send;
}
