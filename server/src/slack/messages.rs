//! A request's channel message in Block Kit: who asks for what and why, a link to its
//! page, the approvals so far ("1 of 2 approvals: bob"), and where it stands. Approve /
//! Deny buttons (action ids `approve` / `deny`, value = request id, as http/slack.rs
//! reads them) only while there is something to decide. The message is rendered from
//! the request as it is whenever it is posted or updated, so a late update shows the
//! present, never a stale step.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::domain::{EndReason, RequestRecord, RequestState, UserId};

/// People's names by user id (their sign-in's user name); an id stands for itself.
pub type Names = HashMap<String, String>;

/// The user ids a request's message names: requester, approvers, who decided or ended it.
pub fn people(record: &RequestRecord) -> Vec<&UserId> {
    let r = &record.request;
    let mut ids = vec![&r.requester];
    ids.extend(r.approvals.iter().map(|a| &a.by));
    match &r.state {
        RequestState::Denied { by, .. } | RequestState::Cancelled { by, .. } => ids.push(by),
        RequestState::Ended {
            why: EndReason::Revoked { by, .. },
            ..
        } => ids.push(by),
        _ => {}
    }
    ids
}

fn name(names: &Names, id: &UserId) -> String {
    escape(names.get(id.as_str()).map_or(id.as_str(), String::as_str))
}

/// Slack's mrkdwn control characters, escaped in anything a person typed.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A section's text within Slack's 3,000 characters (escaping can make typed text up to
/// five times longer), cut at a character boundary.
pub fn fit(text: String) -> String {
    const MAX: usize = 2_900;
    if text.chars().count() <= MAX {
        return text;
    }
    let mut cut: String = text.chars().take(MAX).collect();
    cut.push_str(" …");
    cut
}

