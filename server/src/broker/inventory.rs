//! The instances in the profiles' scope, as last looked up by the scheduler
//! (scheduler/inventory.rs): kept in memory (a cache: every replica looks up its own),
//! read by the targets use case through the core's `Inventory` port.

use std::sync::RwLock;

use chrono::{DateTime, Utc};
use jitgate_core::app::ports::{Inventory, InventorySnapshot};

use crate::domain::Target;

/// The last lookup, if any finished.
#[derive(Default)]
pub struct InventoryCell(RwLock<Option<InventorySnapshot>>);

impl InventoryCell {
    /// Records a finished lookup.
    pub fn set(&self, targets: Vec<Target>, looked_up_at: DateTime<Utc>) {
        if let Ok(mut slot) = self.0.write() {
            *slot = Some(InventorySnapshot {
                targets: std::sync::Arc::new(targets),
                looked_up_at,
            });
        }
    }
}

impl Inventory for InventoryCell {
    fn snapshot(&self) -> Option<InventorySnapshot> {
        self.0.read().ok().and_then(|s| s.clone())
    }
}
