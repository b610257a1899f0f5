//! The browser side of `jitgate login` (as `gh auth login` does): the CLI listens on a
//! loopback port and opens `GET /cli/login?port&state&code_challenge&name`; the person
//! signs in (if needed) and confirms on a page; `POST /cli/login` sends the browser to
//! `http://127.0.0.1:PORT/callback?code&state` with a one-time code that the CLI trades,
//! with its PKCE verifier, at `POST /api/v1/cli/token`.
//! <https://www.rfc-editor.org/rfc/rfc8252> (loopback redirect), RFC 7636 (PKCE).

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use tower_sessions::Session;

use super::session::{MaybeUser, UserView, check_csrf};
use super::{AppState, WebError};

/// What the CLI sends (query of the GET, hidden fields of the POST).
#[derive(Debug, Deserialize)]
pub(super) struct CliRequest {
    port: String,
    state: String,
    code_challenge: String,
    #[serde(default)]
    code_challenge_method: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    csrf: Option<String>,
}

/// The validated request.
struct Valid {
    port: u16,
    state: String,
    code_challenge: String,
    name: String,
}

fn url_safe(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

impl CliRequest {
    fn validate(&self) -> Result<Valid, WebError> {
        let bad = |what: &str| {
            WebError::BadRequest(format!(
                "this CLI login link is broken ({what}); run `jitgate login` again"
            ))
        };
        let port: u16 = self.port.parse().map_err(|_| bad("port"))?;
        if port < 1024 {
            return Err(bad("port"));
        }
        if !(16..=128).contains(&self.state.len()) || !url_safe(&self.state) {
            return Err(bad("state"));
        }
        // S256 challenges are 43 base64url characters; plain is refused (RFC 7636 4.2).
        if self.code_challenge.len() != 43 || !url_safe(&self.code_challenge) {
            return Err(bad("code_challenge"));
        }
        if self
            .code_challenge_method
            .as_deref()
            .is_some_and(|m| m != "S256")
        {
            return Err(bad("code_challenge_method must be S256"));
        }
        let name = self
            .name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .unwrap_or("jitgate CLI");
        if name.chars().count() > 100 || crate::domain::visible_text("name", name).is_err() {
            return Err(bad("name"));
        }
        Ok(Valid {
            port,
            state: self.state.clone(),
            code_challenge: self.code_challenge.clone(),
            name: name.to_owned(),
        })
    }
}

#[derive(Template)]
#[template(path = "cli_login.html")]
struct ConfirmPage {
    user: Option<UserView>,
    csrf: String,
    port: u16,
    state: String,
    code_challenge: String,
    name: String,
}

/// `GET /cli/login`: sign in first if needed, then ask the person to confirm.
pub(super) async fn confirm(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    uri: axum::http::Uri,
    Query(request): Query<CliRequest>,
) -> Result<Response, WebError> {
    let valid = request.validate()?;
    let Some(user) = user else {
        let back = uri.path_and_query().map_or("/cli/login", |pq| pq.as_str());
        let target = format!("/login?return_to={}", urlencode(back));
        return Ok(Redirect::to(&target).into_response());
    };
    let page = ConfirmPage {
        csrf: user.csrf.clone(),
        user: Some(user.view(&state)),
        port: valid.port,
        state: valid.state,
        code_challenge: valid.code_challenge,
        name: valid.name,
    };
    let html = page
        .render()
        .map_err(|e| WebError::Internal(format!("rendering the CLI login page: {e}")))?;
    Ok(Html(html).into_response())
}

/// `POST /cli/login`: the person confirmed; hand a one-time code to the CLI's listener.
pub(super) async fn approve(
    State(state): State<AppState>,
    session: Session,
    MaybeUser(user): MaybeUser,
    Form(request): Form<CliRequest>,
) -> Result<Redirect, WebError> {
    check_csrf(&session, request.csrf.as_deref()).await?;
    let user = user.ok_or(WebError::SignInRequired)?;
    let valid = request.validate()?;
    let code = state
        .broker
        .approve_cli_login(&user.actor, valid.code_challenge, valid.name)
        .await?;
    Ok(Redirect::to(&format!(
        "http://127.0.0.1:{}/callback?code={code}&state={}",
        valid.port, valid.state
    )))
}

/// Percent-encodes a path-and-query for use as one query parameter value.
pub(super) fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(port: &str, state: &str, challenge: &str) -> CliRequest {
        CliRequest {
            port: port.into(),
            state: state.into(),
            code_challenge: challenge.into(),
            code_challenge_method: Some("S256".into()),
            name: None,
            csrf: None,
        }
    }

    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn only_well_formed_cli_requests_pass() {
        assert!(
            request("49152", "abcdefghijklmnop", CHALLENGE)
                .validate()
                .is_ok()
        );
        assert!(
            request("80", "abcdefghijklmnop", CHALLENGE)
                .validate()
                .is_err(),
            "privileged port"
        );
        assert!(request("49152", "short", CHALLENGE).validate().is_err());
        assert!(
            request("49152", "abcdefghijklmnop&x=1", CHALLENGE)
                .validate()
                .is_err()
        );
        assert!(
            request("49152", "abcdefghijklmnop", "plain")
                .validate()
                .is_err()
        );
        let mut plain = request("49152", "abcdefghijklmnop", CHALLENGE);
        plain.code_challenge_method = Some("plain".into());
        assert!(plain.validate().is_err());
    }

    #[test]
    fn the_return_path_is_one_query_value() {
        assert_eq!(
            urlencode("/cli/login?port=1&state=a"),
            "/cli/login%3Fport%3D1%26state%3Da"
        );
    }
}
