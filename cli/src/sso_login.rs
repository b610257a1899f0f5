//! The IAM Identity Center sign-in of `jitgate ssh`, as the AWS CLI does it (2.22+):
//! authorization code with PKCE on a loopback port, or the device code
//! (`--use-device-code`) where no browser can reach this machine. The token lands in the
//! AWS CLI's cache (`sso_cache`), so `aws sso login` and `jitgate` share one sign-in,
//! and is refreshed when under 15 minutes remain, as botocore does.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeDelta, Utc};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;

use crate::aws;
use crate::exit::{Failure, NOT_LOGGED_IN};
use crate::login::{self, Answer};
use crate::sso_cache::{CacheKey, SsoCache, SsoToken};

/// A token with less than this left is refreshed (botocore's window).
const REFRESH_WINDOW: TimeDelta = TimeDelta::minutes(15);
/// A token with less than this left is not used at all.
const USABLE: TimeDelta = TimeDelta::minutes(1);
/// How long the person has to finish signing in.
const SIGN_IN_TIMEOUT: Duration = Duration::from_secs(300);
const SCOPE: &str = "sso:account:access";
/// The redirect the AWS CLI registers; the port is chosen per sign-in (RFC 8252 7.3).
const REGISTERED_REDIRECT: &str = "http://127.0.0.1/oauth/callback";
const CALLBACK: &str = "/oauth/callback";

/// Which IdC sign-in, as the server described it.
#[derive(Debug, Clone)]
pub struct SsoSite {
    pub start_url: String,
    pub region: String,
    pub session_name: Option<String>,
}

impl SsoSite {
    fn key(&self) -> CacheKey {
        CacheKey {
            start_url: self.start_url.clone(),
            session_name: self.session_name.clone(),
        }
    }
}

/// How to sign in when there is no usable token; `None`: do not (a `credential_process`
/// has no terminal).
#[derive(Debug, Clone, Copy)]
pub struct SignIn {
    pub open_browser: bool,
    pub device_code: bool,
}

/// A usable access token for `site`: the cached one, refreshed when close to expiry,
/// else (when `sign_in` allows) a new sign-in.
pub async fn access_token(
    site: &SsoSite,
    sign_in: Option<SignIn>,
    now: DateTime<Utc>,
) -> Result<String> {
    let cache = SsoCache::locate()?;
    let key = site.key();
    if let Some(token) = cache.load(&key)?
        && token.expires_at - now > REFRESH_WINDOW
    {
        return Ok(token.access_token);
    }
    // One process at a time past here: a refresh token works once, and a second
    // sign-in would be a second browser tab for nothing.
    // Blocking here is fine: this process has nothing else to do meanwhile.
    let lock = cache.lock(&key)?;
    let cached = cache.load(&key)?;
    if let Some(token) = &cached {
        if token.expires_at - now > REFRESH_WINDOW {
            return Ok(token.access_token.clone());
        }
        match refresh(site, token, now).await {
            Ok(fresh) => {
                cache.save(&key, &fresh)?;
                return Ok(fresh.access_token);
            }
            Err(_) if token.expires_at - now > USABLE => {
                return Ok(token.access_token.clone());
            }
            Err(NotRefreshed::Unreachable(why)) if sign_in.is_none() => {
                bail!(Failure::new(
                    crate::exit::UNREACHABLE,
                    format!(
                        "IAM Identity Center could not be reached to refresh your sign-in: {why}"
                    )
                ));
            }
            Err(_) => {}
        }
    }
    // A sign-in takes minutes in a browser: other jitgate processes (a plugin's
    // credential_process) must not wait on it; it writes the cache whole when done.
    drop(lock);
    let Some(how) = sign_in else {
        bail!(Failure::new(
            NOT_LOGGED_IN,
            format!(
                "your IAM Identity Center sign-in to {} has expired; run jitgate ssh (it \
                 signs you in) or aws sso login",
                site.start_url
            )
        ));
    };
    let token = if how.device_code {
        device_code(site, how.open_browser, now).await?
    } else {
        authorization_code(site, how.open_browser, now).await?
    };
    cache.save(&key, &token)?;
    eprintln!("Signed in to AWS ({}).", site.start_url);
    Ok(token.access_token)
}

/// The refreshed token, or `None` when the refresh token is spent or refused.
/// Why a refresh gave no token: IdC refused it (sign in again), or it could not be asked.
enum NotRefreshed {
    Refused,
    Unreachable(String),
}

async fn refresh(
    site: &SsoSite,
    token: &SsoToken,
    now: DateTime<Utc>,
) -> Result<SsoToken, NotRefreshed> {
    use aws_sdk_ssooidc::error::DisplayErrorContext;
    let (client_id, client_secret, refresh_token) =
        token.refreshable(now).ok_or(NotRefreshed::Refused)?;
    let out = aws::oidc(&site.region)
        .create_token()
        .client_id(client_id)
        .client_secret(client_secret)
        .grant_type("refresh_token")
        .refresh_token(refresh_token)
        .send()
        .await
        .map_err(|e| match e.as_service_error() {
            Some(_) => NotRefreshed::Refused,
            None => NotRefreshed::Unreachable(DisplayErrorContext(&e).to_string()),
        })?;
    Ok(SsoToken {
        access_token: out.access_token().ok_or(NotRefreshed::Refused)?.to_owned(),
        expires_at: now + TimeDelta::seconds(out.expires_in().into()),
        refresh_token: out.refresh_token().map(str::to_owned),
        ..token.clone()
    })
}

