//! `jitgate login`: the server's browser login for native apps (RFC 8252): the CLI
//! listens on a loopback port, sends the person's browser to the server's
//! `/cli/login` with a PKCE challenge (RFC 7636, S256) and a random state; once they
//! confirm, the server redirects the browser to the loopback port with a one-time code,
//! which only the verifier held here turns into an API token.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jitgate_proto::TokenCreated;
use rand::RngCore;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use crate::api::Api;
use crate::exit::{Failure, NOT_LOGGED_IN};

/// How long the person has to finish signing in.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(300);

pub(crate) fn random_url_safe() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// What the loopback redirect or the pasted text gave.
pub(crate) enum Answer {
    Code(String),
    Denied(String),
}

/// Runs the login against `server`; answers the new token.
pub async fn login(server: &str, open_browser: bool) -> Result<TokenCreated> {
    let verifier = random_url_safe();
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let state = random_url_safe();
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .context("opening a loopback port for the login's redirect")?;
    let port = listener.local_addr()?.port();
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "this machine".into());
    let name = format!("jitgate CLI on {host}");
    let url = format!(
        "{server}/cli/login?port={port}&state={state}&code_challenge={challenge}\
         &code_challenge_method=S256&name={}",
        percent_encode(&name)
    );
    let opened = open_browser && open(&url);
    if opened {
        eprintln!("Opened your browser to sign in. If it did not open, go to:\n  {url}");
    } else {
        eprintln!("To sign in, open this URL in a browser on this machine:\n  {url}");
        eprintln!(
            "If that browser runs elsewhere, paste here the code=... value of the address it \
             ends on (http://127.0.0.1:{port}/callback?code=...):"
        );
    }
    let answer = tokio::time::timeout(LOGIN_TIMEOUT, async {
        tokio::select! {
            answer = loopback(&listener, &state, "/callback") => answer,
            answer = pasted(), if !opened => answer,
        }
    })
    .await
    .map_err(|_| {
        Failure::new(
            NOT_LOGGED_IN,
            "the login was not finished within 5 minutes; run `jitgate login` again",
        )
    })??;
    let code = match answer {
        Answer::Code(code) => code,
        Answer::Denied(why) => bail!(Failure::new(NOT_LOGGED_IN, why)),
    };
    let api = Api::new(server, None)?;
    let created: TokenCreated = api
        .post(
            "/cli/token",
            &json!({"code": code, "code_verifier": verifier}),
        )
        .await?;
    Ok(created)
}

/// Waits on the loopback port for the browser's redirect to `callback` carrying `state`.
pub(crate) async fn loopback(
    listener: &TcpListener,
    state: &str,
    callback: &str,
) -> Result<Answer> {
    loop {
        let (stream, _) = listener.accept().await?;
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read);
        let mut request_line = String::new();
        // A browser's request line is short and comes at once; a longer or a silent one
        // (a speculative preconnect, another process) is not ours and must not hold the
        // port from the real redirect.
        let read = tokio::time::timeout(
            Duration::from_secs(5),
            (&mut lines).take(8 * 1024).read_line(&mut request_line),
        )
        .await;
        if !matches!(read, Ok(Ok(_))) {
            continue;
        }
        let path = request_line.split_whitespace().nth(1).unwrap_or("");
        let Ok(url) = reqwest::Url::parse(&format!("http://127.0.0.1{path}")) else {
            continue;
        };
        if url.path() != callback {
            let _ = write
                .write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )
                .await;
            continue;
        }
        let query: std::collections::HashMap<String, String> =
            url.query_pairs().into_owned().collect();
        // Another page (or process) guessing the port must not hand us its code.
        if query.get("state").map(String::as_str) != Some(state) {
            reply(
                &mut write,
                "This sign-in link is not for this jitgate login.",
            )
            .await;
            continue;
        }
        if let Some(code) = query.get("code") {
            reply(
                &mut write,
                "Signed in. You can close this window and go back to the terminal.",
            )
            .await;
            return Ok(Answer::Code(code.clone()));
        }
        let why = query
            .get("error")
            .cloned()
            .unwrap_or_else(|| "the sign-in was not completed".into());
        reply(&mut write, "The sign-in was not completed.").await;
        return Ok(Answer::Denied(format!("login refused: {why}")));
    }
}

async fn reply(write: &mut tokio::net::tcp::OwnedWriteHalf, text: &str) {
    let body = format!("<!doctype html><title>jitgate</title><p>{text}</p>");
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = write.write_all(head.as_bytes()).await;
    let _ = write.write_all(body.as_bytes()).await;
}

/// A code pasted on stdin (the browser ran where the loopback port is not reachable).
async fn pasted() -> Result<Answer> {
    let mut line = String::new();
    BufReader::new(tokio::io::stdin())
        .read_line(&mut line)
        .await?;
    let text = line.trim();
    // The whole address, or just the code.
    let code = reqwest::Url::parse(text)
        .ok()
        .and_then(|u| {
            u.query_pairs()
                .find(|(k, _)| k == "code")
                .map(|(_, v)| v.into_owned())
        })
        .unwrap_or_else(|| text.to_owned());
    if code.is_empty() {
        // No stdin (closed): wait for the browser instead.
        std::future::pending::<()>().await;
    }
    Ok(Answer::Code(code))
}

/// Opens `url` in the desktop's browser; `false` when there is none to open.
pub(crate) fn open(url: &str) -> bool {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .is_ok()
}
