//! The one typed configuration of a jitgate server: read once at start from a TOML file,
//! overridden by `JITGATE_*` environment variables, validated as a whole so that every
//! mistake is reported at once with the key that holds it.
//!
//! Submodules: `load` (file + environment → [`Config`]), `validate` (cross-field rules),
//! `human` (durations such as `8h` and redacted secrets).

mod human;
mod load;
mod validate;

pub use human::{HumanDuration, Secret};
pub use load::{ConfigError, Problem, load_from_file, load_from_str};
pub use validate::parse_cron;

use serde::{Deserialize, Serialize};

use crate::domain::{AccountId, OsUser, RunAsMode};

/// Everything a server process needs to know, as read from its config file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub database: DatabaseConfig,
    #[serde(default)]
    pub aws: AwsConfig,
    #[serde(default)]
    pub scheduler: SchedulerConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub audit: AuditConfig,
    /// Web sign-in; without it the server runs the broker and health endpoints only.
    pub oidc: Option<OidcConfig>,
    /// Approvals from Slack; without it nothing of Slack runs.
    pub slack: Option<SlackConfig>,
    #[serde(default)]
    pub profiles: Vec<ProfileConfig>,
}

/// `[server]`: where the HTTP listener binds and how people reach it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Socket address of the HTTP listener.
    pub listen: String,
    /// The URL people use to reach jitgate (behind any proxy): the OIDC redirect URI is
    /// built from it, and cookies are `Secure` when it is https.
    pub public_url: String,
    /// A connection that has not sent a request's headers within this long is closed
    /// (slow or idle clients cannot hold connections open).
    pub header_read_timeout: HumanDuration,
    /// A request not answered within this long gets 503 (and its work is rolled back).
    pub request_timeout: HumanDuration,
    /// Connections served at once; more are refused at once rather than left waiting.
    pub max_connections: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            public_url: "http://127.0.0.1:8080".into(),
            header_read_timeout: HumanDuration::from_secs(10),
            request_timeout: HumanDuration::from_secs(30),
            max_connections: 2048,
        }
    }
}

/// `[oidc]`: the company's OpenID Connect provider.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// Issuer URL; the provider's metadata is discovered from it.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Secret,
    /// Claim (in the ID token or userinfo) that lists the person's groups.
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// Scopes asked for besides `openid`.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
}

fn default_groups_claim() -> String {
    "groups".into()
}

fn default_scopes() -> Vec<String> {
    vec!["email".into(), "profile".into(), "groups".into()]
}

/// `[slack]`: approve from Slack. Interactions arrive over Socket Mode (a WebSocket
/// jitgate opens, the default: nothing inbound) or HTTP (`POST /slack/interactions`,
/// signed by Slack); the clicking Slack member is matched to a jitgate user by the link
/// they made on `/settings/slack` and/or the email Slack has for them (`user_match`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// How Slack's interactions reach jitgate.
    #[serde(default)]
    pub mode: SlackMode,
    /// The app-level token (`xapp-...`, scope `connections:write`) Socket Mode opens its
    /// connections with.
    #[serde(default)]
    pub app_token: Option<Secret>,
    /// The app's signing secret (HTTP mode): every interaction's `X-Slack-Signature` is
    /// checked with it before anything in it is read.
    #[serde(default)]
    pub signing_secret: Option<Secret>,
    /// How a clicking Slack member is known as a jitgate user.
    #[serde(default)]
    pub user_match: UserMatch,
    /// The bot token (`xoxb-...`) for the Web API calls.
    pub bot_token: Secret,
    /// Slack's Web API (tests point it at the Slack peer).
    #[serde(default = "default_slack_api")]
    pub api_base_url: String,
    /// Where new requests are announced (a channel id like C0123456789, or #name) when
    /// their profile names no `slack_channel`; neither: no message.
    #[serde(default)]
    pub channel: Option<String>,
    /// How long before a grant ends its requester gets an "expiring soon" DM (grants
    /// shorter than this get none).
    #[serde(default = "default_expiring_soon")]
    pub expiring_soon: HumanDuration,
    /// A request nobody decided for this long is re-announced to the approvers (a reply
    /// in its message's thread, shown in the channel); absent: no reminders.
    #[serde(default)]
    pub remind_after: Option<HumanDuration>,
    /// Where a request still undecided after twice `remind_after` is posted.
    #[serde(default)]
    pub escalation_channel: Option<String>,
}

