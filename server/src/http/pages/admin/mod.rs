//! Admin pages (members of `[auth] admin_groups`): every request with filters, the
//! audit trail searched and exported. Anyone else gets a 403 naming the admin groups.

pub(super) mod audit;
pub(super) mod export;
pub(super) mod requests;

use chrono::{DateTime, Utc};

use crate::http::{AppState, CurrentUser, WebError};

/// Refuses anyone who is not an admin, naming the groups that make one.
fn require_admin(state: &AppState, user: &CurrentUser) -> Result<(), WebError> {
    if user.actor.is_admin {
        return Ok(());
    }
    Err(user.missing_role(
        state.broker.rules(),
        "admin",
        state.config.auth.admin_groups.clone(),
    ))
}

/// A `since` typed into a search: a date (`2026-11-01`, midnight UTC), an RFC 3339
/// time (`2026-11-01T09:30:00Z`), or a duration back from `now` (`24h`, `7d`).
/// Blank means "from the start".
fn parse_since(text: &str, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, WebError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    jitgate_core::parse::since(text, now)
        .map(Some)
        .map_err(|e| WebError::invalid("since", e.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_dates_times_and_durations_back() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        assert_eq!(parse_since(" ", now).ok(), Some(None));
        let day = parse_since("2026-11-01", now).ok().flatten();
        assert_eq!(
            day.map(|t| t.to_rfc3339()),
            Some("2026-11-01T00:00:00+00:00".into())
        );
        let time = parse_since("2026-11-01T09:30:00+01:00", now).ok().flatten();
        assert_eq!(
            time.map(|t| t.to_rfc3339()),
            Some("2026-11-01T08:30:00+00:00".into())
        );
        let back = parse_since("24h", now).ok().flatten();
        assert_eq!(back.map(|t| now - t), Some(chrono::TimeDelta::hours(24)));
        let e = parse_since("yesterday-ish", now).err();
        assert_eq!(e.as_ref().and_then(WebError::field), Some("since"));
    }
}
