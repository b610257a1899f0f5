//! What pages show of requests, people and times, computed server-side (there is no
//! JavaScript to do it in the browser). Times are shown in UTC, the zone they are
//! stored in, so what two people see can be compared.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::broker::BrokerError;
use crate::config::Config;
use crate::domain::RequestRecord;
use crate::domain::{EndReason, RequestState};
use crate::http::AppState;

/// `2026-11-05 14:02 UTC`.
pub fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// A duration as people write it: `2h`, `1h 30m`.
pub fn duration(d: Duration) -> String {
    // Whole seconds: sub-second parts are noise on a page.
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

/// What is left of a grant ending at `expires_at`: `2h 14m left`, `1d 3h left`.
pub fn time_left(expires_at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = expires_at.signed_duration_since(now).num_seconds();
    if secs <= 0 {
        return "ending now".into();
    }
    if secs < 60 {
        return "less than a minute left".into();
    }
    let (days, hours, minutes) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    let text = match (days, hours, minutes) {
        (0, 0, m) => format!("{m}m"),
        (0, h, 0) => format!("{h}h"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, 0, _) => format!("{d}d"),
        (d, h, _) => format!("{d}d {h}h"),
    };
    format!("{text} left")
}

/// How long ago `t` was: `just now`, `5m ago`, `3h ago`, `2d ago`.
pub fn ago(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = now.signed_duration_since(t).num_seconds().max(0);
    match secs {
        0..60 => "just now".into(),
        60..3600 => format!("{}m ago", secs / 60),
        3600..86_400 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86_400),
    }
}

/// Display names of the people a page mentions, loaded once per page.
#[derive(Debug, Default)]
pub struct People {
    names: HashMap<String, String>,
}

impl People {
    /// Loads the names of `ids` (user ids; the system actor needs none).
    pub async fn load<'a>(
        state: &AppState,
        ids: impl IntoIterator<Item = &'a str>,
    ) -> Result<People, BrokerError> {
        let names = state.broker.display_names(ids).await?;
        Ok(People { names })
    }

    /// The person's name, or their id when they never signed in to this jitgate.
    pub fn name(&self, id: &str) -> String {
        self.names.get(id).cloned().unwrap_or_else(|| id.to_owned())
    }
}

/// The user ids a list of requests mentions (requesters, deciders).
pub fn people_of(rows: &[RequestRecord]) -> Vec<&str> {
    let mut ids = Vec::new();
    for stored in rows {
        let r = &stored.request;
        ids.push(r.requester.as_str());
        match &r.state {
            RequestState::Denied { by, .. } | RequestState::Cancelled { by, .. } => {
                ids.push(by.as_str())
            }
            RequestState::Ended {
                why: EndReason::Revoked { by, .. },
                ..
            } => ids.push(by.as_str()),
            _ => {}
        }
    }
    ids
}

/// One request as a line of a list.
#[derive(Debug, Clone)]
pub struct RequestRow {
    pub id: String,
    pub state: &'static str,
    pub profile: String,
    pub account: String,
    pub os_user: String,
    pub duration: String,
    pub requester: String,
    pub requester_id: String,
    pub reason: String,
    pub ticket: Option<String>,
    pub created: String,
    pub created_ago: String,
    /// Where it stands, in words: `2h 14m left`, `waiting for 1 approval`, ...
    pub status: String,
    /// An extension waiting for approval: `+1h: reason`.
    pub extension: Option<String>,
}

impl RequestRow {
    /// The row of `stored` as of `now`.
    pub fn of(
        stored: &RequestRecord,
        people: &People,
        config: &Config,
        now: DateTime<Utc>,
    ) -> Self {
        let r = &stored.request;
        RequestRow {
            id: r.id.to_string(),
            state: r.state.name().as_str(),
            profile: r.profile.clone(),
            account: r.account.to_string(),
            os_user: r.os_user.to_string(),
            duration: duration(r.duration),
            requester: people.name(r.requester.as_str()),
            requester_id: r.requester.as_str().to_owned(),
            reason: r.reason.clone(),
            ticket: r.ticket.clone(),
            created: when(r.created_at),
            created_ago: ago(r.created_at, now),
            status: status(stored, people, config, now),
            extension: r
                .extension
                .as_ref()
                .map(|e| format!("+{}: {}", duration(e.extra), e.reason)),
        }
    }

