//! The Slack Web API calls jitgate makes, with the bot token: `users.info` (the email
//! Slack has for the clicking member), `views.open` (the deny modal),
//! `apps.connections.open` (Socket Mode, with the app-level token),
//! `chat.postMessage` / `chat.update` (each request's channel message) and the
//! interaction's `response_url` (an ephemeral answer only the clicker sees).

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use crate::config::SlackConfig;

/// The deny modal's `callback_id`, and the ids of its reason field (block and input).
pub const DENY_CALLBACK: &str = "deny";
pub const REASON_BLOCK: &str = "reason";
pub const REASON_INPUT: &str = "reason";

/// Why a Slack call failed.
#[derive(Debug, thiserror::Error)]
pub enum SlackError {
    #[error("Slack could not be reached: {0}")]
    Unreachable(#[from] reqwest::Error),
    #[error("Slack answered `{0}`")]
    Refused(String),
    /// Slack asks to wait (HTTP 429) this long before calling again.
    #[error("Slack is rate limiting: retry after {0:?}")]
    RateLimited(Duration),
    /// The host only: a response_url is a credential to post into the channel.
    #[error("the response_url's host `{0}` is not Slack's")]
    ForeignUrl(String),
}

/// A client of Slack's Web API.
pub struct SlackApi {
    http: reqwest::Client,
    base: String,
    token: String,
    /// HTTP mode's signing secret.
    signing_secret: Option<String>,
    /// Socket Mode's app-level token.
    app_token: Option<String>,
}

#[derive(Deserialize)]
struct UsersInfo {
    ok: bool,
    error: Option<String>,
    user: Option<SlackUser>,
}

#[derive(Deserialize)]
struct SlackAnswer {
    ok: bool,
    error: Option<String>,
}

#[derive(Deserialize)]
struct Posted {
    ok: bool,
    error: Option<String>,
    channel: Option<String>,
    ts: Option<String>,
}

/// Where a message is: Slack's channel id and its `ts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRef {
    pub channel: String,
    pub ts: String,
}

#[derive(Deserialize)]
struct SlackUser {
    profile: Option<Profile>,
}

#[derive(Deserialize)]
struct Profile {
    email: Option<String>,
}

