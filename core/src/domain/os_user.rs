//! The OS user a session runs as on the instance (`SSMSessionRunAs`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::error::DomainError;

/// Longest OS user name accepted: Linux `useradd` default limit.
const MAX_LEN: usize = 32;

/// A validated OS user name: matches `^[a-z_][a-z0-9_-]{0,31}$` and is never `root`.
///
/// The value ends up in an identity-store attribute or an SSM document name
/// and then in `runuser` on the instance, so it is checked strictly here
/// rather than trusted downstream.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OsUser(String);

impl OsUser {
    /// Validates `s` as an OS user name; the error says which rule failed.
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let invalid = |why: String| DomainError::InvalidOsUser {
            value: s.to_owned(),
            why,
        };
        let mut chars = s.chars();
        let Some(first) = chars.next() else {
            return Err(invalid(
                "it is empty; give a user name such as `deploy`".into(),
            ));
        };
        let len = s.chars().count();
        if len > MAX_LEN {
            return Err(invalid(format!(
                "it is {len} characters long; at most {MAX_LEN} are allowed"
            )));
        }
        if !(first.is_ascii_lowercase() || first == '_') {
            return Err(invalid(format!(
                "it must start with a lowercase letter a-z or `_`, not `{first}`"
            )));
        }
        if let Some(bad) =
            chars.find(|&c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-'))
        {
            return Err(invalid(format!(
                "it may contain only lowercase letters a-z, digits, `_` and `-`, not `{bad}`"
            )));
        }
        // A grant that lands as root would bypass every audit trail on the host.
        if s == "root" {
            return Err(invalid(
                "root is never granted; ask for an unprivileged user and use sudo on the instance"
                    .into(),
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// The user name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OsUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for OsUser {
    type Err = DomainError;

    /// Same as [`OsUser::parse`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for OsUser {
    type Error = DomainError;

    /// Validates an owned string; used by serde so stored and configured names are checked.
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<OsUser> for String {
    fn from(user: OsUser) -> Self {
        user.0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::domain::error::ErrorKind;

    fn why(value: &str) -> String {
        match OsUser::parse(value).unwrap_err() {
            DomainError::InvalidOsUser { value: v, why } => {
                assert_eq!(v, value);
                why
            }
            other => unreachable!("unexpected error {other:?}"),
        }
    }

    #[test]
    fn accepts_valid_names() {
        for ok in ["_svc", "deploy-1", "deploy", "a", "app_2", "_", "ec2-user"] {
            assert_eq!(OsUser::parse(ok).unwrap().as_str(), ok);
        }
        let max = "a".repeat(32);
        assert_eq!(OsUser::parse(&max).unwrap().to_string(), max);
    }

    #[test]
    fn refuses_root() {
        assert!(why("root").contains("root is never granted"));
        // Only the exact name is special; names merely containing it are fine.
        assert!(OsUser::parse("rooted").is_ok());
        assert!(OsUser::parse("_root").is_ok());
    }

    #[test]
    fn refuses_uppercase() {
        assert!(why("Deploy").contains("start with a lowercase letter"));
        assert!(why("dePloy").contains("not `P`"));
    }

    #[test]
    fn refuses_leading_digit_or_dash() {
        assert!(why("1deploy").contains("not `1`"));
        assert!(why("-deploy").contains("not `-`"));
    }

    #[test]
    fn refuses_33_characters() {
        let long = "a".repeat(33);
        assert!(why(&long).contains("33 characters"));
    }

    #[test]
    fn refuses_empty_and_odd_characters() {
        assert!(why("").contains("empty"));
        assert!(why("de ploy").contains("not ` `"));
        assert!(why("dep.loy").contains("not `.`"));
        assert!(why("dépl").contains("not `é`"));
        assert!(why("a$").contains("not `$`"));
    }

    #[test]
    fn error_names_field_value_and_kind() {
        let err = OsUser::parse("Root").unwrap_err();
        assert_eq!(err.field(), Some("os_user"));
        assert_eq!(err.kind(), ErrorKind::Invalid);
        assert!(err.to_string().contains("`Root`"), "{err}");
    }

    #[test]
    fn serde_is_a_validated_string() {
        let user = OsUser::parse("deploy").unwrap();
        assert_eq!(serde_json::to_string(&user).unwrap(), "\"deploy\"");
        assert_eq!(serde_json::from_str::<OsUser>("\"deploy\"").unwrap(), user);
        let err = serde_json::from_str::<OsUser>("\"root\"").unwrap_err();
        assert!(err.to_string().contains("root"), "{err}");
        assert_eq!("deploy".parse::<OsUser>().unwrap(), user);
    }
}
