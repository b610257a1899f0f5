//! Sign-in with the company's OpenID Connect provider: the authorization code flow with
//! PKCE, `state` and `nonce`, the ID token verified against the provider's JWKS
//! (discovered from the issuer), and groups read from a configurable claim of the ID
//! token or, when it is not there, of userinfo.
//! <https://openid.net/specs/openid-connect-core-1_0.html#CodeFlowAuth>

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreErrorResponseType,
    CoreGenderClaim, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
    CoreProviderMetadata, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AuthorizationCode, Client, ClientId, ClientSecret, CsrfToken,
    EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet, IdTokenFields, IssuerUrl,
    Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    StandardErrorResponse, StandardTokenResponse, TokenResponse, UserInfoClaims,
};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::OidcConfig;

pub mod idc_match;
mod provider;
pub use provider::Provider;

/// Claims beyond the standard ones, kept whole so the groups claim can have any name.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OtherClaims {
    #[serde(flatten)]
    claims: Map<String, Value>,
}

impl AdditionalClaims for OtherClaims {}

type IdFields = IdTokenFields<
    OtherClaims,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type Tokens = StandardTokenResponse<IdFields, CoreTokenType>;
type ProviderClient = Client<
    OtherClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    Tokens,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Why a sign-in failed. The details are for the log; people see a short reason.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("cannot reach the OpenID provider: {0}")]
    Discovery(String),
    #[error("the OpenID provider refused the code: {0}")]
    Exchange(String),
    #[error("the ID token is not valid: {0}")]
    IdToken(String),
    #[error("the provider's userinfo failed: {0}")]
    UserInfo(String),
    #[error("OIDC configuration: {0}")]
    Config(String),
}

/// What a sign-in in progress must remember until the provider redirects back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginFlow {
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
    /// Where to go after signing in (a local path).
    pub return_to: String,
    /// A step-up (`prompt=login`, `max_age=0`): when it began, in milliseconds since the
    /// epoch; the provider's `auth_time` must not be older.
    #[serde(default)]
    pub step_up_since_millis: Option<i64>,
}

/// Who signed in, as the provider vouched.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub issuer: String,
    pub subject: String,
    pub user_name: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub groups: Vec<String>,
    /// Every claim of the ID token (and of userinfo, when it was asked), for the
    /// operator's choice of what identifies the person in IdC (`idc_match`).
    pub claims: Map<String, Value>,
    /// For confirming the claims later without the person (`[auth] claims_max_age`);
    /// `None` when the provider issued none.
    pub refresh_token: Option<SecretString>,
    /// When the person authenticated, by the ID token's `auth_time` (providers send it
    /// when `max_age` is asked).
    pub auth_time: Option<chrono::DateTime<chrono::Utc>>,
}

/// What the provider says of a person asked again with their refresh token.
#[derive(Debug, Clone)]
pub struct Refreshed {
    pub groups: Vec<String>,
    /// A new refresh token when the provider rotated it.
    pub refresh_token: Option<SecretString>,
}

/// Why claims could not be confirmed again.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// The provider no longer accepts the person or their grant (`invalid_grant`).
    #[error("the OpenID provider no longer accepts this person: {0}")]
    Rejected(String),
    /// The provider could not be asked, or did not say (retry later).
    #[error("cannot confirm the claims with the OpenID provider: {0}")]
    Unavailable(String),
}

/// The provider, discovered once at start.
pub struct Oidc {
    client: ProviderClient,
    http: openidconnect::reqwest::Client,
    scopes: Vec<String>,
    groups_claim: String,
}