fn when(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn human(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    let (h, m) = (secs / 3600, secs % 3600 / 60);
    match (h, m) {
        (0, 0) => format!("{secs}s"),
        (0, m) => format!("{m}m"),
        (h, 0) => format!("{h}h"),
        (h, m) => format!("{h}h{m}m"),
    }
}

/// "1 of 2 approvals: bob" (or "0 of 1 approvals").
fn progress(record: &RequestRecord, required: u32, names: &Names) -> String {
    let by: Vec<String> = record
        .request
        .approvals
        .iter()
        .map(|a| name(names, &a.by))
        .collect();
    let need = required.max(1);
    if by.is_empty() {
        format!("0 of {need} approvals")
    } else {
        format!("{} of {need} approvals: {}", by.len(), by.join(", "))
    }
}

/// Where the request stands, in one line.
fn status(record: &RequestRecord, required: u32, names: &Names) -> String {
    let approvers = || {
        let by: Vec<String> = record
            .request
            .approvals
            .iter()
            .map(|a| name(names, &a.by))
            .collect();
        if by.is_empty() {
            "auto-approved".to_owned()
        } else {
            format!("approved by {}", by.join(", "))
        }
    };
    match &record.request.state {
        RequestState::Pending => format!(
            ":hourglass: Waiting for approval: {}",
            progress(record, required, names)
        ),
        RequestState::Approved { .. } => {
            format!(
                ":gear: {}; setting up access in AWS",
                capitalized(&approvers())
            )
        }
        RequestState::Active { expires_at, .. } => format!(
            ":large_green_circle: Active until {} ({})",
            when(*expires_at),
            approvers()
        ),
        RequestState::Ended { ended_at, why, .. } => match why {
            EndReason::Expired => format!(":white_circle: Ended at {}: expired", when(*ended_at)),
            EndReason::Revoked { by, comment } => format!(
                ":white_circle: Ended at {}: revoked by {}{}",
                when(*ended_at),
                name(names, by),
                comment
                    .as_deref()
                    .map(|c| format!(" ({})", escape(c)))
                    .unwrap_or_default()
            ),
        },
        RequestState::Denied { by, comment, .. } => format!(
            ":no_entry: Denied by {}{}",
            name(names, by),
            comment
                .as_deref()
                .map(|c| format!(": {}", escape(c)))
                .unwrap_or_default()
        ),
        RequestState::Cancelled { by, .. } => {
            format!(":heavy_multiplication_x: Withdrawn by {}", name(names, by))
        }
        RequestState::Lapsed { .. } => ":zzz: Lapsed: nobody decided in time".to_owned(),
        RequestState::Failed { reason, .. } => {
            format!(":warning: Failed: {}", escape(reason))
        }
    }
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The message of `record`: its notification text and its blocks. `required` is the
/// profile's number of approvals; `page` the request's web page. A `step_up` profile's
/// approvals need a fresh sign-in, so it gets a "Review and approve" link to the page
/// instead of an Approve button.
pub fn request_message(
    record: &RequestRecord,
    required: u32,
    step_up: bool,
    page: &str,
    names: &Names,
) -> (String, Value) {
    let r = &record.request;
    let headline = format!(
        "{} asks for {} as {} on {} for {}",
        name(names, &r.requester),
        r.profile,
        r.os_user,
        r.account,
        human(r.duration)
    );
    let mut fields = vec![format!("*Reason:* {}", escape(&r.reason))];
    if let Some(ticket) = &r.ticket {
        fields.push(format!("*Ticket:* {}", escape(ticket)));
    }
    let mut blocks = vec![
        json!({"type": "section", "text": {"type": "mrkdwn", "text": format!(
            "*{}* asks for *{}* as `{}` on account {} for {}\n{}\n<{page}|Open request {}>",
            name(names, &r.requester), escape(&r.profile), r.os_user, r.account, human(r.duration),
            fit(fields.join("\n")), r.id
        )}}),
        json!({"type": "context", "elements": [{"type": "mrkdwn", "text": fit(status(record, required, names))}]}),
    ];
    if matches!(r.state, RequestState::Pending) {
        let id = r.id.to_string();
        let approve = if step_up {
            json!({"type": "button", "action_id": "review", "style": "primary", "url": page,
                   "text": {"type": "plain_text", "text": "Review and approve"}})
        } else {
            json!({"type": "button", "action_id": "approve", "style": "primary", "value": id,
                   "text": {"type": "plain_text", "text": "Approve"}})
        };
        blocks.push(
            json!({"type": "actions", "block_id": "decide", "elements": [
                approve,
                {"type": "button", "action_id": "deny", "style": "danger", "value": id,
                 "text": {"type": "plain_text", "text": "Deny"}},
            ]}),
        );
    }
    let text = format!("{headline}: {}", status(record, required, names));
    (text, Value::Array(blocks))
}

/// The reminder in a pending request's thread, or its escalation to `escalation_channel`
/// (`escalate`), after `waited`.
pub fn reminder_text(
    record: &RequestRecord,
    required: u32,
    page: &str,
    names: &Names,
    waited: std::time::Duration,
    escalate: bool,
) -> String {
    let r = &record.request;
    let who = format!(
        "{}'s request for *{}* as `{}` on account {}",
        name(names, &r.requester),
        escape(&r.profile),
        r.os_user,
        r.account
    );
    let lead = if escalate {
        format!(
            ":rotating_light: Nobody has decided {who} for {}",
            human(waited)
        )
    } else {
        format!(":bell: Still waiting after {}: {who}", human(waited))
    };
    fit(format!(
        "{lead} ({}). *Reason:* {} <{page}|Review it>",
        progress(record, required, names),
        escape(&r.reason)
    ))
}

/// The requester's DM about `event` (see store/slack_dms.rs `event_of`); `None` when the
/// request has moved on since (its later step's DM says what matters).
pub fn dm_text(record: &RequestRecord, event: &str, page: &str, names: &Names) -> Option<String> {
    let r = &record.request;
    let target = format!(
        "*{}* as `{}` on account {}",
        escape(&r.profile),
        r.os_user,
        r.account
    );
    let what = format!("your request for {target}");
    let access = format!("your access to {target}");
    // `expiring@<millis>`: about that end time only; an extension since owes another.
    let event = match event.split_once('@') {
        Some(("expiring", at)) => match &r.state {
            RequestState::Active { expires_at, .. }
                if at.parse::<i64>().ok() == Some(expires_at.timestamp_millis()) =>
            {
                "expiring"
            }
            _ => return None,
        },
        _ => event,
    };
    let body = match (event, &r.state) {
        ("approved", RequestState::Approved { .. }) => {
            let by: Vec<String> = r.approvals.iter().map(|a| name(names, &a.by)).collect();
            if by.is_empty() {
                format!(
                    "{} was approved; access is being set up.",
                    capitalized(&what)
                )
            } else {
                format!(
                    "{} was approved by {}; access is being set up.",
                    capitalized(&what),
                    by.join(", ")
                )
            }
        }
        ("active", RequestState::Active { expires_at, .. }) => format!(
            "{} is active until {}. Connect with `jitgate ssh <instance> --as {}`.",
            capitalized(&access),
            when(*expires_at),
            r.os_user
        ),
        ("expiring", RequestState::Active { expires_at, .. }) => format!(
            "{} ends at {}. Need longer? `jitgate extend {} --for 1h --reason ...`, or on the \
             request's page.",
            capitalized(&access),
            when(*expires_at),
            r.id
        ),
        ("ended", RequestState::Ended { why, .. }) => match why {
            EndReason::Expired => format!("{} has ended: its time ran out.", capitalized(&access)),
            EndReason::Revoked { by, .. } => format!(
                "{} was ended early by {}.",
                capitalized(&access),
                name(names, by)
            ),
        },
        ("denied", RequestState::Denied { by, comment, .. }) => format!(
            "{} was denied by {}{}",
            capitalized(&what),
            name(names, by),
            comment
                .as_deref()
                .map(|c| format!(": {}", escape(c)))
                .unwrap_or_else(|| ".".into())
        ),
        ("failed", RequestState::Failed { reason, .. }) => format!(
            "{} was approved, but access could not be set up: {}",
            capitalized(&what),
            escape(reason)
        ),
        ("lapsed", _) => format!(
            "{} lapsed: no approver decided in time. Ask again if you still need it.",
            capitalized(&what)
        ),
        // The request moved on before the DM went out.
        (_, _) => return None,
    };
    Some(format!("{body} <{page}|Open request>"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        Approval, PermissionSetArn, PrincipalId, Request, RequestId, RunAsMode, UserId,
    };
    use chrono::{TimeZone, Utc};

    fn names() -> Names {
        [("sub-bob", "bob")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    fn record(state: RequestState, approvals: &[&str]) -> RequestRecord {
        let at = Utc.with_ymd_and_hms(2026, 12, 3, 9, 0, 0).unwrap();
        RequestRecord {
            request: Request {
                id: RequestId(uuid::Uuid::from_u128(7)),
                requester: UserId::new("alice"),
                profile: "prod-web".into(),
                account: "111111111111".parse().unwrap(),
                os_user: "app".parse().unwrap(),
                run_as_mode: RunAsMode::PrincipalTag,
                duration: std::time::Duration::from_secs(5400),
                reason: "fix <b>the</b> & bug".into(),
                ticket: Some("INC-1".into()),
                created_at: at,
                approvals: approvals
                    .iter()
                    .map(|by| Approval {
                        by: UserId::new(*by),
                        at,
                    })
                    .collect(),
                extension: None,
                state,
            },
            principal_id: PrincipalId::new("u-alice"),
            permission_set_arn: PermissionSetArn::from("arn:aws:sso:::permissionSet/i/ps"),
            settled_at: None,
        }
    }

    #[test]
    fn pending_has_buttons_and_progress_and_escapes_what_people_typed() {
        let (_, blocks) = request_message(
            &record(RequestState::Pending, &[]),
            1,
            true,
            "https://jitgate.example.com/requests/1",
            &names(),
        );
        let all = blocks.to_string();
        assert!(
            all.contains("Review and approve") && !all.contains("\"action_id\":\"approve\""),
            "a step-up profile links to the page instead: {all}"
        );
        let (text, blocks) = request_message(
            &record(RequestState::Pending, &["sub-bob"]),
            2,
            false,
            "https://j/requests/7",
            &names(),
        );
        let all = blocks.to_string();
        assert!(text.contains("alice asks for prod-web as app on 111111111111 for 1h30m"));
        assert!(all.contains("1 of 2 approvals: bob"), "{all}");
        assert!(
            all.contains("fix &lt;b&gt;the&lt;/b&gt; &amp; bug"),
            "{all}"
        );
        assert!(
            all.contains("\"action_id\":\"approve\"") && all.contains("\"action_id\":\"deny\"")
        );
        assert!(all.contains("<https://j/requests/7|Open request"));
    }

    #[test]
    fn once_decided_the_buttons_are_gone_and_the_outcome_shows() {
        let at = Utc.with_ymd_and_hms(2026, 12, 3, 10, 30, 0).unwrap();
        let active = RequestState::Active {
            activated_at: at,
            expires_at: at,
        };
        let (_, blocks) = request_message(&record(active, &["sub-bob"]), 1, false, "p", &names());
        let all = blocks.to_string();
        assert!(!all.contains("\"actions\""), "{all}");
        assert!(
            all.contains("Active until 2026-12-03 10:30 UTC (approved by bob)"),
            "{all}"
        );
        let denied = RequestState::Denied {
            by: UserId::new("sub-bob"),
            at,
            comment: Some("not now".into()),
        };
        let (text, _) = request_message(&record(denied, &[]), 1, false, "p", &names());
        assert!(text.contains("Denied by bob: not now"), "{text}");
    }
}
