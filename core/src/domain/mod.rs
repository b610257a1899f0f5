//! The domain: jitgate's request state machine and access policy as pure code.
//!
//! A [`Request`] moves `pending -> approved -> active -> ended` (or to `denied`,
//! `cancelled`, `lapsed`, `failed`) through consuming transition functions that
//! take the acting [`Actor`], the profile's [`Policy`] and the current time
//! `now` as parameters and return either the next `Request` or a
//! [`DomainError`] saying what policy refused and how to fix it. Nothing here
//! does I/O, is async, or reads the clock or the environment: the store runs
//! each transition inside a transaction, the scheduler supplies `now`, and the
//! HTTP layer maps [`error::ErrorKind`] to a status code. Validated value types
//! ([`AccountId`], [`OsUser`]) make malformed input unrepresentable past the
//! boundary.

pub mod error;
pub mod identity;
pub mod ids;
pub mod os_user;
pub mod policy;
pub mod record;
pub mod request;
pub mod slack_link;
pub mod target;
pub mod user;

pub use error::{DomainError, ErrorKind};
pub use identity::IdcLookup;
pub use ids::{AccountId, PermissionSetArn, PrincipalId, RequestId, UserId};
pub use os_user::OsUser;
pub use policy::{Actor, Policy, RunAsMode};
pub use record::RequestRecord;
pub use request::{
    Approval, Draft, EndReason, Extension, Request, RequestState, StateName, visible_text,
};
pub use slack_link::{PendingSlackLink, SlackLink};
pub use target::{Target, TargetScope};
pub use user::{ApiToken, CliLogin, RefreshToken, User};
