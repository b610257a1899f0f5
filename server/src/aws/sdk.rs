//! [`IdentityCenter`] on the AWS SDK: `sso-admin` for account assignments, `identitystore`
//! for users and the run-as attribute.
//!
//! Assignment writes are asynchronous in IdC: the call returns a request id with status
//! IN_PROGRESS, and `DescribeAccountAssignment{Creation,Deletion}Status` tells when it
//! has SUCCEEDED or FAILED. See
//! <https://docs.aws.amazon.com/singlesignon/latest/APIReference/API_CreateAccountAssignment.html>.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, retry::RetryConfig, timeout::TimeoutConfig};
use aws_sdk_identitystore::types::{AlternateIdentifier, AttributeOperation, UniqueAttribute};
use aws_sdk_ssoadmin::types::{
    AccountAssignmentOperationStatus, PrincipalType, StatusValues, TargetType,
};
use aws_smithy_types::Document;

use super::retry::{SdkFailure, with_retries};
use super::{AssignmentKey, AwsError, IdentityCenter, Limits};
use crate::config::AwsConfig;

/// How the client was set up: the IdC instance and the limits it keeps.
#[derive(Debug, Clone)]
pub struct IdcSettings {
    pub instance_arn: String,
    pub identity_store_id: String,
    pub run_as_attribute: String,
    pub max_attempts: u32,
    pub operation_timeout: Duration,
}

/// IAM Identity Center through the AWS SDK.
#[derive(Clone)]
pub struct IdcClient {
    sso: aws_sdk_ssoadmin::Client,
    ids: aws_sdk_identitystore::Client,
    limits: Limits,
    settings: IdcSettings,
}

impl IdcClient {
    /// Builds the SDK clients from `config` (credentials from the default chain) and
    /// discovers the IdC instance with `ListInstances` when it is not configured.
    pub async fn connect(config: &AwsConfig) -> Result<Self, AwsError> {
        Self::connect_with(config, None).await
    }

