//! Server config files for tests: [`ConfigBuilder`] renders a complete, valid config
//! (deploy/jitgate.example.toml's schema) that keeps the shipped defaults.

use std::path::Path;

use anyhow::Result;
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
    /// `min_duration`: tests watch grants expire within seconds, so the default here is
    /// 1s (users' default, 1m, is checked by the domain's and the API's tests).
    pub min_duration: String,
    pub max_duration: String,
    pub requester_groups: Vec<String>,
    pub approver_groups: Vec<String>,
    /// Individual approvers (user ids).
    pub approvers: Vec<String>,
    pub approvals_required: u32,
    pub auto_approve: bool,
    pub approval_timeout: String,
    /// Tags an instance must carry for the grants to reach it; empty: any instance.
    pub targets: Vec<(String, String)>,
    /// The Slack channel its requests are announced in.
    pub slack_channel: Option<String>,
    /// Approvals need a fresh sign-in on the web.
    pub step_up: bool,
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
            min_duration: "1s".into(),
            max_duration: "4h".into(),
            requester_groups: vec!["developers".into()],
            approver_groups: vec!["sre".into()],
            approvers: Vec::new(),
            approvals_required: 1,
            auto_approve: false,
            approval_timeout: "1h".into(),
            targets: Vec::new(),
            slack_channel: None,
            step_up: false,
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
        t.insert("min_duration".into(), self.min_duration.clone().into());
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
        if !self.targets.is_empty() {
            let tags: Table = self
                .targets
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().into()))
                .collect();
            t.insert("targets".into(), tags.into());
        }
        if let Some(channel) = &self.slack_channel {
            t.insert("slack_channel".into(), channel.clone().into());
        }
        if self.step_up {
            t.insert("step_up".into(), true.into());
        }
        t
    }
}

/// Builds a server config. It sets only what a test needs to reach its peers (listen
/// address, database, AWS endpoint, admin group, profiles): everything else is the
/// shipped default (lease, poll interval, workers, operation timeout, limits, discovery
/// of the IdC instance), so tests run what users run. A test that changes a default
/// through a setter says why.
#[derive(Debug, Clone)]
pub struct ConfigBuilder {
    listen_port: u16,
    database_url: String,
    aws_endpoint: String,
    /// `[aws]` and `[scheduler]` keys a test set.
    aws: Table,
    scheduler: Table,
    admin_groups: Vec<String>,
    profiles: Vec<ProfileSpec>,
    raw: Vec<String>,
}

impl ConfigBuilder {
    /// A config for the database at `database_url` and the AWS peer at `aws_endpoint`,
    /// listening on a free port.
    pub fn new(database_url: &str, aws_endpoint: &str) -> Result<Self> {
        Ok(Self {
            listen_port: free_port()?,
            database_url: database_url.into(),
            aws_endpoint: aws_endpoint.into(),
            aws: Table::new(),
            scheduler: Table::new(),
            admin_groups: vec!["jitgate-admins".into()],
            profiles: Vec::new(),
            raw: Vec::new(),
        })
    }

    /// [`Self::new`]; the seed answer is not needed (the server discovers the instance
    /// as it does by default) and is taken for symmetry with the world's set-up.
    pub fn from_seed(database_url: &str, aws_endpoint: &str, _seeded: &Value) -> Result<Self> {
        Self::new(database_url, aws_endpoint)
    }

    /// Adds a `[[profiles]]` entry.
    pub fn profile(mut self, profile: ProfileSpec) -> Self {
        self.profiles.push(profile);
        self
    }

    /// `[scheduler] poll_interval`, e.g. "200ms".
    pub fn scheduler_poll(self, interval: &str) -> Self {
        self.scheduler_key("poll_interval", interval)
    }

    /// `[scheduler] lease`, e.g. "3s".
    pub fn lease(self, lease: &str) -> Self {
        self.scheduler_key("lease", lease)
    }

    /// `[scheduler] sweep`, a cron expression with seconds first ("*/2 * * * * *").
    pub fn sweep(self, cron: &str) -> Self {
        self.scheduler_key("sweep", cron)
    }

    /// `[scheduler] drift`: "report" or "remove".
    pub fn drift(self, action: &str) -> Self {
        self.scheduler_key("drift", action)
    }

    /// `[scheduler] workers`.
    pub fn workers(mut self, workers: u32) -> Self {
        self.scheduler
            .insert("workers".into(), i64::from(workers).into());
        self
    }

    /// `[scheduler] grant_attempts`.
    pub fn grant_attempts(mut self, attempts: u32) -> Self {
        self.scheduler
            .insert("grant_attempts".into(), i64::from(attempts).into());
        self
    }

    /// `[aws] tps_limit`.
    pub fn tps(mut self, tps: u32) -> Self {
        self.aws.insert("tps_limit".into(), i64::from(tps).into());
        self
    }

    /// `[aws] max_outstanding_assignments`.
    pub fn max_outstanding(mut self, outstanding: u32) -> Self {
        self.aws.insert(
            "max_outstanding_assignments".into(),
            i64::from(outstanding).into(),
        );
        self
    }

    /// `[aws] max_attempts`.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.aws
            .insert("max_attempts".into(), i64::from(attempts).into());
        self
    }

    /// `[aws] operation_timeout`, e.g. "10s".
    pub fn operation_timeout(mut self, timeout: &str) -> Self {
        self.aws
            .insert("operation_timeout".into(), timeout.to_owned().into());
        self
    }

    /// `[auth] admin_groups`.
    pub fn admin_groups(mut self, groups: &[&str]) -> Self {
        self.admin_groups = groups.iter().map(|g| g.to_string()).collect();
        self
    }

    fn scheduler_key(mut self, key: &str, value: &str) -> Self {
        self.scheduler.insert(key.into(), value.to_owned().into());
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

        let mut aws = self.aws.clone();
        aws.insert("region".into(), "us-east-1".into());
        aws.insert("endpoint_url".into(), self.aws_endpoint.clone().into());
        // The AWS peer's IdC sign-in takes any start URL; `jitgate ssh` needs one.
        aws.entry("sso_start_url")
            .or_insert_with(|| "https://peer.awsapps.com/start".into());

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
        if !self.scheduler.is_empty() {
            config.insert("scheduler".into(), Toml::Table(self.scheduler.clone()));
        }
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
