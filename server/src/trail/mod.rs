//! The audit trail as stored: verifying the chain (`verify`), exporting it (`export`),
//! and anchoring it outside the database (`anchor`: the key in use recorded in the chain,
//! the head logged). The events and their hashing are `crate::audit`, which knows nothing
//! of the store; this module reads the store, so the two never import each other.

mod anchor;
mod export;
mod verify;

pub use crate::store::audit::hash_of;
pub use anchor::{log_head_every, record_key};
pub use export::{ExportError, ExportFormat, export};
pub use verify::{Broken, Verified, verify};