impl SlackApi {
    pub fn new(config: &SlackConfig) -> Result<SlackApi, SlackError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?;
        Ok(SlackApi {
            http,
            base: config.api_base_url.trim_end_matches('/').to_owned(),
            token: config.bot_token.expose().to_owned(),
            signing_secret: config
                .signing_secret
                .as_ref()
                .map(|s| s.expose().to_owned())
                .filter(|s| !s.trim().is_empty()),
            app_token: config.app_token.as_ref().map(|t| t.expose().to_owned()),
        })
    }

    /// The secret interactions are signed with (HTTP mode); `None` without one, and then
    /// no HTTP interaction is accepted.
    pub fn signing_secret(&self) -> Option<&str> {
        self.signing_secret.as_deref()
    }

    /// A Socket Mode WebSocket URL, good for one connection (`apps.connections.open`,
    /// with the app-level token).
    pub async fn open_connection(&self) -> Result<String, SlackError> {
        #[derive(Deserialize)]
        struct Opened {
            ok: bool,
            error: Option<String>,
            url: Option<String>,
        }
        let Some(app_token) = &self.app_token else {
            return Err(SlackError::Refused("no app-level token configured".into()));
        };
        let response = self
            .http
            .post(format!("{}/apps.connections.open", self.base))
            .bearer_auth(app_token)
            .send()
            .await
            .map_err(|e| SlackError::Unreachable(e.without_url()))?;
        let answer: Opened = rate_checked(response)?
            .json()
            .await
            .map_err(|e| SlackError::Unreachable(e.without_url()))?;
        match answer {
            Opened {
                ok: true,
                url: Some(url),
                ..
            } => Ok(url),
            Opened { error, .. } => Err(SlackError::Refused(
                error.unwrap_or_else(|| "no url in the answer".into()),
            )),
        }
    }

    /// The email Slack has for member `user_id`; `None` when it has none.
    pub async fn email_of(&self, user_id: &str) -> Result<Option<String>, SlackError> {
        let answer: UsersInfo = self
            .http
            .post(format!("{}/users.info", self.base))
            .bearer_auth(&self.token)
            .form(&[("user", user_id)])
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        if !answer.ok {
            return Err(SlackError::Refused(
                answer.error.unwrap_or_else(|| "not ok".into()),
            ));
        }
        Ok(answer.user.and_then(|u| u.profile).and_then(|p| p.email))
    }

    /// Opens the modal that asks an approver why they deny request `request` (Slack's
    /// `views.open`, within the 3 seconds the click's `trigger_id` lasts).
    pub async fn open_deny_modal(&self, trigger_id: &str, request: &str) -> Result<(), SlackError> {
        let view = json!({
            "type": "modal",
            "callback_id": DENY_CALLBACK,
            "private_metadata": request,
            "title": {"type": "plain_text", "text": "Deny access"},
            "submit": {"type": "plain_text", "text": "Deny"},
            "close": {"type": "plain_text", "text": "Cancel"},
            "blocks": [{
                "type": "input",
                "block_id": REASON_BLOCK,
                "label": {"type": "plain_text", "text": "Why? The requester reads this."},
                "element": {
                    "type": "plain_text_input",
                    "action_id": REASON_INPUT,
                    "multiline": true,
                    "max_length": 500
                }
            }]
        });
        let answer: SlackAnswer = self
            .http
            .post(format!("{}/views.open", self.base))
            .bearer_auth(&self.token)
            .json(&json!({"trigger_id": trigger_id, "view": view}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        if answer.ok {
            Ok(())
        } else {
            Err(SlackError::Refused(
                answer.error.unwrap_or_else(|| "not ok".into()),
            ))
        }
    }

    /// The Slack member with `email` (`users.lookupByEmail`); `None` when there is none.
    pub async fn member_by_email(&self, email: &str) -> Result<Option<String>, SlackError> {
        #[derive(Deserialize)]
        struct Found {
            ok: bool,
            error: Option<String>,
            user: Option<Member>,
        }
        #[derive(Deserialize)]
        struct Member {
            id: String,
        }
        let response = self
            .http
            .post(format!("{}/users.lookupByEmail", self.base))
            .bearer_auth(&self.token)
            .form(&[("email", email)])
            .send()
            .await?;
        let answer: Found = rate_checked(response)?.json().await?;
        match answer {
            Found { ok: true, user, .. } => Ok(user.map(|u| u.id)),
            Found { error, .. } if error.as_deref() == Some("users_not_found") => Ok(None),
            Found { error, .. } => Err(SlackError::Refused(
                error.unwrap_or_else(|| "not ok".into()),
            )),
        }
    }

    /// The DM channel with member `user` (`conversations.open`).
    pub async fn open_dm(&self, user: &str) -> Result<String, SlackError> {
        #[derive(Deserialize)]
        struct Opened {
            ok: bool,
            error: Option<String>,
            channel: Option<Channel>,
        }
        #[derive(Deserialize)]
        struct Channel {
            id: String,
        }
        let response = self
            .http
            .post(format!("{}/conversations.open", self.base))
            .bearer_auth(&self.token)
            .json(&json!({"users": user}))
            .send()
            .await?;
        let answer: Opened = rate_checked(response)?.json().await?;
        match answer {
            Opened {
                ok: true,
                channel: Some(channel),
                ..
            } => Ok(channel.id),
            Opened { error, .. } => Err(SlackError::Refused(
                error.unwrap_or_else(|| "no channel in the answer".into()),
            )),
        }
    }

    /// Posts a message (`chat.postMessage`): where it landed.
    pub async fn post_message(
        &self,
        channel: &str,
        text: &str,
        blocks: &serde_json::Value,
    ) -> Result<MessageRef, SlackError> {
        let body =
            json!({"channel": channel, "text": text, "blocks": blocks, "unfurl_links": false});
        self.chat("chat.postMessage", &body).await
    }

    /// Replies in the thread of `at`, shown in the channel too (`reply_broadcast`).
    pub async fn post_broadcast_reply(
        &self,
        at: &MessageRef,
        text: &str,
        blocks: &serde_json::Value,
    ) -> Result<MessageRef, SlackError> {
        let body = json!({"channel": at.channel, "thread_ts": at.ts, "reply_broadcast": true,
                          "text": text, "blocks": blocks, "unfurl_links": false});
        self.chat("chat.postMessage", &body).await
    }

    /// Replaces the message at `at` (`chat.update`).
    pub async fn update_message(
        &self,
        at: &MessageRef,
        text: &str,
        blocks: &serde_json::Value,
    ) -> Result<MessageRef, SlackError> {
        let body = json!({"channel": at.channel, "ts": at.ts, "text": text, "blocks": blocks});
        self.chat("chat.update", &body).await
    }

    async fn chat(&self, method: &str, body: &serde_json::Value) -> Result<MessageRef, SlackError> {
        let response = self
            .http
            .post(format!("{}/{method}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .map_err(|e| SlackError::Unreachable(e.without_url()))?;
        let answer: Posted = rate_checked(response)?
            .json()
            .await
            .map_err(|e| SlackError::Unreachable(e.without_url()))?;
        match answer {
            Posted {
                ok: true,
                channel: Some(channel),
                ts: Some(ts),
                ..
            } => Ok(MessageRef { channel, ts }),
            Posted { error, .. } => Err(SlackError::Refused(
                error.unwrap_or_else(|| "no channel or ts in the answer".into()),
            )),
        }
    }

    /// Tells the clicker `text`, visible to them only, through the interaction's
    /// `response_url` (Slack's own hooks host, or the configured API's host in tests).
    pub async fn tell(&self, response_url: &str, text: &str) -> Result<(), SlackError> {
        if !self.is_slack_url(response_url) {
            let host = response_url
                .split("://")
                .nth(1)
                .and_then(|rest| rest.split(['/', '?', '#']).next())
                .unwrap_or("")
                .to_owned();
            return Err(SlackError::ForeignUrl(host));
        }
        self.http
            .post(response_url)
            .json(&json!({
                "response_type": "ephemeral",
                "replace_original": false,
                "text": text,
            }))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| SlackError::Unreachable(e.without_url()))?;
        Ok(())
    }

    /// Whether `url` is Slack's: jitgate posts only there, whatever a payload says.
    fn is_slack_url(&self, url: &str) -> bool {
        let origin = |u: &str| -> Option<String> {
            let rest = u
                .strip_prefix("https://")
                .or_else(|| u.strip_prefix("http://"))?;
            let host = rest.split('/').next()?;
            Some(format!("{}{host}", &u[..u.len() - rest.len()]))
        };
        match (origin(url), origin(&self.base)) {
            (Some(o), _) if o == "https://hooks.slack.com" => true,
            (Some(o), Some(base)) => o == base,
            _ => false,
        }
    }
}

/// A 429 as [`SlackError::RateLimited`] with Slack's `Retry-After`; other error statuses as
/// unreachable.
fn rate_checked(response: reqwest::Response) -> Result<reqwest::Response, SlackError> {
    if response.status() == reqwest::StatusCode::TOO_MANY_REQUESTS {
        let wait = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(1);
        return Err(SlackError::RateLimited(Duration::from_secs(
            wait.clamp(1, 300),
        )));
    }
    response
        .error_for_status()
        .map_err(|e| SlackError::Unreachable(e.without_url()))
}
