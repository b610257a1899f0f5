//! The `jitgate-server` binary as a process: started with a config file on a free port,
//! awaited on `/readyz`, and killed, terminated or restarted by the scenario; plus
//! [`run_cli`] for its one-shot subcommands (`migrate`, `check-config`, `audit verify`).

use std::fs::OpenOptions;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Output, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tempfile::TempDir;
use tokio::process::{Child, Command};

use super::{last_lines, watchdog};

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const TERMINATE_TIMEOUT: Duration = Duration::from_secs(10);
const LOG_TAIL_LINES: usize = 50;

/// A running `jitgate-server serve`; killed (SIGKILL) when dropped.
pub struct ServerProcess {
    child: Child,
    pid: u32,
    listen: SocketAddr,
    /// Holds config.toml and server.log.
    dir: TempDir,
}

impl ServerProcess {
    /// Starts `jitgate-server serve --config <config_toml>` and waits until `/readyz`
    /// answers 200.
    pub async fn spawn(config_toml: &str) -> Result<ServerProcess> {
        Self::spawn_with(config_toml, &[]).await
    }

    /// Starts the server and waits only until it is up (`/healthz`), not until it is
    /// ready: for tests of a server whose identity provider or IdC is down at start.
    pub async fn spawn_alive(config_toml: &str) -> Result<ServerProcess> {
        Self::spawn_waiting(config_toml, &[], "/healthz").await
    }

    /// [`Self::spawn`] with extra environment variables (e.g. `JITGATE_*` overrides).
    pub async fn spawn_with(
        config_toml: &str,
        extra_env: &[(&str, &str)],
    ) -> Result<ServerProcess> {
        Self::spawn_waiting(config_toml, extra_env, "/readyz").await
    }