/// `[slack] mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SlackMode {
    /// jitgate holds a WebSocket to Slack (`apps.connections.open`): no inbound exposure.
    #[default]
    Socket,
    /// Slack posts to `POST /slack/interactions` on the public URL.
    Http,
}

/// `[slack] user_match`: who a Slack member is to jitgate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UserMatch {
    /// Only a link the person made on `/settings/slack` (proved by a code sent to them
    /// in Slack).
    #[default]
    Link,
    /// The email Slack has for the member (`users.info`), equal to one jitgate user's.
    Email,
    /// The link if there is one, else the email.
    Both,
}

impl UserMatch {
    pub fn by_link(self) -> bool {
        matches!(self, UserMatch::Link | UserMatch::Both)
    }

    pub fn by_email(self) -> bool {
        matches!(self, UserMatch::Email | UserMatch::Both)
    }
}

fn default_expiring_soon() -> HumanDuration {
    HumanDuration::from_secs(600)
}

fn default_slack_api() -> String {
    "https://slack.com/api".into()
}

/// `[database]`: SQLite (embedded default) or Postgres (several replicas).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://FILE` (created on first run) or `postgres://USER:PASSWORD@HOST/DB`.
    pub url: Secret,
    /// Upper bound of the connection pool (SQLite in-memory databases always use one).
    pub max_connections: u32,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: Secret::new("sqlite://jitgate.db"),
            max_connections: 10,
        }
    }
}

/// `[aws]`: how to reach IAM Identity Center and the identity store.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AwsConfig {
    /// Region of the IAM Identity Center instance.
    pub region: String,
    /// IdC instance ARN; discovered with `sso-admin:ListInstances` when absent.
    pub instance_arn: Option<String>,
    /// Identity store id; discovered with `ListInstances` when absent.
    pub identity_store_id: Option<String>,
    /// Endpoint for emulators (moto); absent means the real AWS endpoints.
    pub endpoint_url: Option<String>,
    /// Identity-store user attribute that IdC maps to the `SSMSessionRunAs` principal tag
    /// ("attributes for access control"); used by profiles in `principal-tag` mode.
    pub run_as_attribute: String,
    /// Client-side ceiling on IdC admin API calls per second (the AWS quota is 20, shared
    /// by every caller in the account: give each of N replicas 20/N).
    pub tps_limit: u32,
    /// Ceiling on account-assignment operations in progress at once, for the whole
    /// account (counted in the database across replicas; IdC allows about 10).
    pub max_outstanding_assignments: u32,
    /// Attempts per AWS call, with exponential backoff and jitter on throttling and 5xx.
    pub max_attempts: u32,
    /// How long to poll an assignment operation before treating it as failed.
    pub operation_timeout: HumanDuration,
    /// The role jitgate assumes in each member account to end live Session Manager
    /// sessions when a grant ends (`ssm:DescribeSessions`, `ssm:TerminateSession`):
    /// `arn:aws:iam::<account>:role/<member_role_name>` (deploy/aws/README.md).
    pub member_role_name: String,
    /// End a grant's live Session Manager sessions when it ends. Turning it off leaves
    /// them running until they end on their own (AWS's own behaviour).
    pub end_sessions: bool,
    /// How often the instances in the profiles' scope are looked up again (through the
    /// member role: `tag:GetResources`, `ssm:DescribeInstanceInformation`).
    pub inventory_refresh: HumanDuration,
    /// The AWS access portal URL of the IAM Identity Center instance
    /// (`https://d-xxxxxxxxxx.awsapps.com/start`): `jitgate ssh` signs people in to it
    /// for the grant's role credentials. Without it `jitgate ssh` cannot connect.
    pub sso_start_url: Option<String>,
    /// The region of the IdC sign-in (sso-oidc and the portal); default: `region`.
    pub sso_region: Option<String>,
    /// The `sso-session` name people use with the AWS CLI (`[sso-session NAME]`): the
    /// CLI's token cache is keyed by it, so `aws sso login` and `jitgate ssh` share one
    /// sign-in. Absent: keyed by the start URL, as AWS CLI profiles without a session.
    pub sso_session: Option<String>,
}

