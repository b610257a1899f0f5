//! The OpenID provider peer: tests/peers/oidc/provider.mjs (node `oidc-provider`), and
//! a sign-in driven through its login form the way a browser would, with plain HTTP.

use std::fs::File;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use reqwest::StatusCode;
use reqwest::header::LOCATION;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use super::{last_lines, repo_root, watchdog};

const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// A running provider; killed on drop.
pub struct OidcPeer {
    child: Child,
    issuer: String,
    http: reqwest::Client,
    /// Holds the provider's stderr log.
    dir: tempfile::TempDir,
    _stdout: Lines<BufReader<ChildStdout>>,
}

impl OidcPeer {
    /// Starts the provider with `redirect_uris` registered for the `jitgate` client.
    pub async fn start(redirect_uris: &[String]) -> Result<OidcPeer> {
        Self::start_inner(redirect_uris, None).await
    }

    /// Starts the provider for a jitgate at `server` (its callback and, after sign-out,
    /// its home page registered), as `make demo` runs it.
    pub async fn start_for(server: &str) -> Result<OidcPeer> {
        let callback = [format!("{server}/auth/callback")];
        let home = [format!("{server}/")];
        Self::start_full(&callback, None, &home).await
    }

    /// The file the provider's stderr goes to.
    pub fn log_path(&self) -> std::path::PathBuf {
        self.dir.path().join("stderr.log")
    }

    /// [`Self::start`] with the accounts of `accounts` (a JSON file, see
    /// tests/peers/oidc/provider.mjs) added to the provider's own.
    pub async fn start_with_accounts(
        redirect_uris: &[String],
        accounts: &std::path::Path,
    ) -> Result<OidcPeer> {
        Self::start_inner(redirect_uris, Some(accounts)).await
    }

    async fn start_inner(
        redirect_uris: &[String],
        accounts: Option<&std::path::Path>,
    ) -> Result<OidcPeer> {
        Self::start_full(redirect_uris, accounts, &[]).await
    }

    async fn start_full(
        redirect_uris: &[String],
        accounts: Option<&std::path::Path>,
        post_logout_uris: &[String],
    ) -> Result<OidcPeer> {
        let script = repo_root().join("tests/peers/oidc/provider.mjs");
        let dir = tempfile::Builder::new()
            .prefix("jitgate-oidc-peer-")
            .tempdir()?;
        let stderr = File::create(dir.path().join("stderr.log"))?;
        let mut command = Command::new("node");
        command
            .arg(&script)
            .args(["--port", "0", "--exit-on-stdin-eof"]);
        for uri in redirect_uris {
            command.args(["--redirect-uri", uri]);
        }
        for uri in post_logout_uris {
            command.args(["--post-logout-redirect-uri", uri]);
        }
        if let Some(accounts) = accounts {
            command.arg("--accounts").arg(accounts);
        }
        let mut child = command
            .current_dir(repo_root())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .context("starting node tests/peers/oidc/provider.mjs (make test installs it)")?;
        if let Some(pid) = child.id() {
            watchdog::stop_when_test_exits(pid, "TERM", Some(dir.path()))?;
        }
        let stdout = child
            .stdout
            .take()
            .context("provider stdout was not piped")?;
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
        let issuer = match ready {
            Ok(Ok(Some(url))) => url,
            _ => {
                let log =
                    std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default();
                bail!(
                    "the OIDC peer did not start; stderr:\n{}",
                    last_lines(&log, 50)
                );
            }
        };
        Ok(OidcPeer {
            child,
            issuer,
            http: reqwest::Client::new(),
            dir,
            _stdout: lines,
        })
    }

    /// Stops the provider (the identity provider is down).
    pub async fn stop(&mut self) -> Result<()> {
        self.child.kill().await?;
        Ok(())
    }

