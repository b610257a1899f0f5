//! jitgate's core, the inside of the one door (docs/ARCHITECTURE.md): the domain (the
//! request state machine and access policy, pure), the clock port, and the types every
//! edge shares. It has no web framework, database driver or AWS SDK among its
//! dependencies, so nothing here can reach past the ports.

#![warn(missing_docs)]

pub mod app;
pub mod audit;
pub mod clock;
pub mod domain;
pub mod parse;
