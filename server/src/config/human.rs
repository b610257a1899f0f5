//! Config value types that read and print the way people write them.

use std::fmt;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration written as `30m`, `8h`, `1h30m` or `90s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(Duration);

impl HumanDuration {
    pub const fn from_secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }

    pub fn get(self) -> Duration {
        self.0
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        jitgate_core::parse::duration(&text)
            .map(HumanDuration)
            .map_err(|e| serde::de::Error::custom(e.0))
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A value that must never be printed or logged: it serializes with any password
/// replaced, and its `Debug` shows nothing.
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    pub fn new(value: &str) -> Self {
        Self(SecretString::from(value.to_owned()))
    }

    /// The real value, for the one place that needs it (a connect call).
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// Safe to print: a URL with its password masked, anything else (a client
    /// secret, a key) masked whole.
    pub fn redacted(&self) -> String {
        let value = self.expose();
        if value.contains("://") {
            redact_url_password(value)
        } else if value.is_empty() {
            String::new()
        } else {
            "***".into()
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({})", self.redacted())
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| Secret::new(&s))
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.redacted())
    }
}

/// Masks the password of a `scheme://user:password@host/...` URL and any `password=`
/// query parameter; other strings pass as is.
fn redact_url_password(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let base = match base.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((userinfo, host)) => match userinfo.split_once(':') {
                Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
                None => base.to_owned(),
            },
            None => base.to_owned(),
        },
        None => base.to_owned(),
    };
    let Some(query) = query else {
        return base;
    };
    let params: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k.to_ascii_lowercase().contains("password") => format!("{k}=***"),
            _ => kv.to_owned(),
        })
        .collect();
    format!("{base}?{}", params.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked() {
        assert_eq!(
            redact_url_password("postgres://jit:s3cr3t@db:5432/jitgate"),
            "postgres://jit:***@db:5432/jitgate"
        );
        assert_eq!(
            redact_url_password("sqlite://jitgate.db"),
            "sqlite://jitgate.db"
        );
        assert_eq!(
            redact_url_password("postgres://jit@db/x"),
            "postgres://jit@db/x"
        );
        assert_eq!(
            redact_url_password("postgres://db/x?user=jit&password=s3cr3t&sslmode=require"),
            "postgres://db/x?user=jit&password=***&sslmode=require"
        );
    }

    #[test]
    fn plain_secrets_are_masked_whole() {
        assert_eq!(Secret::new("client-s3cr3t").redacted(), "***");
    }

    #[test]
    fn debug_never_shows_the_password() {
        let s = Secret::new("postgres://a:hunter2@h/d");
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn durations_read_as_people_write_them() {
        let d: HumanDuration =
            serde_json::from_str("\"1h30m\"").unwrap_or(HumanDuration(Duration::ZERO));
        assert_eq!(d.get(), Duration::from_secs(5400));
        let err = serde_json::from_str::<HumanDuration>("\"soon\"")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("write it like"), "{err}");
    }
}
