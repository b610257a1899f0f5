//! Identifiers: request ids, jitgate user ids, validated AWS account ids, and the IAM
//! Identity Center ids a grant lands on (the identity-store user, the permission set).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::error::DomainError;

/// The id of one access request; a random (v4) UUID minted when it is submitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RequestId(pub Uuid);

impl RequestId {
    /// Mints a fresh random request id (call it once, when a request is submitted).
    pub fn new_v4() -> Self {
        Self(Uuid::new_v4())
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for RequestId {
    type Err = DomainError;

    /// Parses a request id as written by `Display` (any UUID form `uuid` accepts).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s.trim())
            .map(Self)
            .map_err(|_| DomainError::InvalidRequestId {
                value: s.to_owned(),
            })
    }
}

/// The stable jitgate key of a person: the OIDC subject.
///
/// Email and display name can change; this does not, so approvals, requests
/// and audit events refer to people by it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(pub String);

impl UserId {
    /// Wraps an OIDC subject as a user id.
    pub fn new(subject: impl Into<String>) -> Self {
        Self(subject.into())
    }

    /// The subject as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An AWS account id: exactly 12 ASCII digits, leading zeros kept.
///
/// It is a string, not a number, because account ids may start with `0` and
/// AWS APIs take them as strings.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccountId(String);

impl AccountId {
    /// Validates `s` as an AWS account id; refuses anything but exactly 12 digits.
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(DomainError::InvalidAccountId {
                value: s.to_owned(),
            })
        }
    }

    /// The 12 digits as a string slice, as AWS APIs take them.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for AccountId {
    type Err = DomainError;

    /// Same as [`AccountId::parse`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for AccountId {
    type Error = DomainError;

    /// Validates an owned string; used by serde so a stored or configured
    /// account id is checked as it is read.
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<AccountId> for String {
    fn from(id: AccountId) -> Self {
        id.0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::domain::error::ErrorKind;

    #[test]
    fn account_id_accepts_twelve_digits_with_leading_zeros() {
        let id = AccountId::parse("012345678901").unwrap();
        assert_eq!(id.as_str(), "012345678901");
        assert_eq!(id.to_string(), "012345678901");
        assert_eq!(
            "999999999999".parse::<AccountId>().unwrap().as_str(),
            "999999999999"
        );
    }

    #[test]
    fn account_id_refuses_everything_else() {
        for bad in [
            "",
            "12345678901",
            "1234567890123",
            "12345678901a",
            " 123456789012",
            "123456789012 ",
            "1234-5678-9012",
            "١٢٣٤٥٦٧٨٩٠١٢", // Arabic-Indic digits are digits, but not ASCII ones
        ] {
            let err = AccountId::parse(bad).unwrap_err();
            assert_eq!(
                err,
                DomainError::InvalidAccountId {
                    value: bad.to_owned()
                }
            );
            assert_eq!(err.field(), Some("account"));
            assert_eq!(err.kind(), ErrorKind::Invalid);
            assert!(err.to_string().contains("12 digits"), "{err}");
        }
    }

    #[test]
    fn account_id_serde_is_a_validated_string() {
        let id = AccountId::parse("123456789012").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"123456789012\"");
        let back: AccountId = serde_json::from_str("\"123456789012\"").unwrap();
        assert_eq!(back, id);
        let err = serde_json::from_str::<AccountId>("\"12345\"").unwrap_err();
        assert!(err.to_string().contains("12 digits"), "{err}");
        assert!(serde_json::from_str::<AccountId>("123456789012").is_err());
    }

    #[test]
    fn request_id_displays_parses_and_serializes_as_the_uuid() {
        let id = RequestId::new_v4();
        assert_ne!(id, RequestId::new_v4());
        let text = id.to_string();
        assert_eq!(text, id.0.to_string());
        assert_eq!(text.parse::<RequestId>().unwrap(), id);
        assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{text}\""));
        let back: RequestId = serde_json::from_str(&format!("\"{text}\"")).unwrap();
        assert_eq!(back, id);
    }

    #[test]
    fn request_id_parse_error_names_the_value() {
        let err = "not-a-uuid".parse::<RequestId>().unwrap_err();
        assert_eq!(
            err,
            DomainError::InvalidRequestId {
                value: "not-a-uuid".into()
            }
        );
        assert!(err.to_string().contains("`not-a-uuid`"), "{err}");
        assert_eq!(err.kind(), ErrorKind::Invalid);
    }

    #[test]
    fn user_id_is_a_transparent_string() {
        let u = UserId::new("sub-123");
        assert_eq!(u.as_str(), "sub-123");
        assert_eq!(u.to_string(), "sub-123");
        assert_eq!(serde_json::to_string(&u).unwrap(), "\"sub-123\"");
        assert_eq!(serde_json::from_str::<UserId>("\"sub-123\"").unwrap(), u);
        assert!(UserId::new("a") < UserId::new("b"));
    }
}

/// An IAM Identity Center identity-store user id: whom a grant's assignment is for (the
/// user bound to the requester at their first request).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PrincipalId(pub String);

impl PrincipalId {
    /// Wraps an identity-store user id as IdC gave it.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for PrincipalId {
    fn from(id: &str) -> Self {
        Self(id.to_owned())
    }
}

impl From<String> for PrincipalId {
    fn from(id: String) -> Self {
        Self(id)
    }
}

impl fmt::Display for PrincipalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The ARN of an IAM Identity Center permission set: what a grant's assignment gives.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PermissionSetArn(pub String);

impl PermissionSetArn {
    /// Wraps a permission set ARN as IdC gave it.
    pub fn new(arn: impl Into<String>) -> Self {
        Self(arn.into())
    }

    /// The ARN as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for PermissionSetArn {
    fn from(id: &str) -> Self {
        Self(id.to_owned())
    }
}

impl From<String> for PermissionSetArn {
    fn from(id: String) -> Self {
        Self(id)
    }
}

impl fmt::Display for PermissionSetArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
