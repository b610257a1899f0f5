//! jitgate server library: the broker engine behind the `jitgate-server` binary.
//!
//! Dependencies point inward: `store`, `aws` and `scheduler` depend on `domain`, never
//! the reverse; `broker` ties a domain transition to its transaction and audit event.

pub mod audit;
pub mod aws;
pub mod broker;
pub mod config;
pub mod domain;
pub mod http;
pub mod oidc;
pub mod scheduler;
pub mod store;
