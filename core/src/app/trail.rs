//! The audit trail as use cases: a request's timeline for whoever may see the request
//! (`Requests::timeline`), and for admins the trail's pages, its search and its export.

use chrono::{DateTime, Utc};

use crate::audit::{AuditEvent, EventFilter};
use crate::domain::Actor;

use super::error::AppError;
use super::ports::{PortFailure, Store};

/// Events one search page looks at, at most, while looking for matches: a rare match
/// cannot make a page read the whole trail; the next page continues the scan.
pub const SCAN_LIMIT: i64 = 20_000;

fn store_err(e: PortFailure) -> AppError {
    AppError::Store(e)
}

/// What one page of an audit search found.
#[derive(Debug, Default)]
pub struct AuditPage {
    /// The matching events, oldest first.
    pub events: Vec<AuditEvent>,
    /// Where the next page starts (`after`), when there may be more.
    pub next: Option<i64>,
    /// The page stopped looking before it was full (see [`SCAN_LIMIT`]).
    pub scan_stopped: bool,
}

/// The admins' use cases over the audit trail.
#[derive(Clone)]
pub struct Trail<S> {
    store: S,
    admin_groups: Vec<String>,
}

impl<S: Store> Trail<S> {
    /// The use cases over `store`; `admin_groups` are named to whoever is refused.
    pub fn new(store: S, admin_groups: Vec<String>) -> Self {
        Self {
            store,
            admin_groups,
        }
    }

    /// Whether `actor` may read the whole trail (and export it): admins only.
    pub fn may_read(&self, actor: &Actor) -> Result<(), AppError> {
        if actor.is_admin {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
                "the audit trail is for administrators (groups: {})",
                self.admin_groups.join(", ")
            )))
        }
    }

    /// The events of request `id` (admins: whoever may see the request or not).
    pub async fn of_request(&self, actor: &Actor, id: &str) -> Result<Vec<AuditEvent>, AppError> {
        self.may_read(actor)?;
        self.store.events_of_request(id).await.map_err(store_err)
    }

    /// The events since `since` with `seq > after`, at most `limit` (admins).
    pub async fn page(
        &self,
        actor: &Actor,
        since: Option<DateTime<Utc>>,
        after: i64,
        limit: i64,
    ) -> Result<Vec<AuditEvent>, AppError> {
        self.may_read(actor)?;
        let since = since.map_or(i64::MIN, |t| t.timestamp_millis());
        self.store
            .events_since(since, after, limit)
            .await
            .map_err(store_err)
    }

    /// One page of a search (admins): up to `page_size` events matching `filter` after
    /// sequence number `after`. Without a request id (which is indexed) a page looks at
    /// most [`SCAN_LIMIT`] events, and says where to continue.
    pub async fn search(
        &self,
        actor: &Actor,
        filter: &EventFilter<'_>,
        after: i64,
        page_size: usize,
    ) -> Result<AuditPage, AppError> {
        self.may_read(actor)?;
        let mut after = after;
        let upto = if filter.request_id.is_some() {
            i64::MAX
        } else {
            if filter.since_millis > i64::MIN {
                // Start at the first recent event rather than walk the older ones.
                match self
                    .store
                    .first_event_since(filter.since_millis)
                    .await
                    .map_err(store_err)?
                {
                    Some(first) => after = after.max(first - 1),
                    None => return Ok(AuditPage::default()),
                }
            }
            after.saturating_add(SCAN_LIMIT)
        };
        let limit = i64::try_from(page_size).unwrap_or(i64::MAX);
        let events = self
            .store
            .search_events(filter, after, upto, limit)
            .await
            .map_err(store_err)?;
        if events.len() == page_size {
            let next = events.last().map(|e| e.seq);
            return Ok(AuditPage {
                events,
                next,
                scan_stopped: false,
            });
        }
        // Less than a page in the range looked at: more may follow it.
        let last = self.store.last_event().await.map_err(store_err)?;
        let more = upto < last;
        Ok(AuditPage {
            events,
            next: more.then_some(upto),
            scan_stopped: more,
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;
    use crate::app::memory::MemStore;
    use crate::audit::{Action, NewEvent};
    use crate::domain::UserId;

    fn actor(is_admin: bool) -> Actor {
        Actor {
            user: UserId::new(if is_admin { "root" } else { "alice" }),
            groups: Vec::new(),
            is_admin,
            approves_all: false,
            authenticated_at: None,
        }
    }

    fn store_with(events: usize) -> MemStore {
        let store = MemStore::default();
        let start = DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap();
        for i in 0..events {
            let (action, actor) = if i % 10 == 0 {
                (Action::RequestApproved, "bob")
            } else {
                (Action::SignedIn, "alice")
            };
            let at = start + TimeDelta::seconds(i as i64);
            store
                .0
                .lock()
                .unwrap()
                .events
                .push(NewEvent::new(action, actor, at));
        }
        store
    }

    #[tokio::test]
    async fn only_admins_read_the_trail_and_are_told_who_may() {
        let trail = Trail::new(store_with(5), vec!["jitgate-admins".into()]);
        let e = trail.page(&actor(false), None, 0, 10).await.unwrap_err();
        assert!(e.to_string().contains("jitgate-admins"), "{e}");
        assert!(trail.of_request(&actor(false), "r").await.is_err());
        assert!(trail.may_read(&actor(false)).is_err());
        assert_eq!(
            trail.page(&actor(true), None, 0, 10).await.unwrap().len(),
            5
        );
    }

    #[tokio::test]
    async fn a_search_pages_through_every_match_however_rare() {
        // 45,000 events, one in ten a match: more than one scan window per page.
        let trail = Trail::new(store_with(45_000), Vec::new());
        let filter = EventFilter {
            actor: Some("bob"),
            since_millis: i64::MIN,
            ..EventFilter::default()
        };
        let mut after = 0;
        let mut found = 0;
        let mut pages = 0;
        loop {
            let page = trail
                .search(&actor(true), &filter, after, 1000)
                .await
                .unwrap();
            assert!(page.events.iter().all(|e| e.actor == "bob"));
            found += page.events.len();
            pages += 1;
            match page.next {
                Some(next) => after = next,
                None => break,
            }
            assert!(pages < 100, "the search does not end");
        }
        assert_eq!(found, 4_500, "every match, once");
    }
}
