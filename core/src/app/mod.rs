//! The application layer: what every edge (pages, the JSON API, the coming Slack
//! handler and CLI, the scheduler) asks of jitgate goes through here, so each reaches
//! the same rules. [`authz`] holds who may do what; [`requests`] the use cases that
//! change a request, each one transaction through the [`ports`] the server's adapters
//! implement (docs/ARCHITECTURE.md).

pub mod authz;
pub mod error;
mod events;
pub mod ports;
pub mod requests;

pub use authz::{Actions, Rules};
pub use error::AppError;
pub use requests::{Action, Requests};
