//! A developer's side of the AWS peer's sign-in and Session Manager half
//! (tests/peers/aws_sessions.py): the IdC device-code sign-in (with the peer's hook
//! standing in for the person at the browser), role credentials from the IdC portal, and
//! `ssm:StartSession` signed with them through the AWS SDK, as the AWS CLI does it.

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AwsPeer;

/// A Session Manager session as the peer records it (`GET /_peer/sessions`).
#[derive(Debug, Clone, Deserialize)]
pub struct PeerSession {
    pub session_id: String,
    pub account_id: String,
    pub region: String,
    pub target: String,
    pub owner: String,
    pub reason: Option<String>,
    pub document_name: String,
    /// The OS user AWS runs the session as.
    pub run_as: String,
    pub user_id: String,
    pub permission_set: String,
    pub active: bool,
    /// Unix seconds.
    pub started_at: f64,
    /// When it ended (unix seconds), if it has.
    pub ended_at: Option<f64>,
}

/// What a developer opens a session with.
#[derive(Debug, Clone)]
pub struct SessionAsk<'a> {
    pub user_name: &'a str,
    pub account_id: &'a str,
    /// The permission set's name (the portal's role name).
    pub permission_set: &'a str,
    pub target: &'a str,
    pub reason: Option<&'a str>,
    pub document: Option<&'a str>,
}

impl AwsPeer {
    /// Every Session Manager session, live or ended.
    pub async fn sessions(&self) -> Result<Vec<PeerSession>> {
        let response = reqwest::get(format!("{}/_peer/sessions", self.url())).await?;
        Ok(response.error_for_status()?.json().await?)
    }

    /// Signs `user_name` in to IdC with the device-code grant and returns the access token.
    pub async fn idc_sign_in(&self, user_name: &str) -> Result<String> {
        let client = self
            .sso_call(
                "/client/register",
                json!({"clientName": "jitgate-tests", "clientType": "public"}),
            )
            .await?;
        let (id, secret) = (&client["clientId"], &client["clientSecret"]);
        let auth = self
            .sso_call(
                "/device_authorization",
                json!({"clientId": id, "clientSecret": secret, "startUrl": "https://peer.awsapps.com/start"}),
            )
            .await?;
        let approve = reqwest::Client::new()
            .post(format!("{}/_peer/sso/approve", self.url()))
            .json(&json!({"user_code": auth["userCode"], "user_name": user_name}))
            .send()
            .await?;
        if !approve.status().is_success() {
            bail!("approving the device code: {}", approve.text().await?);
        }
        let token = self
            .sso_call(
                "/token",
                json!({
                    "clientId": id,
                    "clientSecret": secret,
                    "grantType": "urn:ietf:params:oauth:grant-type:device_code",
                    "deviceCode": auth["deviceCode"],
                }),
            )
            .await?;
        token["accessToken"]
            .as_str()
            .map(str::to_owned)
            .context("CreateToken answered no accessToken")
    }

    /// Role credentials for the permission set on the account (`GetRoleCredentials`).
    pub async fn role_credentials(
        &self,
        access_token: &str,
        account_id: &str,
        permission_set: &str,
    ) -> Result<aws_sdk_ssm::config::Credentials> {
        let response = reqwest::Client::new()
            .get(format!("{}/federation/credentials", self.url()))
            .query(&[("account_id", account_id), ("role_name", permission_set)])
            .header("x-amz-sso_bearer_token", access_token)
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await?;
        if !status.is_success() {
            bail!("GetRoleCredentials answered {status}: {body}");
        }
        let c = &body["roleCredentials"];
        let text = |k: &str| {
            c[k].as_str()
                .map(str::to_owned)
                .with_context(|| format!("no {k}"))
        };
        Ok(aws_sdk_ssm::config::Credentials::new(
            text("accessKeyId")?,
            text("secretAccessKey")?,
            Some(text("sessionToken")?),
            None,
            "idc-portal",
        ))
    }

    /// Signs in, gets role credentials and starts a session, as a developer would; the
    /// session id.
    pub async fn open_session(&self, ask: &SessionAsk<'_>) -> Result<String> {
        let token = self.idc_sign_in(ask.user_name).await?;
        let credentials = self
            .role_credentials(&token, ask.account_id, ask.permission_set)
            .await?;
        let config = aws_sdk_ssm::config::Builder::new()
            .behavior_version(aws_sdk_ssm::config::BehaviorVersion::latest())
            .region(aws_sdk_ssm::config::Region::new("us-east-1"))
            .endpoint_url(self.url())
            .credentials_provider(credentials)
            .build();
        let out = aws_sdk_ssm::Client::from_conf(config)
            .start_session()
            .target(ask.target)
            .set_reason(ask.reason.map(str::to_owned))
            .set_document_name(ask.document.map(str::to_owned))
            .send()
            .await
            .with_context(|| format!("StartSession as {}", ask.user_name))?;
        out.session_id()
            .map(str::to_owned)
            .context("StartSession answered no SessionId")
    }

    async fn sso_call(&self, path: &str, body: Value) -> Result<Value> {
        let response = reqwest::Client::new()
            .post(format!("{}{path}", self.url()))
            .json(&body)
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await?;
        if !status.is_success() {
            bail!("sso-oidc {path} answered {status}: {body}");
        }
        Ok(body)
    }
}
