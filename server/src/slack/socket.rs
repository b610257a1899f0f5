//! Socket Mode (`[slack] mode = "socket"`, the default): jitgate opens a WebSocket to
//! Slack and receives its interactions there, so nothing of jitgate needs to be reachable
//! from the internet (https://api.slack.com/apis/socket-mode).
//!
//! Each replica holds its own connection; Slack hands each envelope to one of them, and
//! one that is not acknowledged again later: the use cases make a repeated action a
//! no-op, so it is applied once whichever replica gets it. Every envelope is
//! acknowledged within Slack's 3 seconds; a `disconnect` message (Slack refreshes
//! connections every few hours) opens a new one at once, a dropped or silent connection
//! after a backoff of up to 30 seconds.

use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{Connector, connect_async_tls_with_config};

use super::SlackError;
use super::interactions::{Interactions, Reply};

/// How long an envelope's handling may take before it is acknowledged without an answer
/// (Slack waits 3 seconds; the rest of the work goes on).
const ACK_WITHIN: Duration = Duration::from_millis(2500);
/// A ping this often; a connection silent for [`SILENT_AFTER`] is given up.
const PING_EVERY: Duration = Duration::from_secs(10);
const SILENT_AFTER: Duration = Duration::from_secs(30);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A TCP and TLS handshake that takes longer is given up (and retried).
const CONNECT_WITHIN: Duration = Duration::from_secs(10);

/// Keeps a Socket Mode connection open for as long as the process runs.
pub fn spawn(interactions: Interactions) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run(interactions))
}

/// Why a connection ended.
#[derive(Debug)]
enum Ended {
    /// Slack asked: open a new one now.
    Refresh(String),
    /// Slack turned Socket Mode off for the app, or the connection dropped.
    Lost(String),
    /// `apps.connections.open` was rate limited: wait this long.
    Throttled(std::time::Duration),
}

async fn run(interactions: Interactions) {
    let connector = match tls() {
        Ok(connector) => connector,
        Err(e) => {
            tracing::error!(error = %e, "Slack Socket Mode cannot start: no TLS");
            return;
        }
    };
    let mut failures: u32 = 0;
    loop {
        let (ended, greeted) = connection(&interactions, &connector).await;
        match ended {
            Ended::Refresh(reason) => {
                tracing::info!(reason = %reason, "Slack asked for a new Socket Mode connection");
                failures = 0;
                // Not at once: a peer that keeps asking must not make this spin.
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Ended::Throttled(wait) => {
                tracing::warn!(retry_in = ?wait, "Slack rate limits apps.connections.open");
                tokio::time::sleep(wait).await;
            }
            Ended::Lost(why) => {
                if greeted {
                    failures = 0;
                }
                let wait = backoff(failures);
                failures = failures.saturating_add(1);
                tracing::warn!(error = %why, retry_in = ?wait, "Slack Socket Mode connection lost");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// 1, 2, 4 ... seconds, at most [`MAX_BACKOFF`].
fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.min(5)).min(MAX_BACKOFF)
}

/// Slack's WebSocket is `wss://`: rustls with the webpki roots, on `ring` (chosen here
/// because the dependency tree enables two providers and rustls would not pick one).
fn tls() -> Result<Connector, rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Connector::Rustls(Arc::new(config)))
}

/// One envelope from Slack (https://api.slack.com/apis/socket-mode#events).
#[derive(Debug, Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    envelope_id: Option<String>,
    payload: Option<Value>,
    reason: Option<String>,
}

