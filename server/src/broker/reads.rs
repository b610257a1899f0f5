//! What the edges read, through the broker rather than the store, each on the core's
//! use cases (which check who asks): the names of the people a page mentions, a
//! request's audit timeline (for whoever may see the request), the audit trail's
//! pages, search and export (admins); and whether the database answers.

use std::collections::HashMap;
use std::io::Write;

pub use jitgate_core::app::AuditPage;
pub use jitgate_core::app::trail::SCAN_LIMIT as AUDIT_SCAN_LIMIT;

use chrono::{DateTime, Utc};

use super::{Broker, BrokerError};
use crate::audit::{AuditEvent, EventFilter};
use crate::aws::IdentityCenter;
use crate::domain::{Actor, RequestId, User, UserId};
use crate::trail::{ExportError, ExportFormat};

impl<I: IdentityCenter> Broker<I> {
    /// The display names of `ids` (user ids; jitgate itself needs none); someone who
    /// never signed in keeps their id.
    pub async fn display_names<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a str>,
    ) -> Result<HashMap<String, String>, BrokerError> {
        Ok(self.people.display_names(ids).await?)
    }

    /// The person jitgate knows as `user_id`, as their provider last described them.
    pub async fn person(&self, user_id: &str) -> Result<Option<User>, BrokerError> {
        Ok(self.people.person(&UserId::new(user_id)).await?)
    }

    /// The one person whose email is `email`; `None` for no one or several.
    pub async fn person_by_email(&self, email: &str) -> Result<Option<User>, BrokerError> {
        Ok(self.people.by_email(email).await?)
    }

    /// The audit events of request `id`, for someone who may see the request.
    pub async fn request_events(
        &self,
        actor: &Actor,
        id: RequestId,
    ) -> Result<Vec<AuditEvent>, BrokerError> {
        Ok(self.requests.timeline(actor, id).await?)
    }

    /// The trail's events after `after`, since `since`, at most `limit` (admins).
    pub async fn audit_events(
        &self,
        actor: &Actor,
        since: Option<DateTime<Utc>>,
        after: i64,
        limit: i64,
    ) -> Result<Vec<AuditEvent>, BrokerError> {
        Ok(self.trail.page(actor, since, after, limit).await?)
    }

    /// The events of request `id`, whoever may see it or not (admins).
    pub async fn audit_of_request(
        &self,
        actor: &Actor,
        id: &str,
    ) -> Result<Vec<AuditEvent>, BrokerError> {
        Ok(self.trail.of_request(actor, id).await?)
    }

    /// One page of an audit search (admins): up to `page_size` events matching
    /// `filter` after sequence number `after`.
    pub async fn search_audit(
        &self,
        actor: &Actor,
        filter: &EventFilter<'_>,
        after: i64,
        page_size: usize,
    ) -> Result<AuditPage, BrokerError> {
        Ok(self.trail.search(actor, filter, after, page_size).await?)
    }

    /// A way to write the trail since `since` as `format` (admins), to run where
    /// blocking is allowed: the writer may wait for a slow client.
    pub fn audit_export(
        &self,
        actor: &Actor,
        since: Option<DateTime<Utc>>,
        format: ExportFormat,
    ) -> Result<AuditExport, BrokerError> {
        self.trail.may_read(actor)?;
        Ok(AuditExport {
            db: self.db().clone(),
            since,
            format,
        })
    }

    /// Slack channel messages not showing their request's latest change yet, and how many
    /// of them failed at least once (the admin page; scheduler/slack.rs logs each failure).
    pub async fn slack_behind(&self) -> Result<(i64, i64), BrokerError> {
        Ok(crate::store::slack_posts::behind(self.db()).await?)
    }

    /// Whether the database answers (for `/readyz`).
    pub async fn database_ready(&self) -> Result<(), BrokerError> {
        Ok(self.db().ping().await?)
    }
}

/// An export of the trail an admin asked for.
pub struct AuditExport {
    db: crate::store::Db,
    since: Option<DateTime<Utc>>,
    format: ExportFormat,
}

impl AuditExport {
    /// Writes the events to `out`; returns how many.
    pub async fn write(self, out: &mut dyn Write) -> Result<u64, ExportError> {
        crate::trail::export(&self.db, self.since, self.format, out).await
    }
}
