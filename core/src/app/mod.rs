//! The application layer: what every edge (pages, the JSON API, the coming Slack
//! handler and CLI, the scheduler) asks of jitgate goes through here, so each reaches
//! the same rules. [`authz`] holds who may do what; [`requests`], [`credentials`],
//! [`people`] and [`trail`] the use cases, each write one transaction with its audit
//! event through the [`ports`] the server's adapters implement (docs/ARCHITECTURE.md).

pub mod authz;
pub mod credentials;
pub mod error;
mod events;
#[cfg(test)]
pub(crate) mod memory;
pub mod people;
pub mod ports;
pub mod requests;
pub mod slack_links;
pub mod targets;
pub mod trail;

pub use authz::{Actions, Rules};
pub use credentials::{Credentials, IssuedToken};
pub use error::AppError;
pub use people::{People, SignInCheck};
pub use requests::{Action, Requests, Via};
pub use slack_links::{PendingSlackLink, SlackLink, SlackLinkStatus, SlackLinks};
pub use targets::{Reachable, TargetList, Targets};
pub use trail::{AuditPage, Trail};
