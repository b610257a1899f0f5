//! Server config files for tests: [`ConfigBuilder`] renders a complete, valid config
//! (deploy/jitgate.example.toml's schema) with timings short enough for tests.

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::Value;
use toml::{Table, Value as Toml};

use super::free_port;

/// `sqlite://` URL of `jitgate.db` in `dir` (created by the server on first run).
pub fn sqlite_url_in(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("jitgate.db").display())
}

/// One `[[profiles]]` entry. `ProfileSpec { name: "x".into(), ..Default::default() }`
/// starts from the example's `prod-web` profile.
#[derive(Debug, Clone)]
pub struct ProfileSpec {
    pub name: String,
    pub description: String,
    pub accounts: Vec<String>,
    /// Name or ARN; `JitSsm-{os_user}` in session-document mode.
    pub permission_set: String,
    /// `principal-tag` or `session-document`.
    pub run_as_mode: String,
    pub allowed_os_users: Vec<String>,
    pub max_duration: String,
    pub requester_groups: Vec<String>,
    pub approver_groups: Vec<String>,
    /// Individual approvers (user ids).
    pub approvers: Vec<String>,
    pub approvals_required: u32,
    pub auto_approve: bool,
    pub approval_timeout: String,
}

impl Default for ProfileSpec {
    fn default() -> Self {
        Self {
            name: "prod-web".into(),
            description: String::new(),
            accounts: vec!["111111111111".into()],
            permission_set: "JitSsm".into(),
            run_as_mode: "principal-tag".into(),
            allowed_os_users: vec!["app".into(), "readonly".into()],
            max_duration: "4h".into(),
            requester_groups: vec!["developers".into()],
            approver_groups: vec!["sre".into()],
            approvers: Vec::new(),
            approvals_required: 1,
            auto_approve: false,
            approval_timeout: "1h".into(),
        }
    }
}

impl ProfileSpec {
    fn to_toml(&self) -> Table {
        let mut t = Table::new();
        t.insert("name".into(), self.name.clone().into());
        if !self.description.is_empty() {
            t.insert("description".into(), self.description.clone().into());
        }
        t.insert("accounts".into(), strings(&self.accounts));
        t.insert("permission_set".into(), self.permission_set.clone().into());
        t.insert("run_as_mode".into(), self.run_as_mode.clone().into());
        t.insert("allowed_os_users".into(), strings(&self.allowed_os_users));
        t.insert("max_duration".into(), self.max_duration.clone().into());
        t.insert("requester_groups".into(), strings(&self.requester_groups));
        t.insert("approver_groups".into(), strings(&self.approver_groups));
        if !self.approvers.is_empty() {
            t.insert("approvers".into(), strings(&self.approvers));
        }
        t.insert(
            "approvals_required".into(),
            i64::from(self.approvals_required).into(),
        );
        t.insert("auto_approve".into(), self.auto_approve.into());
        t.insert(
            "approval_timeout".into(),
            self.approval_timeout.clone().into(),
        );
        t
    }
}

/// Builds a server config. Defaults: listen on a free port, 5 database connections,
/// scheduler polling every 250ms with a 10s lease, 4 workers, drift "report", the sweep
/// every minute, admins in `jitgate-admins`, and the default [`ProfileSpec`] when no
/// profile is added.
#[derive(Debug, Clone)]
pub struct ConfigBuilder {
    listen_port: u16,
    database_url: String,
    max_connections: u32,
    aws_endpoint: String,
    instance_arn: String,
    identity_store_id: String,
    run_as_attribute: String,
    tps_limit: u32,
    max_outstanding: u32,
    max_attempts: u32,
    operation_timeout: String,
    sweep: String,
    poll_interval: String,
    lease: String,
    workers: u32,
    drift: String,
    grant_attempts: u32,
    admin_groups: Vec<String>,
    profiles: Vec<ProfileSpec>,
    raw: Vec<String>,
}

impl ConfigBuilder {
    /// A config for the database at `database_url` and the AWS peer at `aws_endpoint`,
    /// listening on a free port.
    pub fn new(
        database_url: &str,
        aws_endpoint: &str,
        instance_arn: &str,
        identity_store_id: &str,
    ) -> Result<Self> {
        Ok(Self {
            listen_port: free_port()?,
            database_url: database_url.into(),
            max_connections: 5,
            aws_endpoint: aws_endpoint.into(),
            instance_arn: instance_arn.into(),
            identity_store_id: identity_store_id.into(),
            run_as_attribute: "nickName".into(),
            tps_limit: 20,
            max_outstanding: 10,
            max_attempts: 6,
            operation_timeout: "1m".into(),
            sweep: "0 * * * * *".into(),
            poll_interval: "250ms".into(),
            lease: "10s".into(),
            workers: 4,
            drift: "report".into(),
            grant_attempts: 5,
            admin_groups: vec!["jitgate-admins".into()],
            profiles: Vec::new(),
            raw: Vec::new(),
        })
    }

    /// [`Self::new`] with the instance and identity store from [`super::AwsPeer::seed`]'s answer.
    pub fn from_seed(database_url: &str, aws_endpoint: &str, seeded: &Value) -> Result<Self> {
        let field = |name: &str| {
            seeded[name]
                .as_str()
                .with_context(|| format!("seed answer has no {name}: {seeded}"))
        };
        Self::new(
            database_url,
            aws_endpoint,
            field("instance_arn")?,
            field("identity_store_id")?,
        )
    }

    /// Adds a `[[profiles]]` entry.
    pub fn profile(mut self, profile: ProfileSpec) -> Self {
        self.profiles.push(profile);
        self
    }

    /// `[scheduler] poll_interval`, e.g. "200ms".
    pub fn scheduler_poll(mut self, interval: &str) -> Self {
        self.poll_interval = interval.into();
        self
    }

