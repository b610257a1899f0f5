//! A person's Slack account as jitgate knows it: linked, or a code on its way to the
//! member they named (the use cases: `app/slack_links.rs`).

use chrono::{DateTime, Utc};

/// A person's Slack account, as linked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlackLink {
    /// The Slack member id (`U...`).
    pub member: String,
    /// When the code was typed back.
    pub linked_at: DateTime<Utc>,
}

/// A code sent and not typed back yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingSlackLink {
    /// The member the code went to.
    pub member: String,
    /// When the code stops working (and a lockout ends).
    pub expires_at: DateTime<Utc>,
    /// Wrong codes typed so far.
    pub tries: i64,
}
