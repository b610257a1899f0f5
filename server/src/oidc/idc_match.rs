//! Which IAM Identity Center user a signed-in person is, decided from the claims of
//! their sign-in by the rule the operator chose (`[auth] idc_match`). Only claims the
//! operator trusts count: an email only when the provider says it is verified, a named
//! claim only when configured, or the provider's subject as SCIM recorded it. A claim a
//! person can set at the provider (often `preferred_username`) never counts by default.

use serde_json::{Map, Value};

use crate::config::{AuthConfig, IdcMatch};
use crate::domain::IdcLookup;

/// The lookup for a sign-in by `subject` whose ID token (and userinfo) held `claims`.
pub fn lookup(auth: &AuthConfig, subject: &str, claims: &Map<String, Value>) -> IdcLookup {
    match auth.idc_match {
        IdcMatch::VerifiedEmail => {
            let email = claims.get("email").and_then(Value::as_str);
            let verified = claims.get("email_verified").and_then(verified_flag);
            match (email, verified) {
                (Some(email), Some(true)) if !email.trim().is_empty() => IdcLookup::Email {
                    email: email.trim().to_owned(),
                },
                (None, _) => unusable("the identity provider sent no email"),
                _ => unusable(
                    "the identity provider does not say your email is verified, so it \
                     cannot pick your AWS identity; verify it at the provider, or ask an \
                     admin to match people another way ([auth] idc_match)",
                ),
            }
        }
        IdcMatch::Claim => {
            let name = auth.idc_match_claim.as_deref().unwrap_or_default();
            match claims.get(name).and_then(Value::as_str).map(str::trim) {
                Some(value) if !value.is_empty() => IdcLookup::UserName {
                    user_name: value.to_owned(),
                },
                _ => unusable(&format!("the identity provider sent no `{name}` claim")),
            }
        }
        IdcMatch::ExternalId => IdcLookup::ExternalId {
            issuer: auth.idc_external_id_issuer.clone().unwrap_or_default(),
            id: subject.to_owned(),
        },
    }
}

fn unusable(why: &str) -> IdcLookup {
    IdcLookup::Unusable { why: why.into() }
}

/// `email_verified` as providers send it: a boolean, or (some) the string "true".
pub(crate) fn verified_flag(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) => Some(s.eq_ignore_ascii_case("true")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(json: Value) -> Map<String, Value> {
        json.as_object().cloned().unwrap_or_default()
    }

    fn auth(mode: IdcMatch, claim: Option<&str>) -> AuthConfig {
        AuthConfig {
            idc_match: mode,
            idc_match_claim: claim.map(str::to_owned),
            idc_external_id_issuer: Some("https://scim.example".into()),
            ..AuthConfig::default()
        }
    }

    #[test]
    fn an_email_counts_only_when_verified() {
        let a = auth(IdcMatch::VerifiedEmail, None);
        let verified = claims(serde_json::json!({"email": "a@x.io", "email_verified": true}));
        assert_eq!(
            lookup(&a, "s", &verified),
            IdcLookup::Email {
                email: "a@x.io".into()
            }
        );
        for unverified in [
            serde_json::json!({"email": "a@x.io", "email_verified": false}),
            serde_json::json!({"email": "a@x.io"}),
            serde_json::json!({"email": "a@x.io", "email_verified": "no"}),
            serde_json::json!({"preferred_username": "a", "email_verified": true}),
        ] {
            let lookup = lookup(&a, "s", &claims(unverified.clone()));
            assert!(
                matches!(lookup, IdcLookup::Unusable { .. }),
                "{unverified}: {lookup:?}"
            );
        }
    }

    #[test]
    fn preferred_username_counts_only_when_configured() {
        let c = claims(serde_json::json!({"preferred_username": "bob", "email": "a@x.io"}));
        let by_email = lookup(&auth(IdcMatch::VerifiedEmail, None), "s", &c);
        assert!(matches!(by_email, IdcLookup::Unusable { .. }));
        let by_claim = lookup(&auth(IdcMatch::Claim, Some("preferred_username")), "s", &c);
        assert_eq!(
            by_claim,
            IdcLookup::UserName {
                user_name: "bob".into()
            }
        );
        let missing = lookup(&auth(IdcMatch::Claim, Some("aws_user")), "s", &c);
        assert!(matches!(missing, IdcLookup::Unusable { .. }));
    }

    #[test]
    fn the_external_id_is_the_subject_whatever_else_is_claimed() {
        let c = claims(
            serde_json::json!({"preferred_username": "bob", "email": "b@x.io", "email_verified": true}),
        );
        assert_eq!(
            lookup(&auth(IdcMatch::ExternalId, None), "sub-123", &c),
            IdcLookup::ExternalId {
                issuer: "https://scim.example".into(),
                id: "sub-123".into()
            }
        );
    }
}
