//! The people jitgate knows and the credentials it gives them: a person as their
//! identity provider last described them, their API tokens and the CLI login codes. The
//! store keeps them; the edges see them through the broker.

use chrono::{DateTime, Utc};

use super::{IdcLookup, UserId};

/// A person as the provider last described them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Their jitgate user id: the provider's subject.
    pub id: UserId,
    /// The provider that vouched for them.
    pub issuer: String,
    /// Their user name at the provider.
    pub user_name: String,
    /// Their email, if the provider gave one.
    pub email: Option<String>,
    /// Their display name, if the provider gave one.
    pub name: Option<String>,
    /// Their groups, as the provider said last.
    pub groups: Vec<String>,
    /// When they last signed in.
    pub last_login: DateTime<Utc>,
    /// How to find their IdC user, from their last sign-in (`None`: not signed in since
    /// this was recorded).
    pub idc_lookup: Option<IdcLookup>,
    /// The IdC user bound to them at first use (written only by binding, at first use).
    pub idc_user_id: Option<String>,
    /// When the provider last confirmed their claims (sign-in or refresh).
    pub claims_at: Option<DateTime<Utc>>,
    /// The provider's refresh token, to confirm the claims again without the person.
    pub refresh_token: Option<RefreshToken>,
    /// When the provider stopped accepting them: sessions signed in before end.
    pub cut_off_at: Option<DateTime<Utc>>,
}

/// A provider's refresh token: a credential (with jitgate's client secret), never shown.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshToken(pub String);

impl std::fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshToken(***)")
    }
}

/// A token's record (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// The token's id (not its secret).
    pub id: String,
    /// Whose it is.
    pub user_id: UserId,
    /// What its owner called it.
    pub name: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// When it was last used, if ever.
    pub last_used_at: Option<DateTime<Utc>>,
    /// When its owner revoked it, if they did.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// What a code, once redeemed, stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliLogin {
    /// Who confirmed the login in the browser.
    pub user_id: UserId,
    /// The CLI's PKCE challenge (S256), checked against its verifier.
    pub code_challenge: String,
    /// The name of the API token the CLI will get.
    pub token_name: String,
}