/// What a new registration and sign-in give the cache.
fn new_token(
    site: &SsoSite,
    client: &aws_sdk_ssooidc::operation::register_client::RegisterClientOutput,
    out: &aws_sdk_ssooidc::operation::create_token::CreateTokenOutput,
    now: DateTime<Utc>,
) -> Result<SsoToken> {
    Ok(SsoToken {
        start_url: site.start_url.clone(),
        region: site.region.clone(),
        access_token: out
            .access_token()
            .context("IAM Identity Center answered no access token")?
            .to_owned(),
        expires_at: now + TimeDelta::seconds(out.expires_in().into()),
        client_id: client.client_id().map(str::to_owned),
        client_secret: client.client_secret().map(str::to_owned),
        registration_expires_at: DateTime::from_timestamp(client.client_secret_expires_at(), 0),
        refresh_token: out.refresh_token().map(str::to_owned),
    })
}

fn client_name() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "cli".into());
    format!("jitgate-{host}")
}

fn sign_in_failed(e: impl std::fmt::Display) -> Failure {
    Failure::new(NOT_LOGGED_IN, format!("signing in to AWS failed: {e}"))
}

/// Authorization code + PKCE, the browser sent back to a loopback port.
async fn authorization_code(
    site: &SsoSite,
    open_browser: bool,
    now: DateTime<Utc>,
) -> Result<SsoToken> {
    use aws_sdk_ssooidc::error::DisplayErrorContext;
    let oidc = aws::oidc(&site.region);
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .context("opening a loopback port for the AWS sign-in's redirect")?;
    let redirect = format!(
        "http://127.0.0.1:{}{CALLBACK}",
        listener.local_addr()?.port()
    );
    let client = oidc
        .register_client()
        .client_name(client_name())
        .client_type("public")
        .grant_types("authorization_code")
        .grant_types("refresh_token")
        .redirect_uris(REGISTERED_REDIRECT)
        .issuer_url(&site.start_url)
        .scopes(SCOPE)
        .send()
        .await
        .map_err(|e| sign_in_failed(DisplayErrorContext(&e)))?;
    let client_id = client.client_id().unwrap_or_default();
    let verifier = login::random_url_safe();
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let state = login::random_url_safe();
    let enc = login::percent_encode;
    let url = format!(
        "{}?response_type=code&client_id={}&redirect_uri={}&state={state}\
         &code_challenge_method=S256&scopes={}&code_challenge={challenge}",
        aws::authorize_url(&site.region),
        enc(client_id),
        enc(&redirect),
        enc(SCOPE),
    );
    if open_browser && login::open(&url) {
        eprintln!("Opened your browser to sign in to AWS. If it did not open, go to:\n  {url}");
    } else {
        eprintln!(
            "To sign in to AWS, open this URL in a browser on this machine (or run again \
             with --use-device-code):\n  {url}"
        );
    }
    let answer = tokio::time::timeout(
        SIGN_IN_TIMEOUT,
        login::loopback(&listener, &state, CALLBACK),
    )
    .await
    .map_err(|_| sign_in_failed("not finished within 5 minutes"))??;
    let code = match answer {
        Answer::Code(code) => code,
        Answer::Denied(why) => bail!(sign_in_failed(why)),
    };
    let out = oidc
        .create_token()
        .client_id(client_id)
        .client_secret(client.client_secret().unwrap_or_default())
        .grant_type("authorization_code")
        .code(code)
        .redirect_uri(&redirect)
        .code_verifier(&verifier)
        .send()
        .await
        .map_err(|e| sign_in_failed(DisplayErrorContext(&e)))?;
    new_token(site, &client, &out, now)
}

/// The device code: the person confirms a code in any browser.
async fn device_code(site: &SsoSite, open_browser: bool, now: DateTime<Utc>) -> Result<SsoToken> {
    use aws_sdk_ssooidc::error::DisplayErrorContext;
    let oidc = aws::oidc(&site.region);
    let client = oidc
        .register_client()
        .client_name(client_name())
        .client_type("public")
        .scopes(SCOPE)
        .send()
        .await
        .map_err(|e| sign_in_failed(DisplayErrorContext(&e)))?;
    let (client_id, client_secret) = (
        client.client_id().unwrap_or_default(),
        client.client_secret().unwrap_or_default(),
    );
    let auth = oidc
        .start_device_authorization()
        .client_id(client_id)
        .client_secret(client_secret)
        .start_url(&site.start_url)
        .send()
        .await
        .map_err(|e| sign_in_failed(DisplayErrorContext(&e)))?;
    let url = auth
        .verification_uri_complete()
        .or(auth.verification_uri())
        .unwrap_or_default();
    let code = auth.user_code().unwrap_or_default();
    if !(open_browser && login::open(url)) {
        eprintln!("To sign in to AWS, open this URL in any browser:\n  {url}");
    }
    eprintln!("and check that it shows the code: {code}");
    let mut interval = Duration::from_secs(auth.interval().clamp(1, 30) as u64);
    let deadline =
        tokio::time::Instant::now() + Duration::from_secs(auth.expires_in().clamp(60, 1800) as u64);
    loop {
        tokio::time::sleep(interval).await;
        let answer = oidc
            .create_token()
            .client_id(client_id)
            .client_secret(client_secret)
            .grant_type("urn:ietf:params:oauth:grant-type:device_code")
            .device_code(auth.device_code().unwrap_or_default())
            .send()
            .await;
        match answer {
            Ok(out) => return new_token(site, &client, &out, now),
            Err(e) => match e.as_service_error() {
                Some(s) if s.is_authorization_pending_exception() => {}
                Some(s) if s.is_slow_down_exception() => interval += Duration::from_secs(5),
                _ => bail!(sign_in_failed(DisplayErrorContext(&e))),
            },
        }
        if tokio::time::Instant::now() > deadline {
            bail!(sign_in_failed("the code was not confirmed in time"));
        }
    }
}
