//! Slack's request signatures (https://api.slack.com/authentication/verifying-requests-from-slack):
//! `X-Slack-Signature: v0=HEX(HMAC-SHA256(signing secret, "v0:" + timestamp + ":" + raw
//! body))` with `X-Slack-Request-Timestamp`. Checked before anything in the body is read;
//! a timestamp more than five minutes off is refused, so a recorded request cannot be
//! replayed later.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How far a request's timestamp may be from now.
pub const MAX_SKEW_SECS: i64 = 5 * 60;

/// Why a request is not accepted as Slack's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("missing X-Slack-Signature or X-Slack-Request-Timestamp")]
    Missing,
    #[error("X-Slack-Request-Timestamp is not a number of seconds")]
    BadTimestamp,
    #[error("the request is more than five minutes old (or from the future)")]
    Stale,
    #[error("the signature does not match the body")]
    Mismatch,
}

/// Checks that `body` was signed by Slack with `secret` at `timestamp`, near `now`.
pub fn verify(
    secret: &str,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), Refused> {
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return Err(Refused::Missing);
    };
    let at: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| Refused::BadTimestamp)?;
    if now.timestamp().abs_diff(at) > MAX_SKEW_SECS.unsigned_abs() {
        return Err(Refused::Stale);
    }
    let given = signature
        .strip_prefix("v0=")
        .and_then(|h| hex::decode(h).ok())
        .ok_or(Refused::Mismatch)?;
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|_| Refused::Mismatch)?;
    mac.update(b"v0:");
    mac.update(timestamp.trim().as_bytes());
    mac.update(b":");
    mac.update(body);
    // Constant time: the comparison does not say how much of a guess was right.
    mac.verify_slice(&given).map_err(|_| Refused::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example of Slack's documentation (verifying requests from Slack).
    const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const TIMESTAMP: &str = "1531420618";
    const BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const SIGNATURE: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    #[test]
    fn slacks_documented_example_verifies() {
        let now = at(1_531_420_618 + 10);
        assert_eq!(
            verify(
                SECRET,
                Some(TIMESTAMP),
                Some(SIGNATURE),
                BODY.as_bytes(),
                now
            ),
            Ok(())
        );
    }

    #[test]
    fn anything_else_is_refused() {
        let now = at(1_531_420_618);
        let check =
            |secret, ts, sig, body: &str, now| verify(secret, ts, sig, body.as_bytes(), now);
        assert_eq!(
            check("other", Some(TIMESTAMP), Some(SIGNATURE), BODY, now),
            Err(Refused::Mismatch)
        );
        let altered = BODY.replace("roadrunner", "coyote");
        assert_eq!(
            check(SECRET, Some(TIMESTAMP), Some(SIGNATURE), &altered, now),
            Err(Refused::Mismatch)
        );
        assert_eq!(
            check(SECRET, None, Some(SIGNATURE), BODY, now),
            Err(Refused::Missing)
        );
        assert_eq!(
            check(SECRET, Some(TIMESTAMP), None, BODY, now),
            Err(Refused::Missing)
        );
        assert_eq!(
            check(SECRET, Some("soon"), Some(SIGNATURE), BODY, now),
            Err(Refused::BadTimestamp)
        );
        assert_eq!(
            check(SECRET, Some(TIMESTAMP), Some("v1=00"), BODY, now),
            Err(Refused::Mismatch)
        );
        assert_eq!(
            check(
                SECRET,
                Some("-9223372036854775808"),
                Some(SIGNATURE),
                BODY,
                now
            ),
            Err(Refused::Stale),
            "an extreme timestamp is refused, not an overflow"
        );
        let later = at(1_531_420_618 + 6 * 60);
        assert_eq!(
            check(SECRET, Some(TIMESTAMP), Some(SIGNATURE), BODY, later),
            Err(Refused::Stale)
        );
        let earlier = at(1_531_420_618 - 6 * 60);
        assert_eq!(
            check(SECRET, Some(TIMESTAMP), Some(SIGNATURE), BODY, earlier),
            Err(Refused::Stale)
        );
    }
}