    /// [`Self::connect`] with fixed credentials instead of the default chain (tools and
    /// tests that talk to an emulator).
    pub async fn connect_with(
        config: &AwsConfig,
        credentials: Option<aws_sdk_ssoadmin::config::Credentials>,
    ) -> Result<Self, AwsError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(config.region.clone()))
            // Our own retry loop paces every attempt through the limiter.
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_attempt_timeout(Duration::from_secs(15))
                    .connect_timeout(Duration::from_secs(5))
                    .build(),
            );
        if let Some(url) = &config.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        if let Some(credentials) = credentials {
            loader = loader.credentials_provider(credentials);
        }
        let shared = loader.load().await;
        let mut client = IdcClient {
            sso: aws_sdk_ssoadmin::Client::new(&shared),
            ids: aws_sdk_identitystore::Client::new(&shared),
            limits: Limits::new(config.tps_limit, config.max_outstanding_assignments),
            settings: IdcSettings {
                instance_arn: config.instance_arn.clone().unwrap_or_default(),
                identity_store_id: config.identity_store_id.clone().unwrap_or_default(),
                run_as_attribute: config.run_as_attribute.clone(),
                max_attempts: config.max_attempts,
                operation_timeout: config.operation_timeout.get(),
            },
        };
        if client.settings.instance_arn.is_empty() {
            client.discover_instance().await?;
        }
        Ok(client)
    }

    pub fn settings(&self) -> &IdcSettings {
        &self.settings
    }

    async fn discover_instance(&mut self) -> Result<(), AwsError> {
        let out = self
            .admin("ListInstances", || self.sso.list_instances().send())
            .await?;
        let instances = out.instances();
        let [instance] = instances else {
            return Err(AwsError::Setup(format!(
                "ListInstances found {} IAM Identity Center instances; set [aws] instance_arn \
                 and identity_store_id",
                instances.len()
            )));
        };
        self.settings.instance_arn = instance.instance_arn().unwrap_or_default().to_owned();
        self.settings.identity_store_id =
            instance.identity_store_id().unwrap_or_default().to_owned();
        tracing::info!(instance_arn = %self.settings.instance_arn, identity_store_id = %self.settings.identity_store_id, "discovered IAM Identity Center instance");
        Ok(())
    }

    /// Maps permission set names to ARNs for every permission set of the instance.
    pub async fn permission_sets_by_name(&self) -> Result<HashMap<String, String>, AwsError> {
        let mut arns = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .admin("ListPermissionSets", || {
                    self.sso
                        .list_permission_sets()
                        .instance_arn(&self.settings.instance_arn)
                        .set_next_token(token.clone())
                        .send()
                })
                .await?;
            arns.extend(out.permission_sets().iter().cloned());
            token = out.next_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        let mut by_name = HashMap::new();
        for arn in arns {
            let out = self
                .admin("DescribePermissionSet", || {
                    self.sso
                        .describe_permission_set()
                        .instance_arn(&self.settings.instance_arn)
                        .permission_set_arn(&arn)
                        .send()
                })
                .await?;
            if let Some(name) = out.permission_set().and_then(|p| p.name()) {
                by_name.insert(name.to_owned(), arn.clone());
            }
        }
        Ok(by_name)
    }

    /// One admin API call: rate-limited and retried.
    async fn admin<T, E, F, Fut>(&self, operation: &'static str, call: F) -> Result<T, AwsError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<
                Output = Result<
                    T,
                    aws_sdk_ssoadmin::error::SdkError<
                        E,
                        aws_sdk_ssoadmin::config::http::HttpResponse,
                    >,
                >,
            >,
        E: aws_sdk_ssoadmin::error::ProvideErrorMetadata + std::error::Error,
    {
        self.admin_raw(operation, call)
            .await
            .map_err(AwsError::from)
    }

    async fn admin_raw<T, E, F, Fut>(
        &self,
        operation: &'static str,
        call: F,
    ) -> Result<T, SdkFailure<E, aws_sdk_ssoadmin::config::http::HttpResponse>>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<
                Output = Result<
                    T,
                    aws_sdk_ssoadmin::error::SdkError<
                        E,
                        aws_sdk_ssoadmin::config::http::HttpResponse,
                    >,
                >,
            >,
        E: aws_sdk_ssoadmin::error::ProvideErrorMetadata + std::error::Error,
    {
        with_retries(
            operation,
            self.settings.max_attempts,
            || self.limits.admin_call(),
            call,
        )
        .await
    }

    /// One identity-store call: retried; its quota is separate from the admin APIs'.
    async fn directory<T, E, F, Fut>(
        &self,
        operation: &'static str,
        call: F,
    ) -> Result<T, SdkFailure<E, aws_sdk_ssoadmin::config::http::HttpResponse>>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<
                Output = Result<
                    T,
                    aws_sdk_ssoadmin::error::SdkError<
                        E,
                        aws_sdk_ssoadmin::config::http::HttpResponse,
                    >,
                >,
            >,
        E: aws_sdk_ssoadmin::error::ProvideErrorMetadata + std::error::Error,
    {
        with_retries(operation, self.settings.max_attempts, || async {}, call).await
    }

    async fn user_id_by(
        &self,
        attribute_path: &str,
        value: &str,
    ) -> Result<Option<String>, AwsError> {
        let identifier = AlternateIdentifier::UniqueAttribute(
            UniqueAttribute::builder()
                .attribute_path(attribute_path)
                .attribute_value(Document::String(value.to_owned()))
                .build()
                .map_err(|e| AwsError::Setup(e.to_string()))?,
        );
        let result = self
            .directory("GetUserId", || {
                self.ids
                    .get_user_id()
                    .identity_store_id(&self.settings.identity_store_id)
                    .alternate_identifier(identifier.clone())
                    .send()
            })
            .await;
        match result {
            Ok(out) => Ok(Some(out.user_id().to_owned())),
            Err(f) if f.code() == Some("ResourceNotFoundException") => Ok(None),
            Err(f) => Err(f.into()),
        }
    }

    /// Polls an assignment operation until it leaves IN_PROGRESS.
    async fn wait_for(
        &self,
        operation: &'static str,
        first: Option<&AccountAssignmentOperationStatus>,
        deletion: bool,
    ) -> Result<(), AwsError> {
        let mut status = first.cloned();
        let started = Instant::now();
        let mut delay = Duration::from_millis(200);
        loop {
            let current = status.as_ref().and_then(|s| s.status());
            match current {
                Some(StatusValues::Succeeded) => return Ok(()),
                Some(StatusValues::Failed) => {
                    let reason = status
                        .as_ref()
                        .and_then(|s| s.failure_reason())
                        .unwrap_or("no reason given")
                        .to_owned();
                    return Err(AwsError::OperationFailed { operation, reason });
                }
                _ => {}
            }
            let Some(request_id) = status
                .as_ref()
                .and_then(|s| s.request_id())
                .map(str::to_owned)
            else {
                return Err(AwsError::OperationFailed {
                    operation,
                    reason: "IdC returned no request id to follow".into(),
                });
            };
            if started.elapsed() >= self.settings.operation_timeout {
                return Err(AwsError::Timeout {
                    operation,
                    waited_secs: started.elapsed().as_secs(),
                });
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 3 / 2).min(Duration::from_secs(2));
            status = if deletion {
                self.admin("DescribeAccountAssignmentDeletionStatus", || {
                    self.sso
                        .describe_account_assignment_deletion_status()
                        .instance_arn(&self.settings.instance_arn)
                        .account_assignment_deletion_request_id(&request_id)
                        .send()
                })
                .await?
                .account_assignment_deletion_status()
                .cloned()
            } else {
                self.admin("DescribeAccountAssignmentCreationStatus", || {
                    self.sso
                        .describe_account_assignment_creation_status()
                        .instance_arn(&self.settings.instance_arn)
                        .account_assignment_creation_request_id(&request_id)
                        .send()
                })
                .await?
                .account_assignment_creation_status()
                .cloned()
            };
        }
    }
}