    /// Rows of `list`, with the names of everyone they mention.
    pub async fn all(
        state: &AppState,
        list: &[RequestRecord],
        now: DateTime<Utc>,
    ) -> Result<Vec<RequestRow>, BrokerError> {
        let people = People::load(state, people_of(list)).await?;
        Ok(list
            .iter()
            .map(|s| RequestRow::of(s, &people, &state.config, now))
            .collect())
    }
}

/// Where a request stands, in words.
pub fn status(
    stored: &RequestRecord,
    people: &People,
    config: &Config,
    now: DateTime<Utc>,
) -> String {
    let r = &stored.request;
    match &r.state {
        RequestState::Pending => match config.profile(&r.profile) {
            Some(profile) => match r.approvals_missing(&profile.policy()) {
                1 => "waiting for 1 approval".into(),
                n => format!("waiting for {n} approvals"),
            },
            None => "waiting for approval".into(),
        },
        RequestState::Approved { .. } => "approved; access is being set up in AWS".into(),
        RequestState::Active { expires_at, .. } => time_left(*expires_at, now),
        RequestState::Ended {
            ended_at,
            why: EndReason::Expired,
            ..
        } => format!("expired {}", when(*ended_at)),
        RequestState::Ended {
            ended_at,
            why: EndReason::Revoked { by, .. },
            ..
        } => format!(
            "revoked by {} {}",
            people.name(by.as_str()),
            when(*ended_at)
        ),
        RequestState::Denied { by, at, .. } => {
            format!("denied by {} {}", people.name(by.as_str()), when(*at))
        }
        RequestState::Cancelled { by, at } => {
            format!("cancelled by {} {}", people.name(by.as_str()), when(*at))
        }
        RequestState::Lapsed { at } => format!("nobody answered in time ({})", when(*at)),
        RequestState::Failed { at, .. } => format!("setting up access failed {}", when(*at)),
    }
}

/// A duration typed into a form (`2h`, `90m`, `1h30m`), with a message saying how to
/// write one when it is not.
pub fn parse_duration(field: &'static str, text: &str) -> Result<Duration, super::WebError> {
    jitgate_core::parse::duration(text).map_err(|e| super::WebError::invalid(field, e.0))
}

/// A form's optional text: `None` when left blank.
pub fn non_blank(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap_or_default()
    }

    #[test]
    fn time_left_reads_like_a_person_would_say_it() {
        let now = at(0);
        let cases = [
            (2 * 3600 + 14 * 60 + 30, "2h 14m left"),
            (2 * 3600, "2h left"),
            (59 * 60 + 59, "59m left"),
            (30, "less than a minute left"),
            (0, "ending now"),
            (-5, "ending now"),
            (27 * 3600 + 5 * 60, "1d 3h left"),
            (48 * 3600, "2d left"),
        ];
        for (secs, want) in cases {
            assert_eq!(time_left(at(secs), now), want, "{secs}s");
        }
    }

    #[test]
    fn ago_rounds_down_to_the_largest_unit() {
        let now = at(100_000);
        assert_eq!(ago(at(100_000 - 10), now), "just now");
        assert_eq!(ago(at(100_000 - 150), now), "2m ago");
        assert_eq!(ago(at(100_000 - 7200), now), "2h ago");
        assert_eq!(ago(at(0), now), "1d ago");
    }

    #[test]
    fn durations_parse_or_say_how_to_write_them() {
        assert_eq!(
            parse_duration("duration", " 2h ").ok(),
            Some(Duration::from_secs(7200))
        );
        assert_eq!(
            parse_duration("duration", "1h30m").ok(),
            Some(Duration::from_secs(5400))
        );
        let e = parse_duration("duration", "soon").err();
        let text = e.as_ref().map(ToString::to_string).unwrap_or_default();
        assert!(text.contains("`soon` is not a duration"), "{text}");
        assert_eq!(e.and_then(|e| e.field()), Some("duration"));
        assert!(parse_duration("duration", "2").is_err(), "a unit is needed");
        assert!(parse_duration("duration", "").is_err());
    }

    #[test]
    fn durations_show_whole_units() {
        assert_eq!(duration(Duration::from_secs(5400)), "1h 30m");
        assert_eq!(duration(Duration::from_millis(7_200_300)), "2h");
    }
}
