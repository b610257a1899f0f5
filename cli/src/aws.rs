//! The AWS calls of `jitgate ssh` and `jitgate credentials`, as the AWS CLI makes them:
//! IdC role credentials from the portal (`sso:GetRoleCredentials`) and Session Manager
//! (`ssm:StartSession`, `ssm:TerminateSession`). Clients are built from what the server
//! said (regions) without reading the person's AWS config: nothing of theirs is needed.
//! `AWS_ENDPOINT_URL` points every call at another endpoint (an emulator), as it does
//! for the AWS CLI.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::exit::{FAILED, Failure, NOT_LOGGED_IN, REFUSED, UNREACHABLE};

/// How long a new assignment may take to reach the portal: it answers 403 meanwhile.
const PROPAGATION: Duration = Duration::from_secs(20);

/// `AWS_ENDPOINT_URL`, when set.
pub fn endpoint_override() -> Option<String> {
    std::env::var("AWS_ENDPOINT_URL")
        .ok()
        .map(|v| v.trim().trim_end_matches('/').to_owned())
        .filter(|v| !v.is_empty())
}

/// The Session Manager endpoint of `region` (the plugin's sixth argument).
pub fn ssm_endpoint(region: &str) -> String {
    endpoint_override().unwrap_or_else(|| format!("https://ssm.{region}.amazonaws.com"))
}

/// Where the browser goes for the IdC sign-in (sso-oidc `/authorize`).
pub fn authorize_url(region: &str) -> String {
    let base =
        endpoint_override().unwrap_or_else(|| format!("https://oidc.{region}.amazonaws.com"));
    format!("{base}/authorize")
}

pub fn oidc(region: &str) -> aws_sdk_ssooidc::Client {
    use aws_sdk_ssooidc::config::{BehaviorVersion, Region};
    let mut config = aws_sdk_ssooidc::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()));
    if let Some(url) = endpoint_override() {
        config = config.endpoint_url(url);
    }
    aws_sdk_ssooidc::Client::from_conf(config.build())
}

fn portal(region: &str) -> aws_sdk_sso::Client {
    use aws_sdk_sso::config::{BehaviorVersion, Region};
    let mut config = aws_sdk_sso::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()));
    if let Some(url) = endpoint_override() {
        config = config.endpoint_url(url);
    }
    aws_sdk_sso::Client::from_conf(config.build())
}

/// Role credentials, in the shape `credential_process` prints (version 1).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RoleCredentials {
    pub version: u8,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    pub expiration: DateTime<Utc>,
}

/// What `jitgate credentials` and `jitgate ssh` ask the portal for.
#[derive(Debug, Clone)]
pub struct RoleAsk<'a> {
    pub sso_region: &'a str,
    pub account_id: &'a str,
    pub role_name: &'a str,
}

/// `sso:GetRoleCredentials` with the person's IdC access token. A 403 is retried for a
/// while: IdC takes a moment to let a new assignment through.
pub async fn role_credentials(ask: &RoleAsk<'_>, access_token: &str) -> Result<RoleCredentials> {
    use aws_sdk_sso::error::{DisplayErrorContext, ProvideErrorMetadata};
    let client = portal(ask.sso_region);
    let started = tokio::time::Instant::now();
    loop {
        let answer = client
            .get_role_credentials()
            .account_id(ask.account_id)
            .role_name(ask.role_name)
            .access_token(access_token)
            .send()
            .await;
        let e = match answer {
            Ok(out) => {
                let c = out.role_credentials().ok_or_else(|| {
                    Failure::new(FAILED, "IAM Identity Center answered no role credentials")
                })?;
                let field = |v: Option<&str>| v.unwrap_or_default().to_owned();
                return Ok(RoleCredentials {
                    version: 1,
                    access_key_id: field(c.access_key_id()),
                    secret_access_key: field(c.secret_access_key()),
                    session_token: field(c.session_token()),
                    expiration: DateTime::from_timestamp_millis(c.expiration()).unwrap_or_default(),
                });
            }
            Err(e) => e,
        };
        match e.code() {
            Some("ForbiddenException") if started.elapsed() < PROPAGATION => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Some("ForbiddenException") => {
                return Err(Failure::new(
                    REFUSED,
                    format!(
                        "IAM Identity Center gives you no access to {} in account {}: the \
                         grant may have ended (jitgate status)",
                        ask.role_name, ask.account_id
                    ),
                )
                .into());
            }
            Some("UnauthorizedException") => {
                return Err(Failure::new(
                    NOT_LOGGED_IN,
                    "your IAM Identity Center sign-in is no longer valid; run jitgate ssh \
                     again (it signs you in) or aws sso login",
                )
                .into());
            }
            _ => {
                return Err(Failure::new(
                    UNREACHABLE,
                    format!(
                        "asking IAM Identity Center for role credentials: {}",
                        DisplayErrorContext(&e)
                    ),
                )
                .into());
            }
        }
    }
}

fn ssm(region: &str, creds: &RoleCredentials) -> aws_sdk_ssm::Client {
    use aws_sdk_ssm::config::{BehaviorVersion, Credentials, Region};
    let expiry = UNIX_EPOCH + Duration::from_secs(creds.expiration.timestamp().max(0) as u64);
    let credentials = Credentials::new(
        &creds.access_key_id,
        &creds.secret_access_key,
        Some(creds.session_token.clone()),
        Some(expiry.max(SystemTime::UNIX_EPOCH)),
        "jitgate",
    );
    let mut config = aws_sdk_ssm::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .credentials_provider(credentials);
    if let Some(url) = endpoint_override() {
        config = config.endpoint_url(url);
    }
    aws_sdk_ssm::Client::from_conf(config.build())
}

/// `StartSession`'s parameters, as the AWS CLI hands them to the plugin.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SessionParameters {
    pub target: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document_name: Option<String>,
    pub reason: String,
}

/// `StartSession`'s answer, the part the plugin reads.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct StartedSession {
    pub session_id: String,
    pub token_value: String,
    pub stream_url: String,
}

/// `ssm:StartSession` in `region`.
pub async fn start_session(
    region: &str,
    creds: &RoleCredentials,
    parameters: &SessionParameters,
) -> Result<StartedSession> {
    use aws_sdk_ssm::error::{DisplayErrorContext, ProvideErrorMetadata};
    let out = ssm(region, creds)
        .start_session()
        .target(&parameters.target)
        .reason(&parameters.reason)
        .set_document_name(parameters.document_name.clone())
        .send()
        .await
        .map_err(|e| {
            let code = match e.code() {
                Some("AccessDeniedException" | "TargetNotConnected" | "InvalidDocument") => REFUSED,
                _ => UNREACHABLE,
            };
            Failure::new(
                code,
                format!(
                    "Session Manager refused the session on {}: {}",
                    parameters.target,
                    DisplayErrorContext(&e)
                ),
            )
        })?;
    let field = |v: Option<&str>| v.unwrap_or_default().to_owned();
    Ok(StartedSession {
        session_id: field(out.session_id()),
        token_value: field(out.token_value()),
        stream_url: field(out.stream_url()),
    })
}

/// `ssm:TerminateSession`: a session nobody will attach to must not linger.
pub async fn terminate_session(region: &str, creds: &RoleCredentials, session_id: &str) {
    let ended = ssm(region, creds)
        .terminate_session()
        .session_id(session_id)
        .send()
        .await;
    if let Err(e) = ended {
        eprintln!(
            "jitgate: could not end session {session_id}: {}",
            aws_sdk_ssm::error::DisplayErrorContext(&e)
        );
    }
}
