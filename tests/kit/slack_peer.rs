//! The Slack peer (tests/peers/slack_peer.py: the Web API methods jitgate calls, and
//! interaction signatures made by slack_sdk) as a process, and its `/_peer/` control API.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use super::aws_peer::venv_dir;
use super::{repo_root, watchdog};

/// The bot token the peer accepts (`[slack] bot_token` of the server under test).
pub const SLACK_BOT_TOKEN: &str = "xoxb-jitgate-tests";
/// The app-level token the peer accepts for Socket Mode (`[slack] app_token`).
pub const SLACK_APP_TOKEN: &str = "xapp-1-A0PEER-1-jitgate-tests";

/// A running Slack peer; killed when dropped.
pub struct SlackPeer {
    _child: Child,
    url: String,
    http: reqwest::Client,
    _stdout: Lines<BufReader<ChildStdout>>,
}

impl SlackPeer {
    /// Starts the peer on a free port and waits for its `READY <url>` line.
    pub async fn start() -> Result<SlackPeer> {
        let python = venv_dir()?.join("bin").join("python");
        let mut child = Command::new(&python)
            .arg(repo_root().join("tests/peers/slack_peer.py"))
            .args(["--port", "0", "--bot-token", SLACK_BOT_TOKEN])
            .args(["--app-token", SLACK_APP_TOKEN])
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting tests/peers/slack_peer.py (make test installs its venv)")?;
        if let Some(pid) = child.id() {
            watchdog::stop_when_test_exits(pid, "TERM", None)?;
        }
        let stdout = child.stdout.take().context("slack peer stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let url = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await? {
                if let Some(url) = line.strip_prefix("READY ") {
                    return Ok(url.trim().to_owned());
                }
            }
            bail!("the Slack peer exited before it was ready")
        })
        .await
        .context("the Slack peer was not ready within 30s")??;
        Ok(SlackPeer {
            _child: child,
            url,
            http: reqwest::Client::new(),
            _stdout: lines,
        })
    }

    /// The peer's base URL (its control API is under `/_peer/`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Base URL of the Web API (`[slack] api_base_url`).
    pub fn api_url(&self) -> String {
        format!("{}/api", self.url)
    }

    /// A `response_url` the peer records posts to.
    pub fn response_url(&self, name: &str) -> String {
        format!("{}/response/{name}", self.url)
    }

    /// Adds Slack users: member id → email.
    pub async fn add_users(&self, users: &[(&str, &str)]) -> Result<()> {
        let map: serde_json::Map<String, Value> = users
            .iter()
            .map(|(id, email)| ((*id).to_owned(), Value::from(*email)))
            .collect();
        self.post("users", &Value::Object(map)).await.map(drop)
    }

    /// `X-Slack-Signature` for `body` sent at `timestamp` with `secret`, made by slack_sdk.
    pub async fn sign(&self, secret: &str, timestamp: i64, body: &str) -> Result<String> {
        let answer = self
            .post(
                "sign",
                &json!({"secret": secret, "timestamp": timestamp.to_string(), "body": body}),
            )
            .await?;
        answer["signature"]
            .as_str()
            .map(str::to_owned)
            .context("the peer made no signature")
    }

    /// Posts `interaction` to `server`'s `/slack/interactions` as Slack would: form
    /// encoded, signed now with `secret` (by the peer, with slack_sdk).
    pub async fn post_signed(
        &self,
        server: &str,
        secret: &str,
        interaction: &Value,
    ) -> Result<reqwest::Response> {
        post_signed(&self.url, server, secret, interaction).await
    }

    /// Every Web API call and `response_url` post so far, oldest first.
    pub async fn calls(&self) -> Result<Vec<Value>> {
        let answer = self
            .http
            .get(format!("{}/_peer/calls", self.url))
            .send()
            .await?
            .error_for_status()?;
        Ok(answer.json().await?)
    }

    /// Every message posted so far, with each of its versions (`chat.update`s), oldest
    /// first: `{"channel", "ts", "versions": [{"text", "blocks"}]}`.
    pub async fn messages(&self) -> Result<Vec<Value>> {
        let answer = self
            .http
            .get(format!("{}/_peer/messages", self.url))
            .send()
            .await?
            .error_for_status()?;
        Ok(answer.json().await?)
    }

    /// Sets the chat methods' faults: `{"rate_limited": N, "retry_after": S}` (the next N
    /// calls answer 429) and/or `{"outage": bool}` (every call answers 503).
    pub async fn faults(&self, faults: &Value) -> Result<()> {
        self.post("faults", faults).await.map(drop)
    }

    /// Sends `payload` as a Socket Mode `interactive` envelope to one connection (or, with
    /// `to_all`, the same envelope to every connection) and waits up to 3 seconds, Slack's
    /// limit, for the acknowledgements: `{"acked", "acks", "ack", "seconds"}`.
    pub async fn push(&self, payload: &Value, to_all: bool) -> Result<Value> {
        let to = if to_all { "all" } else { "one" };
        let answer = self
            .post(
                "socket/push",
                &json!({"payload": payload, "to": to, "wait": 3}),
            )
            .await?;
        if answer["ok"] != true {
            bail!("the peer could not push: {answer}");
        }
        Ok(answer)
    }

    /// Ends the Socket Mode connections: Slack's `disconnect` message, or (`cut`) the
    /// TCP connections cut.
    pub async fn disconnect(&self, cut: bool) -> Result<()> {
        let how = if cut { "drop" } else { "message" };
        self.post("socket/disconnect", &json!({"how": how}))
            .await
            .map(drop)
    }

    /// `(live connections, connections opened so far)`.
    pub async fn sockets(&self) -> Result<(u64, u64)> {
        let answer: Value = self
            .http
            .get(format!("{}/_peer/socket", self.url))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok((
            answer["connections"].as_u64().unwrap_or_default(),
            answer["opened"].as_u64().unwrap_or_default(),
        ))
    }

    /// Waits up to 30 seconds until `live` connections are open and `opened` were made.
    pub async fn wait_sockets(&self, live: u64, opened: u64) -> Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let (now_live, now_opened) = self.sockets().await?;
            if now_live == live && now_opened >= opened {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("Socket Mode: {now_live} live, {now_opened} opened; wanted {live}, {opened}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn post(&self, route: &str, body: &Value) -> Result<Value> {
        let answer = self
            .http
            .post(format!("{}/_peer/{route}", self.url))
            .json(body)
            .send()
            .await?
            .error_for_status()?;
        Ok(answer.json().await?)
    }
}

/// The body Slack posts for `interaction`: `payload=` and the JSON, form encoded.
pub fn slack_form_body(interaction: &Value) -> String {
    let encoded: String = interaction
        .to_string()
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._*".contains(&b) {
                (b as char).to_string()
            } else if b == b' ' {
                "+".to_owned()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("payload={encoded}")
}

/// [`SlackPeer::post_signed`] with the peer known by its base URL `peer`.
pub async fn post_signed(
    peer: &str,
    server: &str,
    secret: &str,
    interaction: &Value,
) -> Result<reqwest::Response> {
    let body = slack_form_body(interaction);
    #[allow(clippy::disallowed_methods)] // Slack signs with the wall clock's time.
    let timestamp = chrono::Utc::now().timestamp();
    let http = reqwest::Client::new();
    let signed: Value = http
        .post(format!("{peer}/_peer/sign"))
        .json(&json!({"secret": secret, "timestamp": timestamp.to_string(), "body": body}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let signature = signed["signature"]
        .as_str()
        .context("the peer made no signature")?;
    http.post(format!("{server}/slack/interactions"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", timestamp.to_string())
        .header("x-slack-signature", signature)
        .body(body)
        .send()
        .await
        .context("POST /slack/interactions")
}