impl Default for AwsConfig {
    fn default() -> Self {
        Self {
            region: "us-east-1".into(),
            instance_arn: None,
            identity_store_id: None,
            endpoint_url: None,
            run_as_attribute: "nickName".into(),
            tps_limit: 20,
            max_outstanding_assignments: 10,
            max_attempts: 6,
            operation_timeout: HumanDuration::from_secs(300),
            member_role_name: "JitGateMember".into(),
            end_sessions: true,
            inventory_refresh: HumanDuration::from_secs(300),
            sso_start_url: None,
            sso_region: None,
            sso_session: None,
        }
    }
}

/// `[scheduler]`: expiry timers, the cron sweep and work leases.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerConfig {
    /// Cron expression (seconds first, 6 or 7 fields) of the sweep that lapses unanswered
    /// requests, expires anything a timer missed and checks drift.
    pub sweep: String,
    /// How often to look for work that another process (or a restart) left behind.
    pub poll_interval: HumanDuration,
    /// How long a claimed piece of work stays ours without renewal (a heartbeat renews it
    /// every third of this while the work runs); a dead replica's work is taken over by
    /// another after this. A restarted process takes back its own at once (`node_id`).
    pub lease: HumanDuration,
    /// This server's identity as a lease holder, stable across restarts: at start the
    /// server releases every lease held under it, since the process that took them is
    /// gone. Default: host name, listen address and database location. Give each replica
    /// its own; two live processes must never share one.
    pub node_id: Option<String>,
    /// Principals converged concurrently by this process.
    pub workers: u32,
    /// What to do with assignments on jitgate's permission sets that no grant wants.
    pub drift: DriftAction,
    /// Provisioning attempts before an approved request is marked failed.
    pub grant_attempts: u32,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            sweep: "0 * * * * *".into(),
            poll_interval: HumanDuration::from_secs(2),
            lease: HumanDuration::from_secs(10),
            node_id: None,
            workers: 16,
            drift: DriftAction::Report,
            grant_attempts: 5,
        }
    }
}

/// What the sweep does with drift (assignments on managed permission sets nobody wants).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DriftAction {
    /// Audit and log it, leave AWS alone.
    Report,
    /// Audit it and delete the assignment.
    Remove,
}

/// `[audit]`: the key of the audit chain. Give keys through the environment
/// (`JITGATE_AUDIT_KEY`, `JITGATE_AUDIT_PREVIOUS_KEYS`) or a secret store, never in a file
/// next to the database: whoever holds the key and the database can rewrite history.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// The HMAC key new events are signed with (required; at least 32 characters,
    /// e.g. `openssl rand -hex 32`).
    pub key: Option<Secret>,
    /// Keys used before a rotation, comma-separated: `audit verify` needs them for the
    /// events they signed; the server itself does not.
    pub previous_keys: Option<Secret>,
    /// How often the chain head (last event number and hash) is logged, so that an
    /// export or the database can be checked against the log kept elsewhere.
    pub head_log_every: HumanDuration,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            key: None,
            previous_keys: None,
            head_log_every: HumanDuration::from_secs(300),
        }
    }
}

impl AuditConfig {
    /// The keys as the audit trail uses them.
    pub fn keys(&self) -> crate::audit::AuditKeys {
        crate::audit::AuditKeys::new(
            self.key.as_ref().map(Secret::expose),
            self.previous_keys.as_ref().map(Secret::expose),
        )
    }
}

