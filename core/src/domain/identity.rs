//! Which IAM Identity Center user a person is: how to look them up, as decided at sign-in
//! from the claims the operator trusts (server/src/oidc/idc_match.rs). The IdC user found
//! at first use is then bound to the person for good (server/src/store/users.rs).

use serde::{Deserialize, Serialize};

/// How to find a person's IdC user, as worked out at their last sign-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum IdcLookup {
    /// By `userName`.
    UserName {
        /// The configured claim's value.
        user_name: String,
    },
    /// By email.
    Email {
        /// An email the provider says is verified.
        email: String,
    },
    /// By the external id SCIM provisioning gave the IdC user.
    ExternalId {
        /// Who issued the id (as the provisioning records it).
        issuer: String,
        /// The person's subject at that issuer.
        id: String,
    },
    /// The claims allow no lookup.
    Unusable {
        /// Why, in words for the person and the admin.
        why: String,
    },
}

impl std::fmt::Display for IdcLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IdcLookup::UserName { user_name } => write!(f, "userName {user_name}"),
            IdcLookup::Email { email } => write!(f, "email {email}"),
            IdcLookup::ExternalId { issuer, id } => write!(f, "external id {id} of {issuer}"),
            IdcLookup::Unusable { why } => write!(f, "no lookup: {why}"),
        }
    }
}
