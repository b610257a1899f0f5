//! Why the application layer refused or could not do something. Each edge maps these
//! to its own answer through one table (the server's `http/error.rs`).

use crate::domain::{DomainError, RequestId};

use super::ports::{NoPermissionSet, PortFailure};

/// Why a use case refused or could not go on.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// What policy or the request's state refused.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// The request does not exist (or the person may not know it does).
    #[error("no request {0}")]
    NotFound(RequestId),
    /// A profile name that is not configured.
    #[error("no profile `{name}`; configured: {}", .known.join(", "))]
    UnknownProfile {
        /// The name asked for.
        name: String,
        /// The configured profiles.
        known: Vec<String>,
    },
    /// The person has no IAM Identity Center user to grant access to.
    #[error(
        "no IAM Identity Center user found for you ({detail}): ask an administrator to \
         create one, or to check how jitgate matches people ([auth] idc_match)"
    )]
    NoIdcUser {
        /// What was looked for, or why nothing could be.
        detail: String,
    },
    /// The person is bound to one IdC user and their sign-in now points to another.
    #[error(
        "your jitgate account is bound to IAM Identity Center user {bound}, but your \
         sign-in now points to {found}; an administrator must re-bind your account \
         (jitgate-server identity rebind --user {user}) before you can go on"
    )]
    IdcBindingMismatch {
        /// The person's jitgate user id.
        user: String,
        /// The IdC user bound to them.
        bound: String,
        /// The IdC user their sign-in finds now.
        found: String,
    },
    /// The IdC user the sign-in points to is bound to someone else.
    #[error(
        "the IAM Identity Center user your sign-in points to ({found}) belongs to another \
         jitgate user; ask an administrator"
    )]
    IdcUserTaken {
        /// The IdC user found.
        found: String,
    },
    /// The person has as many open requests as they may.
    #[error(
        "you have {open} open requests (pending, approved or active), the most one person may \
         have; cancel or end some before asking again"
    )]
    TooManyOpen {
        /// How many they have open.
        open: i64,
    },
    /// No permission set can be named for the grant now (IdC not reached yet, or the
    /// profile's permission set does not exist there).
    #[error(transparent)]
    NoPermissionSet(#[from] NoPermissionSet),
    /// A per-person limit is reached (says which).
    #[error("{0}")]
    Limit(String),
    /// Nothing of that name the person may know of (says what).
    #[error("{0}")]
    NoSuch(String),
    /// The person may not do this (says why).
    #[error("{0}")]
    Forbidden(String),
    /// Something the answer needs is not there yet (says what, and what to do).
    #[error("{0}")]
    NotReady(&'static str),
    /// Approving for this profile needs a fresh sign-in on the web.
    #[error(
        "approving for profile {profile} needs a fresh sign-in: approve on the request's web \
         page, where jitgate asks you to sign in again"
    )]
    StepUpRequired {
        /// The profile with `step_up`.
        profile: String,
    },
    /// The store failed.
    #[error("storage: {0}")]
    Store(PortFailure),
    /// IAM Identity Center failed.
    #[error("IAM Identity Center: {0}")]
    Directory(PortFailure),
}
