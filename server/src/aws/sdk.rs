//! [`IdentityCenter`] on the AWS SDK: `sso-admin` for account assignments, `identitystore`
//! for users and the run-as attribute.
//!
//! Assignment writes are asynchronous in IdC: the call returns a request id with status
//! IN_PROGRESS, and `DescribeAccountAssignment{Creation,Deletion}Status` tells when it
//! has SUCCEEDED or FAILED. See
//! <https://docs.aws.amazon.com/singlesignon/latest/APIReference/API_CreateAccountAssignment.html>.
//!
//! Nothing is called at construction: the IdC instance is discovered (`ListInstances`)
//! on first use and retried on the next use if that fails, so a server whose IdC is
//! unreachable at start still starts, and revokes as soon as IdC answers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, retry::RetryConfig, timeout::TimeoutConfig};
use aws_sdk_identitystore::types::{
    AlternateIdentifier, AttributeOperation, ExternalId, UniqueAttribute,
};
use aws_sdk_ssoadmin::types::{
    AccountAssignmentOperationStatus, PrincipalType, StatusValues, TargetType,
};
use aws_smithy_types::Document;

use super::retry::{SdkFailure, with_retries};
use super::{
    AssignmentKey, AwsError, IdentityCenter, Limits, OpKind, OpStatus, PrincipalKind, StartedOp,
};
use crate::config::AwsConfig;
use crate::domain::{IdcLookup, PrincipalId};

/// How the client was set up: the limits it keeps and, if configured, the IdC instance.
#[derive(Debug, Clone)]
pub struct IdcSettings {
    /// `[aws] instance_arn` and `identity_store_id`, or `None` to discover them.
    pub instance: Option<Instance>,
    pub run_as_attribute: String,
    pub max_attempts: u32,
}

/// The IdC instance jitgate administers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub instance_arn: String,
    pub identity_store_id: String,
}

/// IAM Identity Center through the AWS SDK.
#[derive(Clone)]
pub struct IdcClient {
    sso: aws_sdk_ssoadmin::Client,
    ids: aws_sdk_identitystore::Client,
    limits: Limits,
    settings: IdcSettings,
    instance: Arc<tokio::sync::OnceCell<Instance>>,
}

impl IdcClient {
    /// Builds the SDK clients from `config` (credentials from the default chain). Makes
    /// no call: see the module documentation.
    pub async fn connect(config: &AwsConfig) -> Result<Self, AwsError> {
        Self::connect_with(config, None).await
    }

    /// [`Self::connect`] with fixed credentials instead of the default chain (tools and
    /// tests that talk to an emulator).
    pub async fn connect_with(
        config: &AwsConfig,
        credentials: Option<aws_sdk_ssoadmin::config::Credentials>,
    ) -> Result<Self, AwsError> {
        let shared = shared_config(config, credentials).await;
        let instance = match (&config.instance_arn, &config.identity_store_id) {
            (Some(instance_arn), Some(identity_store_id)) => Some(Instance {
                instance_arn: instance_arn.clone(),
                identity_store_id: identity_store_id.clone(),
            }),
            _ => None,
        };
        Ok(IdcClient {
            sso: aws_sdk_ssoadmin::Client::new(&shared),
            ids: aws_sdk_identitystore::Client::new(&shared),
            limits: Limits::new(config.tps_limit),
            instance: Arc::new(match &instance {
                Some(i) => tokio::sync::OnceCell::new_with(Some(i.clone())),
                None => tokio::sync::OnceCell::new(),
            }),
            settings: IdcSettings {
                instance,
                run_as_attribute: config.run_as_attribute.clone(),
                max_attempts: config.max_attempts,
            },
        })
    }
}

/// The SDK configuration every jitgate AWS client starts from: `[aws]` region and
/// endpoint, credentials from the default chain (or `credentials`), the SDK's own
/// retries off (ours pace every attempt) and bounded timeouts.
pub(super) async fn shared_config(
    config: &AwsConfig,
    credentials: Option<aws_sdk_ssoadmin::config::Credentials>,
) -> aws_config::SdkConfig {
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
    loader.load().await
}

impl IdcClient {
    pub fn settings(&self) -> &IdcSettings {
        &self.settings
    }

    /// The IdC instance: configured, or discovered on first use.
    pub async fn instance(&self) -> Result<&Instance, AwsError> {
        self.instance
            .get_or_try_init(|| self.discover_instance())
            .await
    }