/// `[auth]`: administrators and web sessions.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// OIDC groups whose members administer jitgate (all grants, audit, cancel and
    /// revoke any).
    pub admin_groups: Vec<String>,
    /// Whether admins also approve every profile's requests (never their own). Off by
    /// default: approving is the approver groups' power, and an admin who should approve
    /// is put in one.
    pub admins_approve: bool,
    /// A web session ends after this long without a request.
    pub session_idle: HumanDuration,
    /// A web session ends this long after sign-in, however active.
    pub session_max: HumanDuration,
    /// Open (pending, approved or active) requests one person may have at once: beyond
    /// it they must end some first (no one floods the approvers).
    pub max_open_requests: u32,
    /// Live API tokens one person may hold at once.
    pub max_tokens: u32,
    /// How old a person's groups may be when a request (web or API token) uses them:
    /// older ones are confirmed again with the provider (refresh token, then userinfo),
    /// or, when the provider gave no refresh token, not used until the next sign-in.
    pub claims_max_age: HumanDuration,
    /// How a person is matched to their IAM Identity Center user: `verified_email` (the
    /// email claim, only when `email_verified` is true), `claim` (the IdC userName equals
    /// the claim named by `idc_match_claim`) or `external_id` (the IdC user's external
    /// id, as SCIM provisioning sets it, is `idc_external_id_issuer` + the OIDC subject).
    /// The user found first is bound to the person; a later sign-in that would find
    /// another is refused until an admin re-binds (`jitgate-server identity rebind`).
    pub idc_match: IdcMatch,
    /// The claim whose value is the IdC userName, with `idc_match = "claim"`. Name one the
    /// provider sets and people cannot change themselves.
    pub idc_match_claim: Option<String>,
    /// The issuer of the IdC users' external ids, with `idc_match = "external_id"` (as
    /// the SCIM provisioning from the identity provider records it).
    pub idc_external_id_issuer: Option<String>,
    /// How recent a sign-in must be to approve for a profile with `step_up`: the
    /// approver signs in again (the provider asked for `prompt=login`, `max_age`) when
    /// theirs is older.
    pub step_up_max_age: HumanDuration,
}

/// See [`AuthConfig::idc_match`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IdcMatch {
    #[default]
    VerifiedEmail,
    Claim,
    ExternalId,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            admin_groups: Vec::new(),
            admins_approve: false,
            session_idle: HumanDuration::from_secs(8 * 3600),
            session_max: HumanDuration::from_secs(24 * 3600),
            max_open_requests: 50,
            max_tokens: 20,
            claims_max_age: HumanDuration::from_secs(15 * 60),
            idc_match: IdcMatch::VerifiedEmail,
            idc_match_claim: None,
            idc_external_id_issuer: None,
            step_up_max_age: HumanDuration::from_secs(5 * 60),
        }
    }
}

/// `[[profiles]]`: one thing people can request.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileConfig {
    /// Unique name, used in requests and URLs.
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// AWS accounts the grant may be for.
    pub accounts: Vec<AccountId>,
    /// Permission set carrying the SSM role: a name or an ARN. In `session-document` mode
    /// a name template containing `{os_user}` (one permission set per OS user).
    pub permission_set: String,
    #[serde(default = "default_run_as_mode")]
    pub run_as_mode: RunAsMode,
    pub allowed_os_users: Vec<OsUser>,
    /// Shortest grant (and extension) one may ask for: a grant of a few seconds would
    /// create and delete an assignment for nothing.
    #[serde(default = "default_min_duration")]
    pub min_duration: HumanDuration,
    pub max_duration: HumanDuration,
    pub requester_groups: Vec<String>,
    #[serde(default)]
    pub approver_groups: Vec<String>,
    /// Individual approvers (user ids), in addition to `approver_groups`.
    #[serde(default)]
    pub approvers: Vec<String>,
    #[serde(default = "one")]
    pub approvals_required: u32,
    #[serde(default)]
    pub auto_approve: bool,
    #[serde(default = "default_approval_timeout")]
    pub approval_timeout: HumanDuration,
    /// The regions the profile's instances run in: where live sessions are looked for
    /// and ended when a grant ends. Empty means `[aws] region` only.
    #[serde(default)]
    pub regions: Vec<String>,
    /// The tags an instance must carry for the profile's grants to reach it (the
    /// permission set's policy should allow `ssm:StartSession` on exactly these), e.g.
    /// `{ env = "prod" }`. Empty: every instance in the accounts and regions.
    #[serde(default)]
    pub targets: std::collections::BTreeMap<String, String>,
    /// The Slack channel this profile's requests are announced in (else `[slack] channel`).
    #[serde(default)]
    pub slack_channel: Option<String>,
    /// Approving needs a fresh sign-in at the identity provider, on the web (within
    /// `[auth] step_up_max_age`): Slack shows a "Review and approve" link instead of an
    /// Approve button, and API tokens (so the CLI) cannot approve.
    #[serde(default)]
    pub step_up: bool,
}

