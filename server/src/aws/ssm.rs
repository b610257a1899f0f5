//! Live Session Manager sessions in the member accounts, reached through the role
//! jitgate assumes in each (`[aws] member_role_name`): listing the active ones and ending
//! them when a grant ends (scheduler/sessions.rs decides which).
//!
//! Deleting an account assignment does not revoke role credentials IdC already issued,
//! and a session opened with them goes on; only `ssm:TerminateSession` ends it. See
//! <https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_DescribeSessions.html>.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_config::{Region, SdkConfig, sts::AssumeRoleProvider};
use aws_sdk_ssm::types::SessionState;

use super::AwsError;
use super::retry::with_retries;
use crate::config::AwsConfig;

/// An active Session Manager session, as `DescribeSessions` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSession {
    pub session_id: String,
    /// The instance (or managed node) id.
    pub target: String,
    /// Who opened it: for IdC users
    /// `arn:aws:sts::<account>:assumed-role/AWSReservedSSO_<permission set>_<suffix>/<user>`.
    pub owner: String,
    /// The `Reason` given at `StartSession` (jitgate's CLI gives the grant's id).
    pub reason: Option<String>,
}

/// What ending live sessions needs from AWS, per member account and region.
#[async_trait]
pub trait LiveSessions: Send + Sync + 'static {
    /// Every active session in `account_id`'s `region`.
    async fn active(&self, account_id: &str, region: &str) -> Result<Vec<LiveSession>, AwsError>;

    /// Ends a session; ending one that has ended already succeeds.
    async fn terminate(
        &self,
        account_id: &str,
        region: &str,
        session_id: &str,
    ) -> Result<(), AwsError>;
}

/// [`LiveSessions`] on the AWS SDK: one SSM client per (account, region), whose
/// credentials come from `sts:AssumeRole` into the member role (refreshed by the SDK
/// before they expire).
pub struct SsmSessions {
    base: SdkConfig,
    role_name: String,
    max_attempts: u32,
    clients: tokio::sync::Mutex<HashMap<(String, String), Arc<aws_sdk_ssm::Client>>>,
}

impl SsmSessions {
    /// Builds nothing yet: a client is made on the first use of each account and region.
    pub async fn connect(
        config: &AwsConfig,
        credentials: Option<aws_sdk_ssoadmin::config::Credentials>,
    ) -> Self {
        Self {
            base: super::sdk::shared_config(config, credentials).await,
            role_name: config.member_role_name.clone(),
            max_attempts: config.max_attempts,
            clients: tokio::sync::Mutex::default(),
        }
    }

    async fn client(&self, account_id: &str, region: &str) -> Arc<aws_sdk_ssm::Client> {
        let key = (account_id.to_owned(), region.to_owned());
        let mut clients = self.clients.lock().await;
        if let Some(client) = clients.get(&key) {
            return client.clone();
        }
        let role_arn = format!("arn:aws:iam::{account_id}:role/{}", self.role_name);
        let credentials = AssumeRoleProvider::builder(role_arn)
            .session_name("jitgate-sessions")
            .configure(&self.base)
            .build()
            .await;
        let config = aws_sdk_ssm::config::Builder::from(&self.base)
            .region(Region::new(region.to_owned()))
            .credentials_provider(credentials)
            .build();
        let client = Arc::new(aws_sdk_ssm::Client::from_conf(config));
        clients.insert(key, client.clone());
        client
    }
}

#[async_trait]
impl LiveSessions for SsmSessions {
    async fn active(&self, account_id: &str, region: &str) -> Result<Vec<LiveSession>, AwsError> {
        let client = self.client(account_id, region).await;
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = with_retries(
                "DescribeSessions",
                self.max_attempts,
                || async {},
                || {
                    client
                        .describe_sessions()
                        .state(SessionState::Active)
                        .max_results(200)
                        .set_next_token(token.clone())
                        .send()
                },
            )
            .await?;
            found.extend(out.sessions().iter().filter_map(|s| {
                Some(LiveSession {
                    session_id: s.session_id()?.to_owned(),
                    target: s.target().unwrap_or_default().to_owned(),
                    owner: s.owner().unwrap_or_default().to_owned(),
                    reason: s.reason().map(str::to_owned),
                })
            }));
            token = out.next_token().map(str::to_owned);
            if token.is_none() {
                return Ok(found);
            }
        }
    }

    async fn terminate(
        &self,
        account_id: &str,
        region: &str,
        session_id: &str,
    ) -> Result<(), AwsError> {
        let client = self.client(account_id, region).await;
        with_retries(
            "TerminateSession",
            self.max_attempts,
            || async {},
            || client.terminate_session().session_id(session_id).send(),
        )
        .await?;
        Ok(())
    }
}
