//! What a web session holds (the signed-in user, a CSRF token, a sign-in in progress)
//! and the extractors that read it. A session expires after `[auth] session_idle`
//! without requests (the cookie store's expiry) and `session_max` after sign-in (checked
//! here).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use tower_sessions::Session;

use super::{AppState, WebError};
use crate::broker::Stale;
use crate::domain::Actor;
use crate::domain::User;

pub(super) const USER_KEY: &str = "user";
pub(super) const FLOW_KEY: &str = "login_flow";
const CSRF_KEY: &str = "csrf";

/// The session's record of who signed in, and when.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct SessionUser {
    pub id: String,
    pub signed_in_at_millis: i64,
    /// When the provider last authenticated them (its `auth_time`), if it said.
    #[serde(default)]
    pub authenticated_at_millis: Option<i64>,
}

/// The signed-in person of a request; extracting it refuses anonymous requests.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub user: User,
    pub csrf: String,
    /// Who they are to the rules, with their groups as of their last sign-in: built once
    /// per request, used for every decision of it.
    pub actor: Actor,
}

/// The signed-in person, if any.
pub struct MaybeUser(pub Option<CurrentUser>);

impl CurrentUser {
    /// What a page shows of the person.
    pub fn view(&self, state: &AppState) -> UserView {
        let rules = state.broker.rules();
        let mut roles = Vec::new();
        let mut is_requester = false;
        for p in rules.policies() {
            if rules.may_request(&self.actor, p) {
                is_requester = true;
                roles.push(format!("requester ({})", p.profile));
            }
            // Admins approve every profile; their role says "admin" once instead.
            if !self.actor.is_admin && p.may_approve(&self.actor) {
                roles.push(format!("approver ({})", p.profile));
            }
        }
        if self.actor.is_admin {
            roles.push("admin".into());
        }
        if roles.is_empty() {
            roles.push("none".into());
        }
        UserView {
            display: self
                .user
                .name
                .clone()
                .unwrap_or_else(|| self.user.user_name.clone()),
            groups: self.user.groups.clone(),
            roles,
            csrf: self.csrf.clone(),
            is_requester,
            is_approver: !super::access::approved_profiles(self, state.broker.rules()).is_empty(),
            is_admin: self.actor.is_admin,
            slack: state.slack.is_some(),
        }
    }
}

impl CurrentUser {
    /// Whether the person has any role at all (requester, approver or admin).
    pub fn has_a_role(&self, rules: &jitgate_core::app::Rules) -> bool {
        self.actor.is_admin
            || !rules.requestable(&self.actor).is_empty()
            || !rules.approved_profiles(&self.actor).is_empty()
    }

    /// The refusal for lacking `role`: it names the `groups` that give it to someone
    /// who has some role, and nothing of the configuration to someone with none.
    pub fn missing_role(
        &self,
        rules: &jitgate_core::app::Rules,
        role: &'static str,
        groups: Vec<String>,
    ) -> WebError {
        WebError::MissingRole {
            role,
            groups: self.has_a_role(rules).then_some(groups),
            yours: self.user.groups.clone(),
        }
    }
}

/// The signed-in person as templates show them.
#[derive(Debug, Clone)]
pub struct UserView {
    pub display: String,
    pub groups: Vec<String>,
    pub roles: Vec<String>,
    pub csrf: String,
    /// May request some profile: the nav offers "New request".
    pub is_requester: bool,
    /// Approves some profile (admins approve all): the nav shows the approval queue.
    pub is_approver: bool,
    /// In `[auth] admin_groups`: the nav shows the admin pages.
    pub is_admin: bool,
    /// Slack is set up: the nav offers linking a Slack account.
    pub slack: bool,
}

async fn session_of(parts: &mut Parts, state: &AppState) -> Result<Session, WebError> {
    Session::from_request_parts(parts, state)
        .await
        .map_err(|(_, why)| WebError::Internal(format!("session layer missing: {why}")))
}