    async fn spawn_waiting(
        config_toml: &str,
        extra_env: &[(&str, &str)],
        wait_path: &str,
    ) -> Result<ServerProcess> {
        let listen = listen_addr(config_toml)?;
        let dir = tempfile::Builder::new()
            .prefix("jitgate-server-")
            .tempdir()?;
        let config = write_config(dir.path(), config_toml)?;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join("server.log"))?;
        let mut command = server_command(&["serve"], &config, extra_env)?;
        command
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        let child = command.spawn().context("starting jitgate-server")?;
        let pid = child.id().context("jitgate-server exited at once")?;
        watchdog::stop_when_test_exits(pid, "KILL", Some(dir.path()))?;
        let mut server = ServerProcess {
            child,
            pid,
            listen,
            dir,
        };
        server.wait_ready(wait_path).await?;
        Ok(server)
    }

    /// `http://127.0.0.1:PORT`, the server's base URL.
    pub fn listen_url(&self) -> String {
        format!("http://{}", self.listen)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Everything the server wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The config file the server was started with.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    /// Whether the process is still alive.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills the server with SIGKILL (a crash: no shutdown code runs) and reaps it.
    pub async fn kill9(&mut self) -> Result<ExitStatus> {
        if let Some(status) = self.child.try_wait()? {
            return Ok(status);
        }
        self.child.start_kill()?;
        Ok(self.child.wait().await?)
    }

    /// Sends SIGTERM and waits up to 10s for a graceful exit; fails (after a SIGKILL) if
    /// the server takes longer.
    pub async fn terminate(&mut self) -> Result<ExitStatus> {
        if let Some(status) = self.child.try_wait()? {
            return Ok(status);
        }
        // libc is not a dependency and unsafe code is forbidden: the `kill` command it is.
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .await?;
        if !sent.success() {
            bail!("kill -TERM {} failed ({sent})", self.pid);
        }
        match tokio::time::timeout(TERMINATE_TIMEOUT, self.child.wait()).await {
            Ok(status) => Ok(status?),
            Err(_) => {
                self.kill9().await?;
                bail!(
                    "jitgate-server did not exit within {TERMINATE_TIMEOUT:?} of SIGTERM; log:\n{}",
                    last_lines(&self.log(), LOG_TAIL_LINES)
                )
            }
        }
    }

    /// The file the server's stdout and stderr go to.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    async fn wait_ready(&mut self, path: &str) -> Result<()> {
        let url = format!("{}{path}", self.listen_url());
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            let last = match http.get(&url).send().await {
                Ok(response) if response.status().is_success() => return Ok(()),
                Ok(response) => format!("last answer {}", response.status()),
                Err(e) => format!("last error: {e}"),
            };
            let state = match self.child.try_wait()? {
                Some(status) => Some(format!("the process exited ({status})")),
                None if tokio::time::Instant::now() >= deadline => Some(format!(
                    "the process is still running after {READY_TIMEOUT:?}"
                )),
                None => None,
            };
            if let Some(state) = state {
                bail!(
                    "jitgate-server never became ready at {url} ({last}); {state}; last log lines:\n{}",
                    last_lines(&self.log(), LOG_TAIL_LINES)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The audit key every server and admin command of the tests is given
/// (`JITGATE_AUDIT_KEY`); [`keyed`] signs a test's own appends with it too.
pub const AUDIT_KEY: &str = "jitgate-tests-audit-key-0123456789abcdef";

/// `db`, signing the audit events it appends as the tests' servers do.
pub fn keyed(db: jitgate_server::store::Db) -> jitgate_server::store::Db {
    db.with_audit_key(Some(jitgate_server::audit::AuditKey::new(AUDIT_KEY)))
}

/// The environment a test gives `load_from_str`, as the servers get it.
pub fn test_env() -> Vec<(String, String)> {
    vec![("JITGATE_AUDIT_KEY".into(), AUDIT_KEY.into())]
}

/// The keys `audit verify` is given in the tests.
pub fn audit_keys() -> jitgate_server::audit::AuditKeys {
    jitgate_server::audit::AuditKeys::new(Some(AUDIT_KEY), None)
}

/// Runs `jitgate-server <args> --config <file>` once, with `config_toml` in the file and
/// the same environment as [`ServerProcess`], and returns its output.
pub async fn run_cli(args: &[&str], config_toml: &str) -> Result<Output> {
    run_cli_with(args, config_toml, &[]).await
}

/// [`run_cli`] with `env` on top of the test environment (e.g. another audit key).
pub async fn run_cli_with(
    args: &[&str],
    config_toml: &str,
    env: &[(&str, &str)],
) -> Result<Output> {
    let dir = tempfile::Builder::new().prefix("jitgate-cli-").tempdir()?;
    let config = write_config(dir.path(), config_toml)?;
    let mut command = server_command(args, &config, env)?;
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    command
        .output()
        .await
        .with_context(|| format!("running jitgate-server {}", args.join(" ")))
}

/// `jitgate-server <args> --config <config>` with a clean, test-only environment: fake AWS
/// credentials (the peer ignores signatures) and none of the caller's `JITGATE_*` or `AWS_*`
/// variables, which would override the config or reach real AWS.
fn server_command(args: &[&str], config: &Path, extra_env: &[(&str, &str)]) -> Result<Command> {
    let mut command = Command::new(server_binary()?);
    command.args(args).arg("--config").arg(config);
    for (name, _) in std::env::vars_os() {
        let name_text = name.to_string_lossy();
        if name_text.starts_with("JITGATE_") || name_text.starts_with("AWS_") {
            command.env_remove(&name);
        }
    }
    command
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("RUST_LOG", "info")
        // As a deployment gives it: from the environment, not the config file.
        .env("JITGATE_AUDIT_KEY", AUDIT_KEY)
        .envs(extra_env.iter().copied())
        .stdin(Stdio::null());
    Ok(command)
}

/// The `jitgate-server` to run: `$JITGATE_SERVER_BIN` when set (the benchmark runs the
/// release build), else the one in this binary's profile dir: target/<profile>/deps/it-HASH
/// (a test) or target/<profile>/jitgate-demo runs, target/<profile>/jitgate-server is the
/// server.
fn server_binary() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("JITGATE_SERVER_BIN") {
        return Ok(PathBuf::from(bin));
    }
    built_binary("jitgate-server")
}

/// The `jitgate` CLI built beside the running test binary (`cargo build --bin jitgate`;
/// make test builds every binary of the workspace).
pub fn cli_binary() -> Result<PathBuf> {
    built_binary("jitgate")
}

/// Binary `name` in this binary's profile dir: target/<profile>/deps/it-HASH (a test)
/// or target/<profile>/jitgate-demo runs, target/<profile>/<name> is the one asked for.
fn built_binary(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .with_context(|| format!("cannot find the target dir from {}", exe.display()))?;
    let profile_dir = if dir.ends_with("deps") {
        dir.parent().unwrap_or(dir)
    } else {
        dir
    };
    let binary = profile_dir.join(name);
    if !binary.exists() {
        bail!(
            "{} is missing: build it first: cargo build --bin {name} (make test does)",
            binary.display()
        );
    }
    Ok(binary)
}

fn write_config(dir: &Path, config_toml: &str) -> Result<PathBuf> {
    let path = dir.join("config.toml");
    std::fs::write(&path, config_toml)?;
    Ok(path)
}

/// `[server] listen` of the config: the address to wait on.
fn listen_addr(config_toml: &str) -> Result<SocketAddr> {
    let config: toml::Table = config_toml
        .parse()
        .context("the server config is not TOML")?;
    let listen = config
        .get("server")
        .and_then(|s| s.get("listen"))
        .and_then(|l| l.as_str())
        .context("the server config has no [server] listen (ConfigBuilder sets one)")?;
    let addr: SocketAddr = listen
        .parse()
        .with_context(|| format!("[server] listen = {listen:?} is not a socket address"))?;
    if addr.port() == 0 {
        bail!("[server] listen needs a real port (free_port()), not 0: the harness must know it");
    }
    Ok(addr)
}
