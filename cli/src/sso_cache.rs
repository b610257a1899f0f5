//! The AWS CLI's IAM Identity Center token cache, shared with `aws sso login`:
//! `~/.aws/sso/cache/<sha1 of the sso-session name, or of the start URL>.json` holding
//! `startUrl, region, accessToken, expiresAt` and, when the token can be refreshed,
//! `clientId, clientSecret, registrationExpiresAt, refreshToken` (botocore's
//! `SSOTokenLoader` reads and writes the same file). Files are written whole with mode
//! 0600. A refresh token works once, so refreshing happens under [`RefreshLock`].

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

use crate::config::write_private;

/// One cached sign-in, in the AWS CLI's field names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SsoToken {
    pub start_url: String,
    pub region: String,
    pub access_token: String,
    #[serde(with = "aws_time")]
    pub expires_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "aws_time::optional"
    )]
    pub registration_expires_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

impl SsoToken {
    /// The client registration and refresh token, while the registration is valid.
    pub fn refreshable(&self, now: DateTime<Utc>) -> Option<(&str, &str, &str)> {
        let valid = self.registration_expires_at.is_none_or(|at| at > now);
        match (&self.client_id, &self.client_secret, &self.refresh_token) {
            (Some(id), Some(secret), Some(refresh)) if valid => Some((id, secret, refresh)),
            _ => None,
        }
    }
}

/// Which cache entry: the AWS CLI keys it by the sso-session name when there is one.
#[derive(Debug, Clone)]
pub struct CacheKey {
    pub start_url: String,
    pub session_name: Option<String>,
}

impl CacheKey {
    fn file_name(&self) -> String {
        let key = self.session_name.as_deref().unwrap_or(&self.start_url);
        let digest = Sha1::digest(key.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("{hex}.json")
    }
}

/// `~/.aws/sso/cache`.
pub struct SsoCache {
    dir: PathBuf,
}

impl SsoCache {
    /// The AWS CLI's cache directory under `$HOME`.
    pub fn locate() -> Result<SsoCache> {
        let home = std::env::var_os("HOME")
            .filter(|v| !v.is_empty())
            .context("HOME is not set: the AWS CLI's sign-in cache lives under it")?;
        Ok(SsoCache {
            dir: PathBuf::from(home).join(".aws").join("sso").join("cache"),
        })
    }

    pub fn path_of(&self, key: &CacheKey) -> PathBuf {
        self.dir.join(key.file_name())
    }

    /// The cached token of `key`, if any and if it is for the same start URL. A file that
    /// cannot be read as a token counts as none: a new sign-in replaces it.
    pub fn load(&self, key: &CacheKey) -> Result<Option<SsoToken>> {
        let path = self.path_of(key);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        Ok(serde_json::from_str::<SsoToken>(&text)
            .ok()
            .filter(|t| t.start_url == key.start_url))
    }

    pub fn save(&self, key: &CacheKey, token: &SsoToken) -> Result<()> {
        let text = serde_json::to_vec(token)?;
        write_private(&self.dir, &self.path_of(key), &text)
    }

    /// Holds off every other `jitgate` refreshing or signing in to `key` until dropped.
    pub fn lock(&self, key: &CacheKey) -> Result<RefreshLock> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let path = self.dir.join(format!("{}.jitgate-lock", key.file_name()));
        RefreshLock::take(&path)
    }
}

/// An exclusive advisory lock on a file, released when dropped (or when the process
/// dies: the kernel drops it with the descriptor).
pub struct RefreshLock {
    _file: File,
}

impl RefreshLock {
    pub fn take(path: &Path) -> Result<RefreshLock> {
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        file.lock()
            .with_context(|| format!("locking {}", path.display()))?;
        Ok(RefreshLock { _file: file })
    }
}

/// Timestamps as the AWS CLI writes them (`2026-12-03T08:00:00Z`); older versions wrote
/// `2026-12-03T08:00:00UTC`, also read.
mod aws_time {
    use super::*;
    use serde::{Deserializer, Serializer};

    const WRITTEN: &str = "%Y-%m-%dT%H:%M:%SZ";

    pub fn parse(text: &str) -> Option<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .ok()
            .or_else(|| {
                NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%SUTC")
                    .ok()
                    .map(|t| t.and_utc())
            })
    }

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.format(WRITTEN).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).ok_or_else(|| serde::de::Error::custom(format!("bad time `{text}`")))
    }

    pub mod optional {
        use super::*;

        pub fn serialize<S: Serializer>(
            t: &Option<DateTime<Utc>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => super::serialize(t, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<DateTime<Utc>>, D::Error> {
            let text = Option::<String>::deserialize(d)?;
            Ok(text.as_deref().and_then(parse))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_like_the_aws_cli() {
        // hashlib.sha1(key).hexdigest(), as botocore computes it.
        let legacy = CacheKey {
            start_url: "https://my-sso-portal.awsapps.com/start".into(),
            session_name: None,
        };
        assert_eq!(
            legacy.file_name(),
            "c7aaaf71fcc8777ae2475525ed049d39fe16c484.json"
        );
        let session = CacheKey {
            session_name: Some("my-sso".into()),
            ..legacy
        };
        assert_eq!(
            session.file_name(),
            "0ad374308c5a4e22f723adf10145eafad7c4031c.json"
        );
    }

    #[test]
    fn both_time_formats_read_and_the_aws_cli_s_written() {
        let t = aws_time::parse("2026-12-03T08:00:00Z").unwrap();
        assert_eq!(aws_time::parse("2026-12-03T08:00:00UTC"), Some(t));
        let token = SsoToken {
            start_url: "https://x.awsapps.com/start".into(),
            region: "eu-west-1".into(),
            access_token: "a".into(),
            expires_at: t,
            client_id: None,
            client_secret: None,
            registration_expires_at: None,
            refresh_token: None,
        };
        let json = serde_json::to_value(&token).unwrap();
        assert_eq!(json["expiresAt"], "2026-12-03T08:00:00Z");
        assert!(json.get("refreshToken").is_none());
        assert_eq!(serde_json::from_value::<SsoToken>(json).unwrap(), token);
    }
}