impl FromRequestParts<AppState> for MaybeUser {
    type Rejection = WebError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let session = session_of(parts, state).await?;
        let Some(signed_in) = session
            .get::<SessionUser>(USER_KEY)
            .await
            .map_err(internal)?
        else {
            return Ok(MaybeUser(None));
        };
        let max_millis =
            i64::try_from(state.config.auth.session_max.get().as_millis()).unwrap_or(i64::MAX);
        if state
            .broker
            .now()
            .timestamp_millis()
            .saturating_sub(signed_in.signed_in_at_millis)
            > max_millis
        {
            session.flush().await.map_err(internal)?;
            return Ok(MaybeUser(None));
        }
        let Some(user) = state.broker.person(&signed_in.id).await? else {
            session.flush().await.map_err(internal)?;
            return Ok(MaybeUser(None));
        };
        // The provider stopped accepting them after this session began.
        if user
            .cut_off_at
            .is_some_and(|cut| cut.timestamp_millis() >= signed_in.signed_in_at_millis)
        {
            session.flush().await.map_err(internal)?;
            return Ok(MaybeUser(None));
        }
        let user = match state.broker.confirmed(user, &state.oidc).await {
            Ok(user) => user,
            Err(Stale::SignInAgain(why)) => {
                tracing::info!(user = %signed_in.id, reason = %why, "session ended: claims too old");
                session.flush().await.map_err(internal)?;
                return Ok(MaybeUser(None));
            }
            Err(Stale::Unavailable(why)) => return Err(WebError::Unavailable(why)),
            Err(Stale::Failed(e)) => return Err(e.into()),
        };
        let csrf = csrf_token(&session).await?;
        keep_alive(&session, state).await?;
        let mut actor = state
            .broker
            .rules()
            .actor(user.id.clone(), user.groups.clone());
        actor.authenticated_at = signed_in
            .authenticated_at_millis
            .and_then(chrono::DateTime::from_timestamp_millis);
        Ok(MaybeUser(Some(CurrentUser { user, csrf, actor })))
    }
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = WebError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        MaybeUser::from_request_parts(parts, state)
            .await?
            .0
            .ok_or(WebError::SignInRequired)
    }
}

/// The key of when the signed-in session was last seen (in steps of [`keep_alive`]).
const SEEN_KEY: &str = "seen";

/// Slides the idle timeout with use: the store renews a session's expiry only when the
/// session is written, so a person who only reads pages would be signed out
/// `session_idle` after sign-in however busy. Writing when it was last seen, at most
/// once a step (a minute, or a quarter of the idle timeout if shorter), renews it at
/// the cost of one write a step per active person.
async fn keep_alive(session: &Session, state: &AppState) -> Result<(), WebError> {
    let idle = state.config.auth.session_idle.get();
    let step = (idle / 4).clamp(
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(60),
    );
    let step_millis = i64::try_from(step.as_millis()).unwrap_or(60_000).max(1);
    let now = state.broker.now().timestamp_millis() / step_millis;
    let seen: Option<i64> = session.get(SEEN_KEY).await.map_err(internal)?;
    if seen != Some(now) {
        session.insert(SEEN_KEY, now).await.map_err(internal)?;
    }
    Ok(())
}

/// The session's CSRF token, made on first use. Every form posts it back.
pub(super) async fn csrf_token(session: &Session) -> Result<String, WebError> {
    if let Some(token) = session.get::<String>(CSRF_KEY).await.map_err(internal)? {
        return Ok(token);
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = hex::encode(bytes);
    session.insert(CSRF_KEY, &token).await.map_err(internal)?;
    Ok(token)
}

/// Refuses a form whose CSRF token is missing or not this session's (constant time).
pub(super) async fn check_csrf(session: &Session, sent: Option<&str>) -> Result<(), WebError> {
    let expected = session.get::<String>(CSRF_KEY).await.map_err(internal)?;
    match (expected, sent) {
        (Some(expected), Some(sent)) if bool::from(expected.as_bytes().ct_eq(sent.as_bytes())) => {
            Ok(())
        }
        _ => Err(WebError::Forbidden(
            "this form has expired or did not come from jitgate (missing or wrong CSRF token); \
             reload the page and try again"
                .into(),
        )),
    }
}

pub(super) fn internal(e: tower_sessions::session::Error) -> WebError {
    WebError::Internal(format!("session store: {e}"))
}
