//! `GET /requests/new` (the request form) and `POST /requests` (submit it). A refused
//! submission shows the form again with every input kept and the message next to the
//! field at fault.

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;
use tower_sessions::Session;

use super::view::{self, non_blank, parse_duration};
use super::{OrPage, PageResult, Viewer, render};
use crate::config::ProfileConfig;
use crate::domain::Draft;
use crate::http::session::{UserView, check_csrf};
use crate::http::{AppState, CurrentUser, WebError, access};

/// The fields of the request form, as typed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(super) struct RequestForm {
    csrf: Option<String>,
    profile: String,
    account: String,
    os_user: String,
    duration: String,
    reason: String,
    ticket: String,
}

/// The form's fields, for finding where a message goes.
const FIELDS: [&str; 6] = [
    "profile", "account", "os_user", "duration", "reason", "ticket",
];

/// A profile as the form describes it.
struct ProfileChoice {
    name: String,
    description: String,
    accounts: Vec<String>,
    os_users: Vec<String>,
    max_duration: String,
    approvals: String,
}

/// An option of a `<select>`.
struct Choice {
    value: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "request_form.html")]
struct FormPage {
    user: Option<UserView>,
    profiles: Vec<ProfileChoice>,
    profile_options: Vec<Choice>,
    account_options: Vec<Choice>,
    os_user_options: Vec<Choice>,
    input: RequestForm,
    /// The refusal to show, and the field it is about (`None`: at the top).
    error: Option<(Option<&'static str>, String)>,
}

impl FormPage {
    /// The session's CSRF token.
    fn csrf(&self) -> &str {
        self.user.as_ref().map_or("", |u| u.csrf.as_str())
    }

    /// The message to show next to `field`, if the refusal is about it.
    fn error_for(&self, field: &str) -> Option<&str> {
        match &self.error {
            Some((Some(f), message)) if *f == field => Some(message),
            _ => None,
        }
    }

    /// The message to show above the form: a refusal about no field of the form.
    fn top_error(&self) -> Option<&str> {
        match &self.error {
            Some((Some(f), _)) if FIELDS.contains(f) => None,
            Some((_, message)) => Some(message),
            None => None,
        }
    }
}

/// `GET /requests/new`: 403 for someone who may request no profile.
pub(super) async fn show(State(state): State<AppState>, viewer: Viewer) -> PageResult {
    let profiles = requestable(&state, &viewer.user).or_page(&viewer)?;
    let mut input = RequestForm::default();
    // One choice is no choice: preselect it.
    if let [only] = profiles.as_slice() {
        input.profile = only.name.clone();
        if let [account] = only.accounts.as_slice() {
            input.account = account.to_string();
        }
    }
    let page = form_page(&viewer, &profiles, input, None);
    render(StatusCode::OK, &page).or_page(&viewer)
}

/// `POST /requests`: files the request and goes to its page.
pub(super) async fn submit(
    State(state): State<AppState>,
    viewer: Viewer,
    session: Session,
    Form(form): Form<RequestForm>,
) -> PageResult {
    check_csrf(&session, form.csrf.as_deref())
        .await
        .or_page(&viewer)?;
    let profiles = requestable(&state, &viewer.user).or_page(&viewer)?;
    let submitted = async {
        for (field, value, what) in [
            ("profile", &form.profile, "a profile"),
            ("account", &form.account, "an account"),
            ("os_user", &form.os_user, "an OS user"),
        ] {
            if value.trim().is_empty() {
                return Err(WebError::Invalid {
                    field: Some(field),
                    message: format!("choose {what}"),
                });
            }
        }
        let draft = Draft {
            profile: form.profile.trim().to_owned(),
            account: form.account.clone(),
            os_user: form.os_user.clone(),
            duration: parse_duration("duration", &form.duration)?,
            reason: form.reason.clone(),
            ticket: non_blank(&form.ticket),
        };
        Ok::<_, WebError>(
            state
                .broker
                .submit(&viewer.user.actor, draft, state.broker.now())
                .await?,
        )
    }
    .await;
    match submitted {
        Ok(stored) => Ok(Redirect::to(&format!("/requests/{}", stored.request.id)).into_response()),
        Err(e) if e.is_refusal() => {
            let status = e.status();
            let (message, _) = e.public_message();
            let page = form_page(&viewer, &profiles, form, Some((e.field(), message)));
            render(status, &page).or_page(&viewer)
        }
        Err(e) => Err(viewer.refuse(e)),
    }
}

/// The profiles `user` may request, or the refusal naming the groups that may.
fn requestable<'a>(
    state: &'a AppState,
    user: &CurrentUser,
) -> Result<Vec<&'a ProfileConfig>, WebError> {
    let profiles: Vec<&ProfileConfig> = state
        .config
        .profiles
        .iter()
        .filter(|p| {
            state
                .broker
                .rules()
                .policy(&p.name)
                .is_some_and(|policy| access::may_request(state.broker.rules(), user, policy))
        })
        .collect();
    if !profiles.is_empty() {
        return Ok(profiles);
    }
    let mut groups: Vec<String> = Vec::new();
    for profile in &state.config.profiles {
        for group in &profile.requester_groups {
            if !groups.contains(group) {
                groups.push(group.clone());
            }
        }
    }
    Err(user.missing_role(state.broker.rules(), "requester", groups))
}

fn form_page(
    viewer: &Viewer,
    profiles: &[&ProfileConfig],
    mut input: RequestForm,
    error: Option<(Option<&'static str>, String)>,
) -> FormPage {
    // The token is the session's, not whatever was posted.
    input.csrf = None;
    let mut accounts: Vec<String> = Vec::new();
    let mut os_users: Vec<String> = Vec::new();
    for p in profiles {
        for a in &p.accounts {
            push_new(&mut accounts, a.to_string());
        }
        for u in &p.allowed_os_users {
            push_new(&mut os_users, u.to_string());
        }
    }
    let names: Vec<String> = profiles.iter().map(|p| p.name.clone()).collect();
    FormPage {
        user: Some(viewer.view.clone()),
        profiles: profiles.iter().map(|p| describe(p)).collect(),
        profile_options: options(&names, &input.profile),
        account_options: options(&accounts, &input.account),
        os_user_options: options(&os_users, &input.os_user),
        input,
        error,
    }
}

fn describe(p: &ProfileConfig) -> ProfileChoice {
    let approvals = if p.auto_approve {
        "approved automatically".to_owned()
    } else {
        match p.approvals_required.max(1) {
            1 => "needs 1 approval".to_owned(),
            n => format!("needs {n} approvals"),
        }
    };
    ProfileChoice {
        name: p.name.clone(),
        description: p.description.clone(),
        accounts: p.accounts.iter().map(ToString::to_string).collect(),
        os_users: p.allowed_os_users.iter().map(ToString::to_string).collect(),
        max_duration: view::duration(p.max_duration.get()),
        approvals,
    }
}

/// The options of a select; a posted value that is not one of them (typed by hand or
/// from a stale page) is kept as an extra option so the form shows what was sent.
fn options(known: &[String], chosen: &str) -> Vec<Choice> {
    let chosen = chosen.trim();
    let mut choices: Vec<Choice> = known
        .iter()
        .map(|value| Choice {
            value: value.clone(),
            selected: value == chosen,
        })
        .collect();
    if !chosen.is_empty() && !known.iter().any(|k| k == chosen) {
        choices.push(Choice {
            value: chosen.to_owned(),
            selected: true,
        });
    }
    choices
}

fn push_new(list: &mut Vec<String>, value: String) {
    if !list.contains(&value) {
        list.push(value);
    }
}
