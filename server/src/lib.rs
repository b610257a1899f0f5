//! jitgate server library: the adapters and edges behind the `jitgate-server` binary.
//!
//! Dependencies point inward: everything here depends on the core crate
//! (`jitgate-core`: the domain, the clock), never the reverse; `broker` ties a domain
//! transition to its transaction and audit event. See docs/ARCHITECTURE.md.

pub mod audit;
/// The domain lives in the core crate; this path keeps `crate::domain` for the adapters.
pub use jitgate_core::domain;
pub mod aws;
pub mod broker;
pub mod config;
pub mod http;
pub mod oidc;
pub mod scheduler;
pub mod slack;
pub mod store;
pub mod trail;