fn default_min_duration() -> HumanDuration {
    HumanDuration::from_secs(60)
}

fn default_run_as_mode() -> RunAsMode {
    RunAsMode::PrincipalTag
}

fn one() -> u32 {
    1
}

fn default_approval_timeout() -> HumanDuration {
    HumanDuration::from_secs(3600)
}

/// The placeholder a `session-document` permission set name carries.
pub const OS_USER_PLACEHOLDER: &str = "{os_user}";

impl Config {
    /// Who may do what, as configured (the application layer's rules).
    pub fn rules(&self) -> jitgate_core::app::Rules {
        jitgate_core::app::Rules::new(
            self.auth.admin_groups.clone(),
            self.auth.admins_approve,
            self.profiles.iter().map(ProfileConfig::policy).collect(),
        )
        .with_step_up_max_age(self.auth.step_up_max_age.get())
    }

    /// This process's node identity for leases: `[scheduler] node_id`, else
    /// `<host name>/<listen address>/<database location>`, which a restart with the same
    /// config on the same host keeps and which two replicas on one host (different listen
    /// addresses) never share. `#` separates the node from the per-process part of a lease
    /// owner, so it is replaced here (and refused in a configured id).
    pub fn node_id(&self) -> String {
        if let Some(id) = &self.scheduler.node_id {
            return id.clone();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into());
        let database = database_location(self.database.url.expose());
        format!("{host}/{}/{database}", self.server.listen).replace('#', "_")
    }

    /// The profile called `name`, if configured.
    pub fn profile(&self, name: &str) -> Option<&ProfileConfig> {
        self.profiles.iter().find(|p| p.name == name)
    }
}

impl ProfileConfig {
    /// The domain's view of this profile.
    pub fn policy(&self) -> crate::domain::Policy {
        crate::domain::Policy {
            profile: self.name.clone(),
            accounts: self.accounts.clone(),
            allowed_os_users: self.allowed_os_users.clone(),
            min_duration: self.min_duration.get(),
            max_duration: self.max_duration.get(),
            requester_groups: self.requester_groups.clone(),
            approver_groups: self.approver_groups.clone(),
            approvers: self
                .approvers
                .iter()
                .map(crate::domain::UserId::new)
                .collect(),
            approvals_required: self.approvals_required,
            auto_approve: self.auto_approve,
            approval_timeout: self.approval_timeout.get(),
            run_as_mode: self.run_as_mode,
            step_up: self.step_up,
        }
    }

    /// Which instances the profile's grants reach, with `default_region` when the
    /// profile names no region.
    pub fn target_scope(&self, default_region: &str) -> crate::domain::TargetScope {
        crate::domain::TargetScope {
            profile: self.name.clone(),
            accounts: self.accounts.clone(),
            regions: self
                .regions_or(default_region)
                .into_iter()
                .map(str::to_owned)
                .collect(),
            tags: self.targets.clone(),
        }
    }

    /// The regions of the profile's instances (`regions`, else `default`).
    pub fn regions_or<'a>(&'a self, default: &'a str) -> Vec<&'a str> {
        if self.regions.is_empty() {
            vec![default]
        } else {
            self.regions.iter().map(String::as_str).collect()
        }
    }

    /// The permission set (name or ARN) a grant for `os_user` uses.
    pub fn permission_set_for(&self, os_user: &OsUser) -> String {
        self.permission_set
            .replace(OS_USER_PLACEHOLDER, os_user.as_str())
    }
}

/// Where a database URL points, without credentials or options: the SQLite file (made
/// absolute when it exists, so a restart from another directory keeps it) or the Postgres
/// `host:port/database`.
fn database_location(url: &str) -> String {
    if let Some(path) = jitgate_core::parse::sqlite_path(url) {
        return std::fs::canonicalize(path)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| path.to_owned());
    }
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    rest.split(['?', '#']).next().unwrap_or(rest).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_location_drops_credentials_and_options() {
        assert_eq!(
            database_location("postgres://jit:s3cret@db.internal:5432/jitgate?sslmode=require"),
            "db.internal:5432/jitgate"
        );
        assert_eq!(
            database_location("sqlite:///no/such/dir/jitgate.db"),
            "/no/such/dir/jitgate.db"
        );
    }
}
