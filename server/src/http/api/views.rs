//! Domain and store values as the API's wire types (`jitgate-proto`).

use jitgate_proto as proto;

use crate::config::Config;
use crate::domain::RequestRecord;
use crate::domain::{Approval, EndReason, RequestState, StateName};

fn state(name: StateName) -> proto::RequestState {
    match name {
        StateName::Pending => proto::RequestState::Pending,
        StateName::Approved => proto::RequestState::Approved,
        StateName::Active => proto::RequestState::Active,
        StateName::Ended => proto::RequestState::Ended,
        StateName::Denied => proto::RequestState::Denied,
        StateName::Cancelled => proto::RequestState::Cancelled,
        StateName::Lapsed => proto::RequestState::Lapsed,
        StateName::Failed => proto::RequestState::Failed,
    }
}

fn approvals(list: &[Approval]) -> Vec<proto::ApprovalView> {
    list.iter()
        .map(|a| proto::ApprovalView {
            by: a.by.to_string(),
            at: a.at,
        })
        .collect()
}

/// A request as the API shows it.
pub fn request(stored: &RequestRecord, config: &Config) -> proto::RequestView {
    let r = &stored.request;
    let (activated_at, ended_at, end_reason, failure_reason) = match &r.state {
        RequestState::Active { activated_at, .. } => (Some(*activated_at), None, None, None),
        RequestState::Ended {
            activated_at,
            ended_at,
            why,
        } => {
            let why = match why {
                EndReason::Expired => "expired",
                EndReason::Revoked { .. } => "revoked",
            };
            (*activated_at, Some(*ended_at), Some(why.to_owned()), None)
        }
        RequestState::Failed { reason, .. } => (None, None, None, Some(reason.clone())),
        _ => (None, None, None, None),
    };
    let (denied_by, deny_comment) = match &r.state {
        RequestState::Denied { by, comment, .. } => (Some(by.to_string()), comment.clone()),
        _ => (None, None),
    };
    let approvals_missing = config
        .profile(&r.profile)
        .map_or(0, |p| r.approvals_missing(&p.policy()));
    proto::RequestView {
        id: r.id.to_string(),
        requester: r.requester.to_string(),
        profile: r.profile.clone(),
        account_id: r.account.to_string(),
        os_user: r.os_user.to_string(),
        run_as_mode: r.run_as_mode.as_str().to_owned(),
        duration_secs: r.duration.as_secs(),
        reason: r.reason.clone(),
        ticket: r.ticket.clone(),
        state: state(r.state.name()),
        created_at: r.created_at,
        activated_at,
        expires_at: r.expires_at(),
        ended_at,
        end_reason,
        failure_reason,
        denied_by,
        deny_comment,
        approvals: approvals(&r.approvals),
        approvals_missing,
        extension: r.extension.as_ref().map(|e| proto::ExtensionView {
            extra_secs: e.extra.as_secs(),
            reason: e.reason.clone(),
            requested_at: e.requested_at,
            approvals: approvals(&e.approvals),
        }),
    }
}
