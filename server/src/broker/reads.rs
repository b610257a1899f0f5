//! What the edges read, through the broker rather than the store: the names of the
//! people a page mentions, a request's audit timeline (for whoever may see the
//! request), the audit trail's search and export (admins), and whether the database
//! answers. Each checks who asks here, so no edge reaches the store on its own.

use std::collections::HashMap;
use std::io::Write;

use chrono::{DateTime, Utc};

use super::{Broker, BrokerError};
use crate::audit::{AuditEvent, EventFilter, SYSTEM_ACTOR};
use crate::aws::IdentityCenter;
use crate::domain::{Actor, RequestId, User};
use crate::store::{audit, users};
use crate::trail::{ExportError, ExportFormat};

/// Events one search page looks at, at most, while looking for matches: a rare match
/// cannot make a page read the whole trail; the next page continues the scan.
pub const AUDIT_SCAN_LIMIT: i64 = 20_000;

/// What one page of an audit search found.
#[derive(Debug, Default)]
pub struct AuditPage {
    /// The matching events, oldest first.
    pub events: Vec<AuditEvent>,
    /// Where the next page starts (`after`), when there may be more.
    pub next: Option<i64>,
    /// The page stopped looking before it was full (see [`AUDIT_SCAN_LIMIT`]).
    pub scan_stopped: bool,
}

impl<I: IdentityCenter> Broker<I> {
    /// The display names of `ids` (user ids; jitgate itself needs none); someone who
    /// never signed in keeps their id.
    pub async fn display_names<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a str>,
    ) -> Result<HashMap<String, String>, BrokerError> {
        let mut names = HashMap::new();
        for id in ids {
            if id == SYSTEM_ACTOR || names.contains_key(id) {
                continue;
            }
            if let Some(user) = users::get(self.db(), id).await? {
                names.insert(id.to_owned(), user.name.unwrap_or(user.user_name));
            }
        }
        Ok(names)
    }

    /// The person jitgate knows as `user_id`, as their provider last described them.
    pub async fn person(&self, user_id: &str) -> Result<Option<User>, BrokerError> {
        Ok(users::get(self.db(), user_id).await?)
    }

    /// The audit events of request `id`, for someone who may see the request.
    pub async fn request_events(
        &self,
        actor: &Actor,
        id: RequestId,
    ) -> Result<Vec<AuditEvent>, BrokerError> {
        self.request(actor, id).await?;
        Ok(audit::for_request(self.db(), &id.to_string()).await?)
    }

    /// The trail's events after `after`, since `since`, at most `limit` (admins).
    pub async fn audit_events(
        &self,
        actor: &Actor,
        since: Option<DateTime<Utc>>,
        after: i64,
        limit: i64,
    ) -> Result<Vec<AuditEvent>, BrokerError> {
        self.admin_only(actor)?;
        let since = since.map_or(i64::MIN, |t| t.timestamp_millis());
        Ok(audit::page_since(self.db(), since, after, limit).await?)
    }

    /// The events of request `id`, whoever may see it or not (admins).
    pub async fn audit_of_request(
        &self,
        actor: &Actor,
        id: &str,
    ) -> Result<Vec<AuditEvent>, BrokerError> {
        self.admin_only(actor)?;
        Ok(audit::for_request(self.db(), id).await?)
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
        self.admin_only(actor)?;
        let db = self.db();
        let mut after = after;
        let upto = if filter.request_id.is_some() {
            // Indexed: no range needed.
            i64::MAX
        } else {
            if filter.since_millis > i64::MIN {
                // Start at the first recent event rather than walk the older ones.
                match audit::first_seq_since(db, filter.since_millis).await? {
                    Some(first) => after = after.max(first - 1),
                    None => return Ok(AuditPage::default()),
                }
            }
            after.saturating_add(AUDIT_SCAN_LIMIT)
        };
        let limit = i64::try_from(page_size).unwrap_or(i64::MAX);
        let events = audit::search(db, filter, after, upto, limit).await?;
        if events.len() == page_size {
            let next = events.last().map(|e| e.seq);
            return Ok(AuditPage {
                events,
                next,
                scan_stopped: false,
            });
        }
        // Less than a page in the range looked at: more may follow it.
        let (head_seq, _) = audit::head(db).await?;
        let more = upto < head_seq;
        Ok(AuditPage {
            events,
            next: more.then_some(upto),
            scan_stopped: more,
        })
    }

    /// A way to write the trail since `since` as `format` (admins), to run where
    /// blocking is allowed: the writer may wait for a slow client.
    pub fn audit_export(
        &self,
        actor: &Actor,
        since: Option<DateTime<Utc>>,
        format: ExportFormat,
    ) -> Result<AuditExport, BrokerError> {
        self.admin_only(actor)?;
        Ok(AuditExport {
            db: self.db().clone(),
            since,
            format,
        })
    }

    /// Whether the database answers (for `/readyz`).
    pub async fn database_ready(&self) -> Result<(), BrokerError> {
        Ok(self.db().ping().await?)
    }

    fn admin_only(&self, actor: &Actor) -> Result<(), BrokerError> {
        if actor.is_admin {
            Ok(())
        } else {
            Err(BrokerError::Forbidden(format!(
                "the audit trail is for administrators (groups: {})",
                self.config().auth.admin_groups.join(", ")
            )))
        }
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
