//! The one reading of durations and of "since" times that people type, for the config,
//! the web forms, the API and the admin commands alike, each with a message that says
//! how to write one.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};

/// Why a text is not a duration or a time: a message that says how to write one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

/// A duration written like `30m`, `2h`, `1h30m` or `90s` (humantime's units).
pub fn duration(text: &str) -> Result<Duration, ParseError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ParseError(
            "give a duration, e.g. 30m, 2h or 1h30m".to_owned(),
        ));
    }
    humantime::parse_duration(text).map_err(|_| {
        ParseError(format!(
            "`{text}` is not a duration: write it like 30m, 2h or 1h30m"
        ))
    })
}

/// A point in the past: a UTC time (`2026-11-01T09:30:00Z`), a date (`2026-11-01`,
/// midnight UTC) or how long before `now` (`24h`, `7d`).
pub fn since(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, ParseError> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Some(midnight) = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
    {
        return Ok(midnight.and_utc());
    }
    humantime::parse_duration(text)
        .ok()
        .and_then(|back| TimeDelta::from_std(back).ok())
        .and_then(|back| now.checked_sub_signed(back))
        .ok_or_else(|| {
            ParseError(format!(
                "`{text}` is not a time: write a date (2026-11-01), a UTC time \
                 (2026-11-01T09:30:00Z) or how long ago (24h, 7d)"
            ))
        })
}

/// The file of a `sqlite:` URL: `sqlite:///abs/path.db`, `sqlite://rel.db`,
/// `sqlite:rel.db`, each optionally followed by `?options` (ignored). `None` for a URL
/// of another scheme.
pub fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    Some(rest.split('?').next().unwrap_or(rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_people_write_them() {
        assert_eq!(duration(" 2h "), Ok(Duration::from_secs(7200)));
        assert_eq!(duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        for bad in ["", "soon", "2"] {
            let e = duration(bad).unwrap_err();
            assert!(e.0.contains("30m"), "{bad}: {e}");
        }
    }

    #[test]
    fn since_takes_times_dates_and_ages() {
        let now = DateTime::parse_from_rfc3339("2026-12-02T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            since("2026-11-01T09:30:00Z", now).unwrap().to_rfc3339(),
            "2026-11-01T09:30:00+00:00"
        );
        assert_eq!(
            since("2026-11-01", now).unwrap().to_rfc3339(),
            "2026-11-01T00:00:00+00:00"
        );
        assert_eq!(since("24h", now).unwrap(), now - TimeDelta::hours(24));
        let e = since("yesterday-ish", now).unwrap_err();
        assert!(e.0.contains("2026-11-01"), "{e}");
    }
}
