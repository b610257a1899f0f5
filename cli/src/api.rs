//! The server's JSON API (`/api/v1`), with the saved token, answering the wire types of
//! jitgate-proto. A refusal becomes a [`Failure`] with the server's own words and the
//! exit code of its kind.

use std::time::Duration;

use anyhow::Result;
use jitgate_proto::ErrorBody;
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::exit::{FAILED, Failure, NOT_LOGGED_IN, REFUSED, UNREACHABLE};

pub struct Api {
    http: reqwest::Client,
    server: String,
    token: Option<String>,
}

impl Api {
    /// A client of `server`, authenticated with `token` when given.
    pub fn new(server: &str, token: Option<String>) -> Result<Api> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("jitgate-cli/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Api {
            http,
            server: server.to_owned(),
            token,
        })
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.call(Method::GET, path, None::<&()>).await
    }

    pub async fn post<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T> {
        self.call(Method::POST, path, Some(body)).await
    }

    /// `DELETE`, answering nothing.
    pub async fn delete(&self, path: &str) -> Result<()> {
        let response = self.send(Method::DELETE, path, None::<&()>).await?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(refusal(response).await)
        }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T> {
        let response = self.send(method, path, body).await?;
        if !response.status().is_success() {
            return Err(refusal(response).await);
        }
        let url = response.url().to_string();
        let bytes = response.bytes().await.map_err(|e| unreachable(&url, &e))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            Failure::new(
                FAILED,
                format!("{url} answered something this jitgate does not understand ({e}); is the server the same version?"),
            )
            .into()
        })
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<reqwest::Response> {
        let url = format!("{}/api/v1{path}", self.server);
        let mut request = self.http.request(method, &url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        request
            .send()
            .await
            .map_err(|e| unreachable(&url, &e).into())
    }
}

fn unreachable(url: &str, e: &reqwest::Error) -> Failure {
    Failure::new(
        UNREACHABLE,
        format!("cannot reach {url}: {e}; check the server URL and your network"),
    )
}

/// The failure an error answer stands for, in the server's words.
async fn refusal(response: reqwest::Response) -> anyhow::Error {
    let status = response.status();
    let said = response
        .json::<ErrorBody>()
        .await
        .map(|b| b.error.message)
        .unwrap_or_else(|_| status.to_string());
    let code = match status {
        StatusCode::UNAUTHORIZED => {
            return Failure::new(NOT_LOGGED_IN, format!("{said}; run: jitgate login")).into();
        }
        StatusCode::FORBIDDEN
        | StatusCode::NOT_FOUND
        | StatusCode::CONFLICT
        | StatusCode::UNPROCESSABLE_ENTITY
        | StatusCode::BAD_REQUEST
        | StatusCode::TOO_MANY_REQUESTS => REFUSED,
        s if s.is_server_error() => UNREACHABLE,
        _ => FAILED,
    };
    Failure::new(code, said).into()
}