impl Oidc {
    /// Discovers the provider at `config.issuer`; sign-ins come back to
    /// `{public_url}/auth/callback`.
    pub async fn discover(config: &OidcConfig, public_url: &str) -> Result<Self, OidcError> {
        // Redirects off: a token or discovery request that redirects is an attack
        // surface (SSRF), not something to follow.
        let http = openidconnect::reqwest::ClientBuilder::new()
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(15))
            .build()
            .map_err(|e| OidcError::Discovery(e.to_string()))?;
        let issuer = IssuerUrl::new(config.issuer.clone())
            .map_err(|e| OidcError::Config(format!("oidc.issuer: {e}")))?;
        let metadata = CoreProviderMetadata::discover_async(issuer, &http)
            .await
            .map_err(|e| OidcError::Discovery(e.to_string()))?;
        let redirect = RedirectUrl::new(format!(
            "{}/auth/callback",
            public_url.trim_end_matches('/')
        ))
        .map_err(|e| OidcError::Config(format!("server.public_url: {e}")))?;
        let client = ProviderClient::from_provider_metadata(
            metadata,
            ClientId::new(config.client_id.clone()),
            Some(ClientSecret::new(config.client_secret.expose().to_owned())),
        )
        .set_redirect_uri(redirect);
        Ok(Self {
            client,
            http,
            scopes: config.scopes.clone(),
            groups_claim: config.groups_claim.clone(),
        })
    }

    /// The provider URL to send the browser to, and what to remember meanwhile.
    /// With `step_up_at` (now), the provider is asked to authenticate the person again
    /// whatever session it holds (`prompt=login`, `max_age=0`, OpenID Connect Core 3.1.2.1),
    /// so its MFA applies again.
    pub fn start(
        &self,
        return_to: String,
        step_up_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> (String, LoginFlow) {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = self.client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in &self.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        if step_up_at.is_some() {
            request = request
                .add_prompt(openidconnect::core::CoreAuthPrompt::Login)
                .set_max_age(std::time::Duration::ZERO);
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        let flow = LoginFlow {
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
            return_to,
            step_up_since_millis: step_up_at.map(|t| t.timestamp_millis()),
        };
        (url.to_string(), flow)
    }

    /// Exchanges the code and verifies the ID token (signature, issuer, audience,
    /// expiry, nonce). The caller has already checked `state`.
    pub async fn finish(&self, code: String, flow: &LoginFlow) -> Result<SignedIn, OidcError> {
        let tokens = self
            .client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| OidcError::Config(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(flow.pkce_verifier.clone()))
            .request_async(&self.http)
            .await
            .map_err(|e| OidcError::Exchange(e.to_string()))?;
        let id_token = tokens
            .id_token()
            .ok_or_else(|| OidcError::IdToken("the provider sent no ID token".into()))?;
        let claims = id_token
            .claims(
                &self.client.id_token_verifier(),
                &Nonce::new(flow.nonce.clone()),
            )
            .map_err(|e| OidcError::IdToken(e.to_string()))?;
        let subject = claims.subject().to_string();
        let email = claims.email().map(|e| e.to_string());
        let name = claims
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.to_string());
        let preferred = claims.preferred_username().map(|u| u.to_string());
        let mut all_claims = match serde_json::to_value(claims) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        let mut groups = groups_in(&claims.additional_claims().claims, &self.groups_claim);
        if groups.is_none() {
            let info: UserInfoClaims<OtherClaims, CoreGenderClaim> = self
                .client
                .user_info(
                    tokens.access_token().clone(),
                    Some(claims.subject().clone()),
                )
                .map_err(|e| OidcError::UserInfo(e.to_string()))?
                .request_async(&self.http)
                .await
                .map_err(|e| OidcError::UserInfo(e.to_string()))?;
            groups = groups_in(&info.additional_claims().claims, &self.groups_claim);
            if let Ok(Value::Object(extra)) = serde_json::to_value(&info) {
                for (key, value) in extra {
                    all_claims.entry(key).or_insert(value);
                }
            }
        }
        let user_name = preferred
            .or_else(|| {
                email
                    .as_ref()
                    .and_then(|e| e.split('@').next())
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| subject.clone());
        let refresh_token = tokens
            .refresh_token()
            .map(|t| SecretString::from(t.secret().clone()));
        // Only an email the provider vouches for is kept: other systems (Slack) find the
        // person by it, so one the person could type in themselves must not count.
        let verified = all_claims
            .get("email_verified")
            .and_then(idc_match::verified_flag)
            == Some(true);
        Ok(SignedIn {
            auth_time: claims.auth_time(),
            refresh_token,
            issuer: claims.issuer().to_string(),
            subject,
            user_name,
            email: email.filter(|_| verified),
            name,
            groups: groups.unwrap_or_default(),
            claims: all_claims,
        })
    }
}

impl Oidc {
    /// Asks the provider again about a person, with their refresh token: a new access
    /// token, then userinfo for their groups.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Refreshed, RefreshError> {
        let token = openidconnect::RefreshToken::new(refresh_token.to_owned());
        let request = self
            .client
            .exchange_refresh_token(&token)
            .map_err(|e| RefreshError::Unavailable(e.to_string()))?;
        let tokens = match request.request_async(&self.http).await {
            Ok(tokens) => tokens,
            Err(openidconnect::RequestTokenError::ServerResponse(answer))
                if *answer.error() == CoreErrorResponseType::InvalidGrant =>
            {
                return Err(RefreshError::Rejected(answer.to_string()));
            }
            Err(e) => return Err(RefreshError::Unavailable(e.to_string())),
        };
        let info: UserInfoClaims<OtherClaims, CoreGenderClaim> = self
            .client
            .user_info(tokens.access_token().clone(), None)
            .map_err(|e| RefreshError::Unavailable(e.to_string()))?
            .request_async(&self.http)
            .await
            .map_err(|e| RefreshError::Unavailable(e.to_string()))?;
        let groups =
            groups_in(&info.additional_claims().claims, &self.groups_claim).ok_or_else(|| {
                RefreshError::Unavailable(format!(
                    "the provider's userinfo has no `{}` claim, so roles cannot be confirmed \
                     without a sign-in (have it released to userinfo)",
                    self.groups_claim
                ))
            })?;
        Ok(Refreshed {
            groups,
            refresh_token: tokens
                .refresh_token()
                .map(|t| SecretString::from(t.secret().clone())),
        })
    }
}

/// The groups listed under `claim`: an array of strings (or one string).
fn groups_in(claims: &Map<String, Value>, claim: &str) -> Option<Vec<String>> {
    match claims.get(claim)? {
        Value::Array(items) => Some(
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
        ),
        Value::String(one) => Some(vec![one.clone()]),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_come_from_the_configured_claim() {
        let claims: Map<String, Value> =
            serde_json::from_str(r#"{"groups":["sre","dev"],"roles":"admin","n":1}"#)
                .unwrap_or_default();
        assert_eq!(
            groups_in(&claims, "groups"),
            Some(vec!["sre".into(), "dev".into()])
        );
        assert_eq!(groups_in(&claims, "roles"), Some(vec!["admin".into()]));
        assert_eq!(groups_in(&claims, "n"), None);
        assert_eq!(groups_in(&claims, "missing"), None);
    }
}