impl IdentityCenter for IdcClient {
    async fn find_user(
        &self,
        user_name: &str,
        email: Option<&str>,
    ) -> Result<Option<String>, AwsError> {
        if let Some(id) = self.user_id_by("userName", user_name).await? {
            return Ok(Some(id));
        }
        match email {
            Some(email) => self.user_id_by("emails.value", email).await,
            None => Ok(None),
        }
    }

    async fn set_run_as(&self, principal_id: &str, os_user: Option<&str>) -> Result<(), AwsError> {
        let operation = AttributeOperation::builder()
            .attribute_path(&self.settings.run_as_attribute)
            .set_attribute_value(os_user.map(|u| Document::String(u.to_owned())))
            .build()
            .map_err(|e| AwsError::Setup(e.to_string()))?;
        self.directory("UpdateUser", || {
            self.ids
                .update_user()
                .identity_store_id(&self.settings.identity_store_id)
                .user_id(principal_id)
                .operations(operation.clone())
                .send()
        })
        .await
        .map_err(AwsError::from)?;
        Ok(())
    }

    async fn create_assignment(&self, key: &AssignmentKey) -> Result<(), AwsError> {
        let _slot = self.limits.assignment_slot().await;
        let out = self
            .admin("CreateAccountAssignment", || {
                self.sso
                    .create_account_assignment()
                    .instance_arn(&self.settings.instance_arn)
                    .target_id(&key.account_id)
                    .target_type(TargetType::AwsAccount)
                    .permission_set_arn(&key.permission_set_arn)
                    .principal_type(PrincipalType::User)
                    .principal_id(&key.principal_id)
                    .send()
            })
            .await?;
        self.wait_for(
            "CreateAccountAssignment",
            out.account_assignment_creation_status(),
            false,
        )
        .await
    }

    async fn delete_assignment(&self, key: &AssignmentKey) -> Result<(), AwsError> {
        let _slot = self.limits.assignment_slot().await;
        let result = self
            .admin_raw("DeleteAccountAssignment", || {
                self.sso
                    .delete_account_assignment()
                    .instance_arn(&self.settings.instance_arn)
                    .target_id(&key.account_id)
                    .target_type(TargetType::AwsAccount)
                    .permission_set_arn(&key.permission_set_arn)
                    .principal_type(PrincipalType::User)
                    .principal_id(&key.principal_id)
                    .send()
            })
            .await;
        match result {
            Ok(out) => {
                self.wait_for(
                    "DeleteAccountAssignment",
                    out.account_assignment_deletion_status(),
                    true,
                )
                .await
            }
            // Already gone (a previous attempt got through before a crash): done.
            Err(f) if f.code() == Some("ResourceNotFoundException") => Ok(()),
            Err(f) => Err(f.into()),
        }
    }

    async fn assigned_users(
        &self,
        account_id: &str,
        permission_set_arn: &str,
    ) -> Result<Vec<String>, AwsError> {
        let mut users = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .admin("ListAccountAssignments", || {
                    self.sso
                        .list_account_assignments()
                        .instance_arn(&self.settings.instance_arn)
                        .account_id(account_id)
                        .permission_set_arn(permission_set_arn)
                        .set_next_token(token.clone())
                        .send()
                })
                .await?;
            users.extend(
                out.account_assignments()
                    .iter()
                    .filter(|a| a.principal_type() == Some(&PrincipalType::User))
                    .filter_map(|a| a.principal_id().map(str::to_owned)),
            );
            token = out.next_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        Ok(users)
    }
}
