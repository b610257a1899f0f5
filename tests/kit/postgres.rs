//! A real PostgreSQL server (Debian's binaries) for the tests of this process: started
//! once, on first use, in a temp dir on a free port; each test takes a fresh database
//! (as crates.io's `crates_io_test_db` does) so tests never see each other's rows.
//!
//! initdb and postgres refuse to run as root, so as root they run as user `postgres`
//! (via `setpriv`, which execs, so the pid we hold is the postmaster's). The watchdog stops
//! the server with SIGQUIT (immediate shutdown) and removes its directory once the test
//! process is gone.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use sqlx::{Connection, PgConnection};
use tokio::sync::OnceCell;

use super::{cache_dir, free_port, last_lines, watchdog};

/// Bumped when the initdb arguments change, so a cached template made with the old ones
/// is not reused.
const TEMPLATE_FORMAT: &str = "v1";
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

static POSTGRES: OnceCell<Postgres> = OnceCell::const_new();

/// The Postgres server shared by the tests of this process.
pub struct Postgres {
    port: u16,
    dir: PathBuf,
    postmaster: Mutex<Child>,
}

/// Starts this process's Postgres server on first call; later calls return the same one.
pub async fn start_postgres() -> Result<&'static Postgres> {
    POSTGRES.get_or_try_init(Postgres::start).await
}

impl Postgres {
    /// A `postgres://` URL of a new, empty database with a name no other test uses.
    pub async fn fresh_database(&self) -> Result<String> {
        let name = format!("jitgate_{}", uuid::Uuid::new_v4().simple());
        let mut conn = self
            .connect_admin()
            .await
            .with_context(|| self.describe_failure())?;
        // A database name cannot be a bind parameter; this one is ours, made of [a-z0-9_].
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .await
            .with_context(|| format!("CREATE DATABASE {name}"))?;
        conn.close().await?;
        Ok(self.url(&name))
    }