    /// The issuer URL (`[oidc] issuer`).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Whether later sign-ins get a refresh token (the peer's default: yes).
    pub async fn issue_refresh_tokens(&self, issue: bool) -> Result<()> {
        self.control("refresh-tokens", json!({ "issue": issue }))
            .await
    }

    /// POSTs `body` to the peer's control route `/_peer/{path}`.
    async fn control(&self, path: &str, body: serde_json::Value) -> Result<()> {
        let response = self
            .http
            .post(format!("{}/_peer/{path}", self.issuer))
            .json(&body)
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("{path} {body}: {}", response.text().await?);
        }
        Ok(())
    }

    /// Changes `login`'s account before their next sign-in, as an IdP admin (or the
    /// person at a self-service profile page) would: e.g. `{"email_verified": false}`,
    /// `{"groups": []}`, `{"deleted": true}`.
    pub async fn change_account(&self, login: &str, change: serde_json::Value) -> Result<()> {
        let mut body = change;
        body["login"] = json!(login);
        self.control("accounts", body).await
    }

    /// Makes the provider's next ID token bad in one way: "expired", "wrong_nonce",
    /// "wrong_audience", "wrong_issuer", "foreign_key", "unknown_kid".
    pub async fn tamper_next_id_token(&self, mode: &str) -> Result<()> {
        self.control("tamper", json!({ "mode": mode })).await
    }
}

/// A browser-like client: cookies kept, redirects followed by hand so each hop can be
/// checked.
pub fn browser() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// Where a sign-in ended: the status and `Location` of jitgate's answer to the callback,
/// and the session cookies jitgate set when the sign-in started and when it ended.
#[derive(Debug)]
pub struct SignInOutcome {
    pub status: StatusCode,
    pub location: Option<String>,
    pub body: String,
    pub cookie_at_start: Option<String>,
    pub cookie_at_end: Option<String>,
}

/// The `jitgate_session` cookie a response sets, whole (with its attributes).
pub fn session_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("jitgate_session="))
        .map(str::to_owned)
}

/// Signs `login` in to the jitgate at `server` with `client`, through the provider's
/// login form, and returns jitgate's answer to the provider's redirect back.
pub async fn sign_in(client: &reqwest::Client, server: &str, login: &str) -> Result<SignInOutcome> {
    sign_in_from(client, server, "/login", login).await
}

/// [`sign_in`] starting at `start_path` (e.g. `/login?return_to=/requests/ID`).
pub async fn sign_in_from(
    client: &reqwest::Client,
    server: &str,
    start_path: &str,
    login: &str,
) -> Result<SignInOutcome> {
    let start = client.get(format!("{server}{start_path}")).send().await?;
    let cookie_at_start = session_cookie(&start);
    let mut url = location(&start, server)?;
    for _ in 0..10 {
        if url.starts_with(server) {
            let answer = client.get(&url).send().await?;
            return Ok(SignInOutcome {
                status: answer.status(),
                location: answer
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
                cookie_at_end: session_cookie(&answer),
                cookie_at_start,
                body: answer.text().await?,
            });
        }
        let response = client.get(&url).send().await?;
        if response.status().is_redirection() {
            url = location(&response, &url)?;
            continue;
        }
        // The provider's interaction page: log in (or consent), post to the same URL.
        let page = response.text().await?;
        let form: Vec<(&str, &str)> = if page.contains("name=\"login\"") {
            vec![("prompt", "login"), ("login", login), ("password", "any")]
        } else {
            vec![("prompt", "consent")]
        };
        let posted = client.post(&url).form(&form).send().await?;
        url = location(&posted, &url)?;
    }
    bail!("sign-in did not come back to {server}")
}

/// The absolute target of a redirect.
fn location(response: &reqwest::Response, base: &str) -> Result<String> {
    if !response.status().is_redirection() {
        bail!(
            "expected a redirect from {}, got {}",
            response.url(),
            response.status()
        );
    }
    let target = response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .context("redirect without Location")?;
    Ok(reqwest::Url::parse(base)?.join(target)?.to_string())
}
