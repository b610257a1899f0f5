//! What jitgate does in the member accounts, through the role it assumes in each
//! (`[aws] member_role_name`): list the instances in the profiles' scope for the target
//! inventory, and list and end live Session Manager sessions when a grant ends
//! (scheduler/sessions.rs decides which).
//!
//! Deleting an account assignment does not revoke role credentials IdC already issued,
//! and a session opened with them goes on; only `ssm:TerminateSession` ends it. See
//! <https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_DescribeSessions.html>.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use aws_config::{Region, SdkConfig, sts::AssumeRoleProvider};
use aws_sdk_resourcegroupstagging::types::TagFilter;
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

/// An EC2 instance found by its tags, with its Session Manager ping status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundInstance {
    pub instance_id: String,
    pub tags: BTreeMap<String, String>,
    /// `None` when the instance is not a registered managed node.
    pub ping: Option<String>,
}

/// What jitgate needs from a member account's region.
#[async_trait]
pub trait MemberAccounts: Send + Sync + 'static {
    /// Every active session in `account_id`'s `region`.
    async fn active(&self, account_id: &str, region: &str) -> Result<Vec<LiveSession>, AwsError>;

    /// Ends a session; ending one that has ended already succeeds.
    async fn terminate(
        &self,
        account_id: &str,
        region: &str,
        session_id: &str,
    ) -> Result<(), AwsError>;

    /// The EC2 instances carrying every tag of `tags` (all instances with tags when
    /// empty), with their ping status.
    async fn instances(
        &self,
        account_id: &str,
        region: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<Vec<FoundInstance>, AwsError>;
}

/// The SDK clients of one member account and region.
struct Clients {
    ssm: aws_sdk_ssm::Client,
    tagging: aws_sdk_resourcegroupstagging::Client,
}

/// [`MemberAccounts`] on the AWS SDK: clients per (account, region) whose credentials
/// come from `sts:AssumeRole` into the member role (refreshed by the SDK before they
/// expire).
pub struct MemberClients {
    base: SdkConfig,
    role_name: String,
    max_attempts: u32,
    clients: tokio::sync::Mutex<HashMap<(String, String), Arc<Clients>>>,
}

impl MemberClients {
    /// Builds nothing yet: clients are made on the first use of each account and region.
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

    async fn clients(&self, account_id: &str, region: &str) -> Arc<Clients> {
        let key = (account_id.to_owned(), region.to_owned());
        let mut clients = self.clients.lock().await;
        if let Some(found) = clients.get(&key) {
            return found.clone();
        }
        let role_arn = format!("arn:aws:iam::{account_id}:role/{}", self.role_name);
        let credentials = AssumeRoleProvider::builder(role_arn)
            .session_name("jitgate")
            .configure(&self.base)
            .build()
            .await;
        let config = self
            .base
            .to_builder()
            .region(Region::new(region.to_owned()))
            .credentials_provider(aws_sdk_ssm::config::SharedCredentialsProvider::new(
                credentials,
            ))
            .build();
        let made = Arc::new(Clients {
            ssm: aws_sdk_ssm::Client::new(&config),
            tagging: aws_sdk_resourcegroupstagging::Client::new(&config),
        });
        clients.insert(key, made.clone());
        made
    }

    /// Instance id → ping status of the region's registered managed nodes.
    async fn pings(&self, clients: &Clients) -> Result<HashMap<String, String>, AwsError> {
        let mut pings = HashMap::new();
        let mut token: Option<String> = None;
        loop {
            let out = with_retries(
                "DescribeInstanceInformation",
                self.max_attempts,
                || async {},
                || {
                    clients
                        .ssm
                        .describe_instance_information()
                        .max_results(50)
                        .set_next_token(token.clone())
                        .send()
                },
            )
            .await?;
            for node in out.instance_information_list() {
                if let (Some(id), Some(ping)) = (node.instance_id(), node.ping_status()) {
                    pings.insert(id.to_owned(), ping.as_str().to_owned());
                }
            }
            token = out.next_token().map(str::to_owned);
            if token.is_none() {
                return Ok(pings);
            }
        }
    }
}

#[async_trait]
impl MemberAccounts for MemberClients {
    async fn active(&self, account_id: &str, region: &str) -> Result<Vec<LiveSession>, AwsError> {
        let clients = self.clients(account_id, region).await;
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = with_retries(
                "DescribeSessions",
                self.max_attempts,
                || async {},
                || {
                    clients
                        .ssm
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
        let clients = self.clients(account_id, region).await;
        with_retries(
            "TerminateSession",
            self.max_attempts,
            || async {},
            || {
                clients
                    .ssm
                    .terminate_session()
                    .session_id(session_id)
                    .send()
            },
        )
        .await?;
        Ok(())
    }

    async fn instances(
        &self,
        account_id: &str,
        region: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<Vec<FoundInstance>, AwsError> {
        let clients = self.clients(account_id, region).await;
        let filters: Vec<TagFilter> = tags
            .iter()
            .map(|(k, v)| TagFilter::builder().key(k).values(v).build())
            .collect();
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = with_retries(
                "GetResources",
                self.max_attempts,
                || async {},
                || {
                    clients
                        .tagging
                        .get_resources()
                        .resource_type_filters("ec2:instance")
                        .set_tag_filters((!filters.is_empty()).then(|| filters.clone()))
                        .set_pagination_token(token.clone())
                        .send()
                },
            )
            .await?;
            for mapping in out.resource_tag_mapping_list() {
                let Some(id) = mapping
                    .resource_arn()
                    .and_then(|arn| arn.rsplit_once("instance/"))
                    .map(|(_, id)| id.to_owned())
                else {
                    continue;
                };
                let tags = mapping
                    .tags()
                    .iter()
                    .map(|t| (t.key().to_owned(), t.value().to_owned()))
                    .collect();
                found.push(FoundInstance {
                    instance_id: id,
                    tags,
                    ping: None,
                });
            }
            token = out
                .pagination_token()
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        let pings = self.pings(&clients).await?;
        for instance in &mut found {
            instance.ping = pings.get(&instance.instance_id).cloned();
        }
        Ok(found)
    }
}