    /// The port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's log file (it lives as long as the test process).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default()
    }

    fn url(&self, database: &str) -> String {
        // Trust authentication (initdb -A trust): no password. No TLS on loopback.
        format!(
            "postgres://postgres@127.0.0.1:{}/{database}?sslmode=disable",
            self.port
        )
    }

    async fn connect_admin(&self) -> Result<PgConnection> {
        Ok(PgConnection::connect(&self.url("postgres")).await?)
    }

    /// Whether the server died, with its log tail, for an error message.
    fn describe_failure(&self) -> String {
        let exited = match self.postmaster.lock() {
            Ok(mut child) => match child.try_wait() {
                Ok(Some(status)) => format!("postgres exited ({status})"),
                _ => "postgres is running".to_string(),
            },
            Err(_) => "postgres state unknown".to_string(),
        };
        format!("{exited}; last log lines:\n{}", last_lines(&self.log(), 30))
    }

    async fn start() -> Result<Postgres> {
        let bin = bin_dir()?;
        let as_root = running_as_root()?;
        let dir = tempfile::Builder::new()
            .prefix("jitgate-pg-")
            .tempdir()
            .context("creating the Postgres temp dir")?
            // The watchdog removes it once the test process has exited.
            .keep();
        let data = dir.join("data");
        prepare_data_dir(&bin, &dir, &data, as_root)?;

        let port = free_port()?;
        let log = File::create(dir.join("postgres.log"))?;
        let mut command = as_postgres(&bin.join("postgres"), as_root);
        command
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(&dir)
            // Durability buys nothing in a throwaway cluster and costs seconds per test.
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .args(["-c", "synchronous_commit=off", "-c", "full_page_writes=off"])
            // Several servers (replica tests) with their own pools share this cluster.
            .args(["-c", "max_connections=200"])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let postmaster = command.spawn().context("starting postgres")?;
        watchdog::stop_when_test_exits(postmaster.id(), "QUIT", Some(&dir))?;
        let postgres = Postgres {
            port,
            dir,
            postmaster: Mutex::new(postmaster),
        };
        postgres.wait_ready().await?;
        Ok(postgres)
    }

    async fn wait_ready(&self) -> Result<()> {
        let deadline = tokio::time::Instant::now() + STARTUP_TIMEOUT;
        loop {
            let error = match self.connect_admin().await {
                Ok(conn) => return Ok(conn.close().await?),
                Err(e) => e,
            };
            let exited = match self.postmaster.lock() {
                Ok(mut child) => child.try_wait()?,
                Err(_) => None,
            };
            if exited.is_some() || tokio::time::Instant::now() >= deadline {
                bail!(
                    "Postgres did not start on port {} ({error:#}): {}",
                    self.port,
                    self.describe_failure()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Debian's `/usr/lib/postgresql/<version>/bin`, the newest version installed.
fn bin_dir() -> Result<PathBuf> {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, bin)) => Ok(bin),
        None => bail!(
            "no PostgreSQL server under {}/<version>/bin: install Debian's `postgresql` \
             package (make test does)",
            root.display()
        ),
    }
}

/// initdb refuses to run as root, and so does postgres.
fn running_as_root() -> Result<bool> {
    // /proc/self belongs to the effective user; no libc needed.
    Ok(std::fs::metadata("/proc/self")?.uid() == 0)
}

/// `program` run as user `postgres` when we are root, else as ourselves.
fn as_postgres(program: &Path, as_root: bool) -> Command {
    if !as_root {
        return Command::new(program);
    }
    let mut command = Command::new("setpriv");
    command
        .args([
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--",
        ])
        .arg(program);
    command
}

/// Fills `data` with an initdb'd cluster: a copy of the cached template when there is one
/// for this Postgres version, else a fresh initdb that then becomes the template.
fn prepare_data_dir(bin: &Path, dir: &Path, data: &Path, as_root: bool) -> Result<()> {
    let template = template_dir(bin)?;
    if as_root {
        chown_postgres(dir)?;
    }
    if template.join("PG_VERSION").exists() {
        run(Command::new("cp").arg("-a").arg(&template).arg(data))?;
        if as_root {
            chown_postgres(data)?;
        }
        return Ok(());
    }
    run(as_postgres(&bin.join("initdb"), as_root)
        .arg("--pgdata")
        .arg(data)
        .args([
            "--username=postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
        ])
        .args(["--no-sync", "--no-instructions"])
        .current_dir(dir))?;
    // A failure to cache only costs the next run an initdb.
    if let Err(e) = save_template(data, &template) {
        eprintln!("note: could not cache the Postgres template: {e:#}");
    }
    Ok(())
}

/// cache_dir()/pg-template/<postgres version>-<format>.
fn template_dir(bin: &Path) -> Result<PathBuf> {
    let output = Command::new(bin.join("postgres"))
        .arg("--version")
        .output()?;
    // "postgres (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)" → the whole line, made safe.
    let version: String = String::from_utf8_lossy(&output.stdout)
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Ok(cache_dir()?
        .join("pg-template")
        .join(format!("{version}-{TEMPLATE_FORMAT}")))
}

/// Copies `data` to `template` through a temp name, so a concurrent test process never
/// copies a half-written template.
fn save_template(data: &Path, template: &Path) -> Result<()> {
    let parent = template.parent().context("template dir has no parent")?;
    std::fs::create_dir_all(parent)?;
    let staging = parent.join(format!(".staging-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    run(Command::new("cp").arg("-a").arg(data).arg(&staging))?;
    if std::fs::rename(&staging, template).is_err() {
        // Another process cached it first; theirs is as good as ours.
        let _ = std::fs::remove_dir_all(&staging);
    }
    Ok(())
}

fn chown_postgres(path: &Path) -> Result<()> {
    run(Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(path))
}

/// Runs `command` to completion; its stderr goes into the error if it fails.
fn run(command: &mut Command) -> Result<()> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        );
    }
    Ok(())
}
