//! Slack, as an adapter: verifying that an interaction comes from Slack
//! (`signature`) and the Web API calls jitgate makes (`api`). The interaction handler
//! itself is an edge (`http/slack.rs`) and reaches the same use cases as the web.

pub mod api;
pub mod messages;
pub mod signature;

pub use api::{SlackApi, SlackError};
