//! `/api/v1/me` and `/api/v1/profiles`.

use axum::Json;
use axum::extract::State;
use jitgate_proto::{ErrorBody, MeView, ProfileView};

use super::auth::ApiUser;
use crate::http::{AppState, access};

/// `GET /me`: who the caller is and what they may do.
#[utoipa::path(
    get,
    path = "/me",
    summary = "Who the caller is and what they may do",
    responses(
        (status = 200, body = MeView),
        (status = 401, description = "no valid token or session", body = ErrorBody),
    )
)]
pub(super) async fn me(State(state): State<AppState>, caller: ApiUser) -> Json<MeView> {
    let user = &caller.user;
    Json(MeView {
        id: user.user.id.to_string(),
        user_name: user.user.user_name.clone(),
        email: user.user.email.clone(),
        name: user.user.name.clone(),
        groups: user.user.groups.clone(),
        is_admin: user.actor.is_admin,
        requester_of: state
            .broker
            .rules()
            .requestable(&user.actor)
            .into_iter()
            .map(|p| p.profile.clone())
            .collect(),
        approver_of: access::approved_profiles(user, state.broker.rules()),
    })
}

/// `GET /profiles`: every profile, with what the caller may do with it.
#[utoipa::path(
    get,
    path = "/profiles",
    summary = "Every profile, with what the caller may do with it",
    responses(
        (status = 200, body = [ProfileView]),
        (status = 401, description = "no valid token or session", body = ErrorBody),
    )
)]
pub(super) async fn profiles(
    State(state): State<AppState>,
    caller: ApiUser,
) -> Json<Vec<ProfileView>> {
    let user = &caller.user;
    Json(
        state
            .config
            .profiles
            .iter()
            // Someone sees the profiles they may request or approve (admins: all), not
            // the whole configuration.
            .filter(|p| {
                user.actor.is_admin
                    || state.broker.rules().policy(&p.name).is_some_and(|policy| {
                        access::may_request(state.broker.rules(), user, policy)
                            || access::approves(user, policy)
                    })
            })
            .map(|p| ProfileView {
                name: p.name.clone(),
                description: p.description.clone(),
                accounts: p.accounts.iter().map(ToString::to_string).collect(),
                allowed_os_users: p.allowed_os_users.iter().map(ToString::to_string).collect(),
                run_as_mode: p.run_as_mode.as_str().to_owned(),
                max_duration_secs: p.max_duration.get().as_secs(),
                approvals_required: p.approvals_required,
                auto_approve: p.auto_approve,
                may_request: state
                    .broker
                    .rules()
                    .policy(&p.name)
                    .is_some_and(|policy| access::may_request(state.broker.rules(), user, policy)),
                may_approve: state
                    .broker
                    .rules()
                    .policy(&p.name)
                    .is_some_and(|policy| access::approves(user, policy)),
            })
            .collect(),
    )
}
