//! The application layer: what every edge (pages, the JSON API, the coming Slack
//! handler and CLI, the scheduler) asks of jitgate goes through here, so each reaches
//! the same rules. Today it holds the authorization rules ([`authz`]); the use cases and
//! the store ports follow (docs/ARCHITECTURE.md).

pub mod authz;

pub use authz::{Actions, Rules};
