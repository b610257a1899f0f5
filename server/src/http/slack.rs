//! `POST /slack/interactions` (`[slack] mode = "http"`): a click on a jitgate message in
//! Slack, posted by Slack. The signature is checked before anything in the body is read
//! (`slack/signature.rs`); the interaction is then handled as one that came over Socket
//! Mode (`slack/interactions.rs`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::slack::interactions::Reply;
use crate::slack::signature;

/// `POST /slack/interactions`: 401 unless Slack signed it; 404 unless Slack is set up in
/// HTTP mode.
pub(super) async fn interactions(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(slack) = state.slack_http.clone() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Some(secret) = slack.slack.signing_secret() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Err(why) = signature::verify(
        secret,
        header("x-slack-request-timestamp"),
        header("x-slack-signature"),
        &body,
        state.broker.now(),
    ) {
        tracing::warn!(reason = %why, "Slack interaction refused: not signed by Slack");
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let payload = form_urlencoded::parse(&body)
        .find(|(key, _)| key == "payload")
        .and_then(|(_, value)| serde_json::from_str::<serde_json::Value>(&value).ok());
    let Some(payload) = payload else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    match slack.handle(payload).await {
        Ok(Reply::Ack) => StatusCode::OK.into_response(),
        Ok(Reply::Body(body)) => Json(body).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "Slack interaction not understood");
            StatusCode::BAD_REQUEST.into_response()
        }
    }
}
