//! Slack: verifying that an interaction comes from Slack (`signature`), the Web API
//! calls jitgate makes (`api`), its messages (`messages`), the interactions themselves
//! (`interactions`, an edge that reaches the same use cases as the web) and the Socket
//! Mode connection that brings them (`socket`; HTTP brings them through
//! `http/slack.rs`).

pub mod api;
pub mod interactions;
pub mod messages;
pub mod signature;
pub mod socket;

pub use api::{SlackApi, SlackError};
pub use interactions::Interactions;
