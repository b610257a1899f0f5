//! The AWS peer (tests/peers/aws_peer.py: moto extended to answer like IAM Identity
//! Center) as a process, and its `/_peer/` control API: seed users and permission sets,
//! see the assignments and operations the server caused, turn fault knobs.

use std::fs::File;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use super::{cache_dir, last_lines, repo_root, watchdog};

/// Importing moto takes a few seconds on a cold cache.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// The peer's start-up knobs (`--assignment-delay-ms` and so on); 0 turns a knob off.
/// They can be changed later with [`AwsPeer::set_config`]. The default is IdC's own
/// behaviour (operations take a second, 20 sso-admin calls a second, 10 operations in
/// progress): a test that turns one off says why.
#[derive(Debug, Clone, Copy)]
pub struct PeerKnobs {
    /// How long an account-assignment operation stays IN_PROGRESS.
    pub assignment_delay_ms: u64,
    /// sso-admin calls accepted per sliding second; more are throttled.
    pub tps_limit: u32,
    /// Assignment operations in progress at once; more are throttled.
    pub max_outstanding: u32,
    /// Every Nth sso-admin/identitystore call fails with ThrottlingException.
    pub throttle_every: u32,
    /// Every Nth sso-admin/identitystore call fails with InternalServerException.
    pub error_every: u32,
}

impl Default for PeerKnobs {
    fn default() -> Self {
        Self {
            assignment_delay_ms: 1000,
            tps_limit: 20,
            max_outstanding: 10,
            throttle_every: 0,
            error_every: 0,
        }
    }
}

/// A fault rule of the peer (`POST /_peer/faults`): calls of `action`
/// (`UpdateUser`, `CreateAccountAssignment`, `DeleteAccountAssignment`, and with `deny`
/// only `DescribeSessions`, `TerminateSession`), for
/// `principal_id` or anyone, get `effect`: `deny` (AccessDeniedException), `fail` (the
/// operation ends FAILED) or `stuck` (it stays IN_PROGRESS until the rule is removed).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Fault {
    pub action: &'static str,
    pub effect: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal_id: Option<String>,
}

/// An account assignment in effect at the peer (`GET /_peer/assignments`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
pub struct PeerAssignment {
    pub account_id: String,
    pub permission_set_arn: String,
    pub principal_type: String,
    pub principal_id: String,
}

/// One Create/DeleteAccountAssignment request the peer received (`GET /_peer/history`).
#[derive(Debug, Clone, Deserialize)]
pub struct PeerOp {
    pub op: OpKind,
    pub status: OpStatus,
    pub account_id: String,
    pub permission_set_arn: String,
    pub principal_type: String,
    pub principal_id: String,
    pub request_id: String,
    /// Unix seconds.
    pub requested_at: f64,
    /// Unix seconds; `None` while the operation is in progress.
    pub completed_at: Option<f64>,
}

/// Which assignment call a [`PeerOp`] was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpKind {
    Create,
    Delete,
}

/// Where a [`PeerOp`] stands, as `DescribeAccountAssignment*Status` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OpStatus {
    InProgress,
    Succeeded,
    Failed,
}

/// A running AWS peer; killed when dropped.
pub struct AwsPeer {
    child: Child,
    url: String,
    http: reqwest::Client,
    /// Holds the peer's stderr log.
    dir: TempDir,
    /// Kept open: closing it would make the peer's next print fail.
    _stdout: Lines<BufReader<ChildStdout>>,
}

