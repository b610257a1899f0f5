//! The test kit: starts the real peers (Postgres, the AWS peer, the OpenID provider) and
//! the `jitgate-server` binary as processes, and gives the integration tests
//! (`tests/it`), the benchmark and the demo small helpers to drive them.
//!
//! Submodules: `postgres` (one server per test process, a fresh database per test),
//! `aws_peer` (tests/peers/aws_peer.py), `server` (the binary and its one-shot CLI),
//! `config` (server config TOML), `watchdog` (no process outlives the test process),
//! `chrome` (chromedriver and headless Chromium sessions for the browser tests).

// The kit stands outside the server and compares what it did with real time, so it reads
// the wall clock (the server reads it only through its Clock); a failed expectation
// panics where it failed (the lint floor of Cargo.toml is for the server and the core).
#![allow(clippy::disallowed_methods)]
#![allow(clippy::indexing_slicing, clippy::expect_used, clippy::panic)]

mod aws_peer;
mod aws_sessions;
mod chrome;
mod config;
mod oidc_peer;
mod postgres;
mod server;
mod slack_peer;
mod watchdog;

pub use aws_peer::{
    AwsPeer, Fault, OpKind, OpStatus, PeerAssignment, PeerKnobs, PeerOp, venv_python,
};
pub use aws_sessions::{PeerSession, SessionAsk};
pub use chrome::{Browser, ChromeDriver, png_size, screenshots_dir};
pub use config::{ConfigBuilder, ProfileSpec, sqlite_url_in};
pub use oidc_peer::{OidcPeer, SignInOutcome, browser, session_cookie, sign_in, sign_in_from};
pub use postgres::{Postgres, start_postgres};
pub use server::{
    AUDIT_KEY, ServerProcess, audit_keys, cli_binary, keyed, run_cli, run_cli_with, test_env,
};
pub use slack_peer::{SLACK_APP_TOKEN, SLACK_BOT_TOKEN, SlackPeer, post_signed, slack_form_body};

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// Ports handed out by [`free_port`]: below Linux's ephemeral range (32768-60999 by
/// default), which is where the OS picks the local port of every outgoing connection and
/// of `bind(0)`. A port found free by binding 0 and released could be taken by a test's
/// next outgoing connection before the server bound it ("Address already in use"); a port
/// from this range can only be taken by another listener, and the listeners of this
/// process all come from here, each port once.
const TEST_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// A TCP port on 127.0.0.1 that is free now and that this process has not handed out
/// before. Test processes running side by side start at random points of the range.
pub fn free_port() -> Result<u16> {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: std::sync::OnceLock<AtomicU16> = std::sync::OnceLock::new();
    let span = TEST_PORTS.end - TEST_PORTS.start;
    let next = NEXT.get_or_init(|| AtomicU16::new(rand::random_range(0..span)));
    for _ in 0..span {
        let port = TEST_PORTS.start + next.fetch_add(1, Ordering::Relaxed) % span;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free TCP port on 127.0.0.1 in {TEST_PORTS:?}")
}

/// Where tests keep things that outlive a run (the peer's venv, the Postgres template):
/// `$JITGATE_CACHE`, else `$HOME/.cache/jitgate`.
pub fn cache_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("JITGATE_CACHE") {
        return Ok(PathBuf::from(dir));
    }
    let home = std::env::var_os("HOME").context("neither JITGATE_CACHE nor HOME is set")?;
    Ok(PathBuf::from(home).join(".cache").join("jitgate"))
}

/// The repository root (this crate lives in `tests/`).
pub fn repo_root() -> PathBuf {
    let tests_crate = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    tests_crate
        .parent()
        .map_or(tests_crate.clone(), PathBuf::from)
}

/// Polls `check` every `poll` until it returns `Ok(true)`; fails after `timeout` with an
/// error naming `what` was awaited and the last error `check` returned, if any. An `Err`
/// from `check` is retried, since a peer that is still starting answers with errors.
pub async fn wait_until(
    what: &str,
    timeout: Duration,
    poll: Duration,
    mut check: impl AsyncFnMut() -> Result<bool>,
) -> Result<()> {
    wait_for(what, timeout, poll, async || {
        Ok(check().await?.then_some(()))
    })
    .await
}

/// Like [`wait_until`], for a check that yields a value once the wait is over
/// (`Ok(Some(value))`); returns that value.
pub async fn wait_for<T>(
    what: &str,
    timeout: Duration,
    poll: Duration,
    mut check: impl AsyncFnMut() -> Result<Option<T>>,
) -> Result<T> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let last_error = match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => None,
            Err(e) => Some(e),
        };
        if tokio::time::Instant::now() >= deadline {
            match last_error {
                Some(e) => bail!(
                    "timed out after {timeout:?} waiting for {what}; last check failed: {e:#}"
                ),
                None => bail!("timed out after {timeout:?} waiting for {what}"),
            }
        }
        tokio::time::sleep(poll).await;
    }
}

/// The last `n` lines of `text`, for error messages about a process's log.
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
