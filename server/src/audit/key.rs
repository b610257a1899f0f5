//! The keys of the audit chain. Each event's hash is an HMAC-SHA256 under a key that
//! is given to the server from outside (the environment or a secret store) and never
//! written to the database: someone who can write the database can change rows and
//! recompute plain hashes, but cannot recompute keyed ones. Events name their key by
//! an id derived from it, so a rotated-out key can still verify its events.

use std::fmt;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// The fewest characters a key may have: 32 random characters (`openssl rand -hex 32`
/// gives 64) put it beyond guessing.
pub const MIN_KEY_CHARS: usize = 32;

/// One key, known by its id.
#[derive(Clone)]
pub struct AuditKey {
    id: String,
    secret: Arc<SecretString>,
}

impl AuditKey {
    pub fn new(secret: &str) -> Self {
        let digest = Sha256::new()
            .chain_update(b"jitgate audit key id\0")
            .chain_update(secret.as_bytes())
            .finalize();
        Self {
            id: hex::encode(digest.iter().take(8).copied().collect::<Vec<u8>>()),
            secret: Arc::new(SecretString::from(secret.to_owned())),
        }
    }

    /// What events record to name this key; reveals nothing of the key.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length, so this cannot fail.
        <Hmac<Sha256> as Mac>::new_from_slice(self.secret.expose_secret().as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"))
    }
}

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuditKey({})", self.id)
    }
}

/// The key new events are signed with and the earlier ones still needed to verify.
#[derive(Debug, Clone, Default)]
pub struct AuditKeys {
    current: Option<AuditKey>,
    previous: Vec<AuditKey>,
}

impl AuditKeys {
    /// `previous` is a comma-separated list (keys are hex or base64, without commas).
    pub fn new(current: Option<&str>, previous: Option<&str>) -> Self {
        Self {
            // Trimmed like the previous keys: a secret mounted from a file often ends in a
            // newline, and the key id must not change when the key moves to the old ones.
            current: current
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(AuditKey::new),
            previous: previous
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(AuditKey::new)
                .collect(),
        }
    }

    pub fn current(&self) -> Option<&AuditKey> {
        self.current.as_ref()
    }

    /// The key with this id, current or previous.
    pub fn find(&self, id: &str) -> Option<&AuditKey> {
        self.current
            .iter()
            .chain(&self.previous)
            .find(|key| key.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_keys_without_showing_them() {
        let key = AuditKey::new("0123456789abcdef0123456789abcdef");
        assert_eq!(key.id().len(), 16);
        assert!(!"0123456789abcdef0123456789abcdef".contains(key.id()));
        assert_eq!(
            key.id(),
            AuditKey::new("0123456789abcdef0123456789abcdef").id()
        );
        assert_ne!(
            key.id(),
            AuditKey::new("fedcba9876543210fedcba9876543210").id()
        );
        assert!(!format!("{key:?}").contains("0123456789abcdef"));
    }

    #[test]
    fn previous_keys_are_found_by_id() {
        let keys = AuditKeys::new(Some("new-key"), Some(" old-one , older-one ,"));
        let old = AuditKey::new("old-one");
        assert_eq!(keys.find(old.id()).map(AuditKey::id), Some(old.id()));
        assert!(keys.find(AuditKey::new("older-one").id()).is_some());
        assert!(keys.find(AuditKey::new("never-given").id()).is_none());
        assert_eq!(
            keys.current().map(AuditKey::id),
            Some(AuditKey::new("new-key").id())
        );
    }
}