impl AwsPeer {
    /// Starts the peer on a free port and waits for its `READY <url>` line.
    pub async fn start(knobs: PeerKnobs) -> Result<AwsPeer> {
        let python = venv_dir()?.join("bin").join("python");
        if !python.exists() {
            bail!(
                "no Python at {}: run make test, which installs the AWS peer's venv \
                 (or point JITGATE_VENV at one)",
                python.display()
            );
        }
        let script = repo_root().join("tests/peers/aws_peer.py");
        let dir = tempfile::Builder::new()
            .prefix("jitgate-aws-peer-")
            .tempdir()?;
        let stderr = File::create(dir.path().join("stderr.log"))?;
        let mut child = Command::new(&python)
            .arg(&script)
            .args(["--port", "0"])
            .args(knob_args(&knobs))
            .current_dir(repo_root())
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {} {}", python.display(), script.display()))?;
        if let Some(pid) = child.id() {
            watchdog::stop_when_test_exits(pid, "TERM", Some(dir.path()))?;
        }
        let stdout = child.stdout.take().context("peer stdout was not piped")?;
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(STARTUP_TIMEOUT, async {
            while let Some(line) = lines.next_line().await? {
                if let Some(url) = line.strip_prefix("READY ") {
                    return Ok(Some(url.trim().to_string()));
                }
            }
            anyhow::Ok(None)
        })
        .await;
        let url = match ready {
            Ok(Ok(Some(url))) => url,
            outcome => {
                let why = match outcome {
                    Err(_) => format!("no READY line within {STARTUP_TIMEOUT:?}"),
                    Ok(Err(e)) => format!("reading its stdout failed: {e:#}"),
                    Ok(Ok(_)) => format!("it exited ({:?})", child.try_wait()),
                };
                let log = std::fs::read_to_string(dir.path().join("stderr.log"))?;
                bail!(
                    "the AWS peer did not start: {why}; stderr:\n{}",
                    last_lines(&log, 50)
                );
            }
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(AwsPeer {
            child,
            url,
            http,
            dir,
            _stdout: lines,
        })
    }

    /// The endpoint the server's AWS SDK clients use (`[aws] endpoint_url`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Creates users, groups, permission sets and accounts (`POST /_peer/seed`); names that
    /// exist are reused. Spec: `{"users":[{"user_name","email"?,"display_name"?}],
    /// "groups":[name], "permission_sets":[{"name","session_duration"?}], "accounts":[id]}`.
    /// Returns `{"instance_arn","identity_store_id","users":{name:id},"groups":{name:id},
    /// "permission_sets":{name:arn},"accounts":[id]}`.
    pub async fn seed(&self, spec: &Value) -> Result<Value> {
        self.post("seed", spec).await
    }

    /// The account assignments in effect now.
    pub async fn assignments(&self) -> Result<Vec<PeerAssignment>> {
        self.get("assignments").await
    }

    /// Every assignment operation requested since start (or the last [`Self::reset`]).
    pub async fn history(&self) -> Result<Vec<PeerOp>> {
        self.get("history").await
    }

    /// Changes knobs at runtime (`POST /_peer/config`): any of `assignment_delay_ms`,
    /// `tps_limit`, `max_outstanding`, `throttle_every`, `error_every`. Returns the
    /// whole config.
    pub async fn set_config(&self, changes: &Value) -> Result<Value> {
        self.post("config", changes).await
    }

    /// Replaces the fault rules (an empty list removes them; operations a removed `stuck`
    /// rule held go on at once).
    pub async fn set_faults(&self, rules: &[Fault]) -> Result<()> {
        let _: Value = self
            .post("faults", &serde_json::json!({ "rules": rules }))
            .await?;
        Ok(())
    }

    /// AWS down: every sso-admin and identitystore call answers 503 for `seconds`.
    pub async fn outage(&self, seconds: f64) -> Result<()> {
        let _: Value = self
            .post("outage", &serde_json::json!({ "seconds": seconds }))
            .await?;
        Ok(())
    }

    /// Call counters: `actions` (per API action), `calls`, `throttled`, `errors`,
    /// `outstanding`, `peak_outstanding`, `peak_sso_admin_calls_per_second`.
    pub async fn stats(&self) -> Result<Value> {
        self.get("stats").await
    }

    /// Clears history and counters (`POST /_peer/reset`); assignments stay.
    pub async fn reset(&self) -> Result<()> {
        let _: Value = self
            .post("reset", &Value::Object(Default::default()))
            .await?;
        Ok(())
    }

    /// The file the peer's stderr goes to.
    pub fn log_path(&self) -> std::path::PathBuf {
        self.dir.path().join("stderr.log")
    }

    /// What the peer wrote to stderr so far.
    pub fn stderr_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// Whether the peer process is still alive.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    async fn get<T: DeserializeOwned>(&self, route: &str) -> Result<T> {
        let request = self.http.get(format!("{}/_peer/{route}", self.url));
        decode(route, request).await
    }

    async fn post<T: DeserializeOwned>(&self, route: &str, body: &Value) -> Result<T> {
        let request = self
            .http
            .post(format!("{}/_peer/{route}", self.url))
            .json(body);
        decode(route, request).await
    }
}

/// Sends a control request; a non-2xx answer becomes an error carrying the peer's message.
async fn decode<T: DeserializeOwned>(route: &str, request: reqwest::RequestBuilder) -> Result<T> {
    let response = request
        .send()
        .await
        .with_context(|| format!("AWS peer /_peer/{route}"))?;
    let status = response.status();
    let body = response.text().await?;
    if !status.is_success() {
        bail!("AWS peer /_peer/{route} answered {status}: {body}");
    }
    serde_json::from_str(&body)
        .with_context(|| format!("AWS peer /_peer/{route} answered an unexpected shape: {body}"))
}

fn knob_args(knobs: &PeerKnobs) -> Vec<String> {
    let knobs = [
        ("--assignment-delay-ms", knobs.assignment_delay_ms),
        ("--tps-limit", knobs.tps_limit.into()),
        ("--max-outstanding", knobs.max_outstanding.into()),
        ("--throttle-every", knobs.throttle_every.into()),
        ("--error-every", knobs.error_every.into()),
    ];
    // Every knob is passed, so 0 turns off what the peer does by default.
    knobs
        .into_iter()
        .flat_map(|(flag, value)| [flag.to_string(), value.to_string()])
        .collect()
}

/// The Python of the peers' venv (moto, boto3, botocore), for test stand-ins.
pub fn venv_python() -> Result<PathBuf> {
    Ok(venv_dir()?.join("bin").join("python"))
}

/// `$JITGATE_VENV`, else cache_dir()/venv (where make test installs moto).
pub(crate) fn venv_dir() -> Result<PathBuf> {
    match std::env::var_os("JITGATE_VENV") {
        Some(dir) => Ok(PathBuf::from(dir)),
        None => Ok(cache_dir()?.join("venv")),
    }
}