/// Opens one connection and serves it until it ends; whether Slack said hello on it.
async fn connection(interactions: &Interactions, connector: &Connector) -> (Ended, bool) {
    let url = match interactions.slack.open_connection().await {
        Ok(url) => url,
        Err(SlackError::RateLimited(wait)) => return (Ended::Throttled(wait), false),
        Err(e) => return (Ended::Lost(format!("apps.connections.open: {e}")), false),
    };
    let connecting =
        connect_async_tls_with_config(url.as_str(), None, false, Some(connector.clone()));
    let socket = match tokio::time::timeout(CONNECT_WITHIN, connecting).await {
        Ok(Ok((socket, _))) => socket,
        Ok(Err(e)) => return (Ended::Lost(format!("connecting: {e}")), false),
        Err(_) => {
            return (
                Ended::Lost(format!("no connection within {CONNECT_WITHIN:?}")),
                false,
            );
        }
    };
    let (mut sink, mut stream) = socket.split();
    let (acks, mut to_send) = mpsc::channel::<String>(64);
    let mut ping = tokio::time::interval(PING_EVERY);
    let mut heard = Instant::now();
    let mut greeted = false;
    loop {
        tokio::select! {
            frame = stream.next() => {
                let text = match frame {
                    None => return (Ended::Lost("closed".into()), greeted),
                    Some(Err(e)) => return (Ended::Lost(e.to_string()), greeted),
                    Some(Ok(Message::Close(_))) => {
                        return (Ended::Lost("closed by Slack".into()), greeted)
                    }
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(_)) => {
                        heard = Instant::now();
                        continue;
                    }
                };
                heard = Instant::now();
                let envelope: Envelope = match serde_json::from_str(text.as_str()) {
                    Ok(envelope) => envelope,
                    Err(e) => {
                        tracing::warn!(error = %e, "unreadable Socket Mode message");
                        continue;
                    }
                };
                match envelope.kind.as_str() {
                    "hello" => {
                        greeted = true;
                        tracing::info!("Slack Socket Mode connected");
                    }
                    "disconnect" => {
                        let reason = envelope.reason.unwrap_or_default();
                        if reason == "link_disabled" {
                            return (
                                Ended::Lost("Socket Mode is turned off for the Slack app".into()),
                                false,
                            );
                        }
                        return (Ended::Refresh(reason), greeted);
                    }
                    _ => {
                        if let Some(id) = envelope.envelope_id {
                            acknowledge(interactions, id, envelope.kind, envelope.payload, &acks);
                        }
                    }
                }
            }
            Some(ack) = to_send.recv() => {
                if let Err(e) = sink.send(Message::Text(ack.into())).await {
                    return (Ended::Lost(e.to_string()), greeted);
                }
            }
            _ = ping.tick() => {
                if heard.elapsed() > SILENT_AFTER {
                    return (Ended::Lost(format!("nothing heard for {SILENT_AFTER:?}")), greeted);
                }
                if let Err(e) = sink.send(Message::Ping(Default::default())).await {
                    return (Ended::Lost(e.to_string()), greeted);
                }
            }
        }
    }
}

/// Handles an envelope in its own task and queues its acknowledgement: with the reply's
/// body when it is ready within [`ACK_WITHIN`], bare otherwise (the work goes on).
fn acknowledge(
    interactions: &Interactions,
    id: String,
    kind: String,
    payload: Option<Value>,
    acks: &mpsc::Sender<String>,
) {
    let interactions = interactions.clone();
    let acks = acks.clone();
    tokio::spawn(async move {
        let reply = match (kind.as_str(), payload) {
            ("interactive", Some(payload)) => {
                let member = payload
                    .pointer("/user/id")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                let slack = interactions.slack.clone();
                let mut work = tokio::spawn(async move { interactions.handle(payload).await });
                match tokio::time::timeout(ACK_WITHIN, &mut work).await {
                    Ok(Ok(Ok(reply))) => reply,
                    Ok(Ok(Err(e))) => {
                        tracing::warn!(error = %e, "Slack interaction not understood");
                        Reply::Ack
                    }
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "Slack interaction handler failed");
                        Reply::Ack
                    }
                    Err(_) => {
                        // Acknowledged bare, so a modal closes: a refusal that comes later
                        // still reaches the clicker, by DM.
                        tokio::spawn(async move {
                            if let (Ok(Ok(Reply::Body(body))), Some(member)) = (work.await, member)
                            {
                                tell_late(&slack, &member, &body).await;
                            }
                        });
                        Reply::Ack
                    }
                }
            }
            _ => Reply::Ack,
        };
        let ack = match reply {
            Reply::Ack => json!({"envelope_id": id}),
            Reply::Body(body) => json!({"envelope_id": id, "payload": body}),
        };
        if acks.send(ack.to_string()).await.is_err() {
            tracing::warn!("Socket Mode connection closed before an envelope was acknowledged");
        }
    });
}

/// Tells `member` by DM why the action they submitted was refused, when the refusal came
/// after the acknowledgement (the modal's `errors`, as [`Reply::Body`] carries them).
async fn tell_late(slack: &super::SlackApi, member: &str, body: &Value) {
    let why = body
        .get("errors")
        .and_then(Value::as_object)
        .and_then(|errors| errors.values().find_map(Value::as_str))
        .unwrap_or("jitgate could not apply it");
    let text = format!("What you submitted in Slack was not applied: {why}");
    let blocks = json!([{"type": "section", "text": {"type": "plain_text", "text": text}}]);
    let sent = match slack.open_dm(member).await {
        Ok(channel) => slack.post_message(&channel, &text, &blocks).await.map(drop),
        Err(e) => Err(e),
    };
    if let Err(e) = sent {
        tracing::warn!(error = %e, "could not tell a Slack member of a late refusal");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_thirty_seconds() {
        let waits: Vec<u64> = (0..8).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
    }

    #[test]
    fn the_tls_connector_is_built_without_a_process_default_provider() {
        assert!(tls().is_ok());
    }
}