    async fn discover_instance(&self) -> Result<Instance, AwsError> {
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
        let found = Instance {
            instance_arn: instance.instance_arn().unwrap_or_default().to_owned(),
            identity_store_id: instance.identity_store_id().unwrap_or_default().to_owned(),
        };
        tracing::info!(instance_arn = %found.instance_arn, identity_store_id = %found.identity_store_id, "discovered IAM Identity Center instance");
        Ok(found)
    }

    /// Maps permission set names to ARNs for every permission set of the instance.
    pub async fn permission_sets_by_name(&self) -> Result<HashMap<String, String>, AwsError> {
        let instance_arn = self.instance().await?.instance_arn.clone();
        let mut arns = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .admin("ListPermissionSets", || {
                    self.sso
                        .list_permission_sets()
                        .instance_arn(&instance_arn)
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
                        .instance_arn(&instance_arn)
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
        identifier: AlternateIdentifier,
    ) -> Result<Option<String>, AwsError> {
        let identity_store_id = self.instance().await?.identity_store_id.clone();
        let result = self
            .directory("GetUserId", || {
                self.ids
                    .get_user_id()
                    .identity_store_id(&identity_store_id)
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
}

fn unique_attribute(path: &str, value: &str) -> Result<AlternateIdentifier, AwsError> {
    Ok(AlternateIdentifier::UniqueAttribute(
        UniqueAttribute::builder()
            .attribute_path(path)
            .attribute_value(Document::String(value.to_owned()))
            .build()
            .map_err(|e| AwsError::Setup(e.to_string()))?,
    ))
}

fn op_status(status: Option<&AccountAssignmentOperationStatus>) -> Result<StartedOp, AwsError> {
    let request_id = status
        .and_then(|s| s.request_id())
        .map(str::to_owned)
        .ok_or_else(|| AwsError::OperationFailed {
            operation: "AccountAssignment",
            reason: "IdC returned no request id to follow".into(),
        })?;
    Ok(StartedOp {
        request_id,
        status: status_of(status),
    })
}

fn status_of(status: Option<&AccountAssignmentOperationStatus>) -> OpStatus {
    match status.and_then(|s| s.status()) {
        Some(StatusValues::Succeeded) => OpStatus::Succeeded,
        Some(StatusValues::Failed) => OpStatus::Failed(
            status
                .and_then(|s| s.failure_reason())
                .unwrap_or("no reason given")
                .to_owned(),
        ),
        _ => OpStatus::InProgress,
    }
}

impl IdentityCenter for IdcClient {
    async fn find_user(&self, lookup: &IdcLookup) -> Result<Option<PrincipalId>, AwsError> {
        let identifier = match lookup {
            IdcLookup::UserName { user_name } => unique_attribute("userName", user_name)?,
            IdcLookup::Email { email } => unique_attribute("emails.value", email)?,
            IdcLookup::ExternalId { issuer, id } => AlternateIdentifier::ExternalId(
                ExternalId::builder()
                    .issuer(issuer)
                    .id(id)
                    .build()
                    .map_err(|e| AwsError::Setup(e.to_string()))?,
            ),
            IdcLookup::Unusable { .. } => return Ok(None),
        };
        Ok(self.user_id_by(identifier).await?.map(PrincipalId::new))
    }

    async fn set_run_as(
        &self,
        principal_id: &PrincipalId,
        os_user: Option<&str>,
    ) -> Result<(), AwsError> {
        let operation = AttributeOperation::builder()
            .attribute_path(&self.settings.run_as_attribute)
            .set_attribute_value(os_user.map(|u| Document::String(u.to_owned())))
            .build()
            .map_err(|e| AwsError::Setup(e.to_string()))?;
        let identity_store_id = self.instance().await?.identity_store_id.clone();
        self.directory("UpdateUser", || {
            self.ids
                .update_user()
                .identity_store_id(&identity_store_id)
                .user_id(principal_id.as_str())
                .operations(operation.clone())
                .send()
        })
        .await
        .map_err(AwsError::from)?;
        Ok(())
    }

    async fn start_create(&self, key: &AssignmentKey) -> Result<StartedOp, AwsError> {
        let instance_arn = self.instance().await?.instance_arn.clone();
        let out = self
            .admin("CreateAccountAssignment", || {
                self.sso
                    .create_account_assignment()
                    .instance_arn(&instance_arn)
                    .target_id(&key.account_id)
                    .target_type(TargetType::AwsAccount)
                    .permission_set_arn(key.permission_set_arn.as_str())
                    .principal_type(PrincipalType::User)
                    .principal_id(key.principal_id.as_str())
                    .send()
            })
            .await?;
        op_status(out.account_assignment_creation_status())
    }

    async fn start_delete(
        &self,
        key: &AssignmentKey,
        kind: PrincipalKind,
    ) -> Result<Option<StartedOp>, AwsError> {
        let principal_type = match kind {
            PrincipalKind::User => PrincipalType::User,
            PrincipalKind::Group => PrincipalType::Group,
        };
        let instance_arn = self.instance().await?.instance_arn.clone();
        let result = self
            .admin_raw("DeleteAccountAssignment", || {
                self.sso
                    .delete_account_assignment()
                    .instance_arn(&instance_arn)
                    .target_id(&key.account_id)
                    .target_type(TargetType::AwsAccount)
                    .permission_set_arn(key.permission_set_arn.as_str())
                    .principal_type(principal_type.clone())
                    .principal_id(key.principal_id.as_str())
                    .send()
            })
            .await;
        match result {
            Ok(out) => op_status(out.account_assignment_deletion_status()).map(Some),
            // Already gone (a previous attempt got through before a crash): done.
            Err(f) if f.code() == Some("ResourceNotFoundException") => Ok(None),
            Err(f) => Err(f.into()),
        }
    }

    async fn operation_status(&self, kind: OpKind, request_id: &str) -> Result<OpStatus, AwsError> {
        let instance_arn = self.instance().await?.instance_arn.clone();
        let status = match kind {
            OpKind::Create => self
                .admin("DescribeAccountAssignmentCreationStatus", || {
                    self.sso
                        .describe_account_assignment_creation_status()
                        .instance_arn(&instance_arn)
                        .account_assignment_creation_request_id(request_id)
                        .send()
                })
                .await?
                .account_assignment_creation_status()
                .cloned(),
            OpKind::Delete => self
                .admin("DescribeAccountAssignmentDeletionStatus", || {
                    self.sso
                        .describe_account_assignment_deletion_status()
                        .instance_arn(&instance_arn)
                        .account_assignment_deletion_request_id(request_id)
                        .send()
                })
                .await?
                .account_assignment_deletion_status()
                .cloned(),
        };
        Ok(status_of(status.as_ref()))
    }

    async fn user_name(&self, principal_id: &PrincipalId) -> Result<Option<String>, AwsError> {
        let identity_store_id = self.instance().await?.identity_store_id.clone();
        let result = self
            .directory("DescribeUser", || {
                self.ids
                    .describe_user()
                    .identity_store_id(&identity_store_id)
                    .user_id(principal_id.as_str())
                    .send()
            })
            .await;
        match result {
            Ok(out) => Ok(out.user_name().map(str::to_owned)),
            Err(f) if f.code() == Some("ResourceNotFoundException") => Ok(None),
            Err(f) => Err(f.into()),
        }
    }

    async fn permission_set_name(&self, arn: &str) -> Result<Option<String>, AwsError> {
        let instance_arn = self.instance().await?.instance_arn.clone();
        let result = self
            .admin_raw("DescribePermissionSet", || {
                self.sso
                    .describe_permission_set()
                    .instance_arn(&instance_arn)
                    .permission_set_arn(arn)
                    .send()
            })
            .await;
        match result {
            Ok(out) => Ok(out
                .permission_set()
                .and_then(|p| p.name())
                .map(str::to_owned)),
            Err(f) if f.code() == Some("ResourceNotFoundException") => Ok(None),
            Err(f) => Err(f.into()),
        }
    }

    async fn permission_sets(&self) -> Result<HashMap<String, String>, AwsError> {
        self.permission_sets_by_name().await
    }

    async fn assigned_principals(
        &self,
        account_id: &str,
        permission_set_arn: &str,
    ) -> Result<Vec<(PrincipalKind, String)>, AwsError> {
        let instance_arn = self.instance().await?.instance_arn.clone();
        let mut principals = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .admin("ListAccountAssignments", || {
                    self.sso
                        .list_account_assignments()
                        .instance_arn(&instance_arn)
                        .account_id(account_id)
                        .permission_set_arn(permission_set_arn)
                        .set_next_token(token.clone())
                        .send()
                })
                .await?;
            principals.extend(out.account_assignments().iter().filter_map(|a| {
                let kind = match a.principal_type()? {
                    PrincipalType::User => PrincipalKind::User,
                    PrincipalType::Group => PrincipalKind::Group,
                    _ => return None,
                };
                Some((kind, a.principal_id()?.to_owned()))
            }));
            token = out.next_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        Ok(principals)
    }
}