    /// `[scheduler] lease`, e.g. "3s".
    pub fn lease(mut self, lease: &str) -> Self {
        self.lease = lease.into();
        self
    }

    /// `[scheduler] sweep`, a cron expression with seconds first ("*/2 * * * * *").
    pub fn sweep(mut self, cron: &str) -> Self {
        self.sweep = cron.into();
        self
    }

    /// `[scheduler] drift`: "report" or "remove".
    pub fn drift(mut self, action: &str) -> Self {
        self.drift = action.into();
        self
    }

    /// `[scheduler] workers`.
    pub fn workers(mut self, workers: u32) -> Self {
        self.workers = workers;
        self
    }

    /// `[scheduler] grant_attempts`.
    pub fn grant_attempts(mut self, attempts: u32) -> Self {
        self.grant_attempts = attempts;
        self
    }

    /// `[aws] tps_limit`.
    pub fn tps(mut self, tps: u32) -> Self {
        self.tps_limit = tps;
        self
    }

    /// `[aws] max_outstanding_assignments`.
    pub fn max_outstanding(mut self, outstanding: u32) -> Self {
        self.max_outstanding = outstanding;
        self
    }

    /// `[aws] max_attempts`.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// `[aws] operation_timeout`, e.g. "10s".
    pub fn operation_timeout(mut self, timeout: &str) -> Self {
        self.operation_timeout = timeout.into();
        self
    }

    /// `[database] max_connections`.
    pub fn max_connections(mut self, connections: u32) -> Self {
        self.max_connections = connections;
        self
    }

    /// `[auth] admin_groups`.
    pub fn admin_groups(mut self, groups: &[&str]) -> Self {
        self.admin_groups = groups.iter().map(|g| g.to_string()).collect();
        self
    }

    /// Extra TOML merged into the rendered config: tables merge key by key, arrays (such as
    /// `[[profiles]]`) are appended to, other values replace. Text that does not parse is
    /// appended verbatim, so the server names the mistake (for tests of bad configs).
    pub fn raw(mut self, toml_text: &str) -> Self {
        self.raw.push(toml_text.into());
        self
    }

    /// The port `[server] listen` binds on 127.0.0.1.
    pub fn listen_port(&self) -> u16 {
        self.listen_port
    }

    /// The config as TOML text.
    pub fn render(&self) -> String {
        let mut config = self.to_toml();
        let mut unparsed = Vec::new();
        for text in &self.raw {
            match text.parse::<Table>() {
                Ok(extra) => merge(&mut config, extra),
                Err(_) => unparsed.push(text.as_str()),
            }
        }
        let mut text = config.to_string();
        for extra in unparsed {
            text.push('\n');
            text.push_str(extra);
            text.push('\n');
        }
        text
    }

    fn to_toml(&self) -> Table {
        let mut server = Table::new();
        server.insert(
            "listen".into(),
            format!("127.0.0.1:{}", self.listen_port).into(),
        );

        let mut database = Table::new();
        database.insert("url".into(), self.database_url.clone().into());
        database.insert(
            "max_connections".into(),
            i64::from(self.max_connections).into(),
        );

        let mut aws = Table::new();
        aws.insert("region".into(), "us-east-1".into());
        aws.insert("instance_arn".into(), self.instance_arn.clone().into());
        aws.insert(
            "identity_store_id".into(),
            self.identity_store_id.clone().into(),
        );
        aws.insert("endpoint_url".into(), self.aws_endpoint.clone().into());
        aws.insert(
            "run_as_attribute".into(),
            self.run_as_attribute.clone().into(),
        );
        aws.insert("tps_limit".into(), i64::from(self.tps_limit).into());
        aws.insert(
            "max_outstanding_assignments".into(),
            i64::from(self.max_outstanding).into(),
        );
        aws.insert("max_attempts".into(), i64::from(self.max_attempts).into());
        aws.insert(
            "operation_timeout".into(),
            self.operation_timeout.clone().into(),
        );

        let mut scheduler = Table::new();
        scheduler.insert("sweep".into(), self.sweep.clone().into());
        scheduler.insert("poll_interval".into(), self.poll_interval.clone().into());
        scheduler.insert("lease".into(), self.lease.clone().into());
        scheduler.insert("workers".into(), i64::from(self.workers).into());
        scheduler.insert("drift".into(), self.drift.clone().into());
        scheduler.insert(
            "grant_attempts".into(),
            i64::from(self.grant_attempts).into(),
        );

        let mut auth = Table::new();
        auth.insert("admin_groups".into(), strings(&self.admin_groups));

        let defaults = [ProfileSpec::default()];
        let profiles = if self.profiles.is_empty() {
            &defaults[..]
        } else {
            &self.profiles[..]
        };
        let profiles = profiles.iter().map(|p| Toml::Table(p.to_toml())).collect();

        let mut config = Table::new();
        config.insert("server".into(), Toml::Table(server));
        config.insert("database".into(), Toml::Table(database));
        config.insert("aws".into(), Toml::Table(aws));
        config.insert("scheduler".into(), Toml::Table(scheduler));
        config.insert("auth".into(), Toml::Table(auth));
        config.insert("profiles".into(), Toml::Array(profiles));
        config
    }
}

fn strings(items: &[String]) -> Toml {
    Toml::Array(items.iter().cloned().map(Toml::String).collect())
}

/// Merges `extra` into `base`: tables recursively, arrays appended, anything else replaced.
fn merge(base: &mut Table, extra: Table) {
    for (key, value) in extra {
        match (base.get_mut(&key), value) {
            (Some(Toml::Table(into)), Toml::Table(from)) => merge(into, from),
            (Some(Toml::Array(into)), Toml::Array(from)) => into.extend(from),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}
