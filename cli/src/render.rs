//! Requests and times in words, for the terminal.

use chrono::{DateTime, Utc};
use jitgate_proto::{RequestState, RequestView};

/// A time, in UTC, to the minute.
pub fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// Seconds as `2h`, `1h30m`, `45m` or `30s`.
pub fn duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    match (h, m, s) {
        (0, 0, s) => format!("{s}s"),
        (0, m, _) => format!("{m}m"),
        (h, 0, _) => format!("{h}h"),
        (h, m, _) => format!("{h}h{m}m"),
    }
}

fn state(s: RequestState) -> &'static str {
    match s {
        RequestState::Pending => "pending",
        RequestState::Approved => "approved",
        RequestState::Active => "active",
        RequestState::Ended => "ended",
        RequestState::Denied => "denied",
        RequestState::Cancelled => "cancelled",
        RequestState::Lapsed => "lapsed",
        RequestState::Failed => "failed",
    }
}

/// "1 of 2 approvals: bob" and the like, while a request waits.
pub fn progress(r: &RequestView) -> String {
    let by: Vec<&str> = r.approvals.iter().map(|a| a.by.as_str()).collect();
    match r.state {
        RequestState::Approved => "approved; setting up access in AWS".to_owned(),
        _ => {
            let have = by.len() as u32;
            let need = have + r.approvals_missing;
            if by.is_empty() {
                format!("waiting for approval (0 of {need})")
            } else {
                format!("waiting for approval ({have} of {need}: {})", by.join(", "))
            }
        }
    }
}

/// One line about a request.
pub fn summary(r: &RequestView) -> String {
    let base = format!(
        "{}  {} {} as {} in {}, {}",
        r.id,
        state(r.state),
        r.profile,
        r.os_user,
        r.account_id,
        duration(r.duration_secs)
    );
    match (r.state, r.expires_at) {
        (RequestState::Active, Some(end)) => format!("{base}; until {}", when(end)),
        (RequestState::Pending | RequestState::Approved, _) => format!("{base}; {}", progress(r)),
        _ => base,
    }
}

/// Why a waited-for request will not become active.
pub fn why_not_active(r: &RequestView) -> String {
    let by = r
        .denied_by
        .as_ref()
        .map(|who| format!(" by {who}"))
        .unwrap_or_default();
    let reason = r
        .failure_reason
        .clone()
        .or_else(|| r.deny_comment.clone())
        .or_else(|| r.end_reason.clone())
        .map(|why| format!(": {why}"))
        .unwrap_or_default();
    format!("request {} was {}{by}{reason}", r.id, state(r.state))
}

/// A titled list of requests, with the time left on active ones.
pub fn section(title: &str, list: &[RequestView], now: DateTime<Utc>) {
    println!("{title}:");
    if list.is_empty() {
        println!("  none");
    }
    for r in list {
        let left = match (r.state, r.expires_at) {
            (RequestState::Active, Some(end)) if end > now => {
                let secs = u64::try_from((end - now).num_seconds()).unwrap_or(0);
                format!("  ({} left)", duration(secs))
            }
            _ => String::new(),
        };
        let who = if title.contains("approval") {
            format!("{}: ", r.requester)
        } else {
            String::new()
        };
        println!("  {who}{}{left}", summary(r));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(duration(30), "30s");
        assert_eq!(duration(45 * 60), "45m");
        assert_eq!(duration(2 * 3600), "2h");
        assert_eq!(duration(5400), "1h30m");
    }
}
