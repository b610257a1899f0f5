//! HTTP: health and readiness, sign-in, and the server-rendered pages. All routes are
//! listed in [`router`]; every response carries the security headers of
//! [`security_headers`].

pub mod access;
mod api;
mod cli_login;
mod error;
pub mod listen;
mod pages;
mod session;
mod signin;
mod slack;

pub use error::WebError;
pub use session::CurrentUser;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

use crate::aws::IdcClient;
use crate::broker::Broker;
use crate::config::Config;
use crate::oidc::Provider;

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    /// The sign-in provider: not configured, not reached yet, or ready.
    pub oidc: Provider,
    pub broker: Broker<IdcClient>,
    /// Slack's Web API, when `[slack]` is configured (the link page sends codes).
    pub slack: Option<Arc<crate::slack::SlackApi>>,
    /// Slack's interactions, when `[slack] mode = "http"`.
    pub slack_http: Option<crate::slack::Interactions>,
}

/// The name of jitgate's session cookie.
pub const SESSION_COOKIE: &str = "jitgate_session";

/// All routes, with sessions stored in `sessions` (the store's tower-sessions store of
/// the configured backend: the HTTP layer needs only the trait).
pub fn router<S: tower_sessions::SessionStore + Clone>(state: AppState, sessions: S) -> Router {
    let secure = state.config.server.public_url.starts_with("https://");
    let request_timeout = state.config.server.request_timeout.get();
    let idle = time_duration(state.config.auth.session_idle.get());
    let app = Router::new()
        .route("/login", get(signin::login))
        .route("/auth/callback", get(signin::callback))
        .route("/logout", post(signin::logout))
        .route(
            "/cli/login",
            get(cli_login::confirm).post(cli_login::approve),
        )
        .route("/slack/interactions", post(slack::interactions))
        .merge(pages::router())
        .nest("/api/v1", api::router())
        .fallback(pages::not_found)
        .with_state(state.clone());
    let app = app.layer(session_layer(sessions, secure, idle));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
        .merge(app)
        .layer(middleware::from_fn_with_state(secure, security_headers))
        .layer(middleware::from_fn_with_state(
            request_timeout,
            listen::request_timeout,
        ))
}

fn session_layer<S: tower_sessions::SessionStore + Clone>(
    store: S,
    secure: bool,
    idle: tower_sessions::cookie::time::Duration,
) -> SessionManagerLayer<S> {
    SessionManagerLayer::new(store)
        .with_name(SESSION_COOKIE)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(secure)
        .with_expiry(Expiry::OnInactivity(idle))
}

fn time_duration(d: std::time::Duration) -> tower_sessions::cookie::time::Duration {
    tower_sessions::cookie::time::Duration::seconds(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Headers on every response: no framing, no referrer, a strict content policy (pages
/// work without JavaScript, so none is allowed); nothing kept in a cache (pages and
/// answers are a person's, and one shows a new token's secret); and, when jitgate is
/// reached over https, HSTS so a browser never tries it over plain http.
async fn security_headers(State(https): State<bool>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if https {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=63072000"),
        );
    }
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// The process is up.
async fn healthz() -> &'static str {
    "ok"
}

/// The process can serve everything: its database answers, the permission sets are
/// looked up in IAM Identity Center, and the identity provider is reached. Otherwise
/// 503 with one line per missing part (the scheduler runs and revokes regardless).
async fn readyz(State(state): State<AppState>) -> (StatusCode, String) {
    let mut problems = Vec::new();
    if let Err(e) = state.broker.database_ready().await {
        tracing::warn!(error = %e, "not ready: database unreachable");
        problems.push("database: unreachable".to_owned());
    }
    problems.extend(state.broker.catalog().problem());
    problems.extend(state.oidc.problem());
    if problems.is_empty() {
        (StatusCode::OK, "ready".into())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready:\n{}\n", problems.join("\n")),
        )
    }
}
