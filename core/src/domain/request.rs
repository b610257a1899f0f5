//! The access request and its state machine.
//!
//! ```text
//! pending --approve(N reached)--> approved --activate--> active --expire/revoke--> ended
//!    |--deny--> denied      |--fail--> failed      |--revoke--> ended
//!    |--cancel--> cancelled |--cancel--> cancelled
//!    |--lapse--> lapsed
//! active --extension approved--> active (later expires_at)
//! ```
//!
//! Every transition consumes the request and returns the next one or a
//! [`DomainError`]; a refused transition leaves the caller's stored copy as it
//! was, so the store simply does not save anything.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::error::DomainError;
use super::ids::{AccountId, RequestId, UserId};
use super::os_user::OsUser;
use super::policy::{Actor, Policy, RunAsMode};

/// Longest reason, in characters: enough for a paragraph, not for a pasted log.
const MAX_REASON_CHARS: usize = 1000;
/// Longest ticket reference, in characters: an id or a URL.
const MAX_TICKET_CHARS: usize = 200;
/// Longest deny or revoke comment, in characters.
const MAX_COMMENT_CHARS: usize = 1000;

/// The name of a [`RequestState`], without its data: for storage, filters and messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateName {
    /// Waiting for approvals.
    Pending,
    /// Approved; the AWS assignment is being made.
    Approved,
    /// The assignment exists; access is live until `expires_at`.
    Active,
    /// Access ended: expired or revoked.
    Ended,
    /// An approver said no.
    Denied,
    /// The requester (or an admin) withdrew it before it became active.
    Cancelled,
    /// Nobody answered within the approval timeout.
    Lapsed,
    /// Provisioning the AWS assignment failed.
    Failed,
}

impl StateName {
    /// Every state, in lifecycle order.
    pub const ALL: [StateName; 8] = [
        StateName::Pending,
        StateName::Approved,
        StateName::Active,
        StateName::Ended,
        StateName::Denied,
        StateName::Cancelled,
        StateName::Lapsed,
        StateName::Failed,
    ];

    /// The lowercase name used in storage, URLs and JSON, e.g. `"pending"`.
    pub fn as_str(self) -> &'static str {
        match self {
            StateName::Pending => "pending",
            StateName::Approved => "approved",
            StateName::Active => "active",
            StateName::Ended => "ended",
            StateName::Denied => "denied",
            StateName::Cancelled => "cancelled",
            StateName::Lapsed => "lapsed",
            StateName::Failed => "failed",
        }
    }
}

impl fmt::Display for StateName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StateName {
    type Err = DomainError;

    /// Parses the lowercase name produced by [`StateName::as_str`]; the error names the bad value.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|name| name.as_str() == s)
            .ok_or_else(|| DomainError::InvalidStateName {
                value: s.to_owned(),
            })
    }
}

/// Why an active (or approved) grant ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum EndReason {
    /// Its time ran out.
    Expired,
    /// Someone ended it early.
    Revoked {
        /// Who revoked it.
        by: UserId,
        /// Their comment, if any.
        comment: Option<String>,
    },
}

/// Where a request is in its lifecycle, with the data that only exists in that state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "lowercase")]
pub enum RequestState {
    /// Waiting for approvals (see [`Request::approvals`]).
    Pending,
    /// Approved; the AWS assignment should be made, then the request activated.
    Approved {
        /// When the last needed approval (or auto-approval) arrived.
        approved_at: DateTime<Utc>,
    },
    /// The assignment exists; access is live.
    Active {
        /// When provisioning finished; the duration counts from here.
        activated_at: DateTime<Utc>,
        /// When access ends, extensions included.
        expires_at: DateTime<Utc>,
    },
    /// Access ended.
    Ended {
        /// When it became active; `None` if revoked while still approved.
        activated_at: Option<DateTime<Utc>>,
        /// When it ended.
        ended_at: DateTime<Utc>,
        /// Expired or revoked (by whom).
        why: EndReason,
    },
    /// An approver refused it.
    Denied {
        /// The approver.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
        /// Their comment, if any.
        comment: Option<String>,
    },
    /// Withdrawn before it became active.
    Cancelled {
        /// The requester or admin who cancelled.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// No decision within the approval timeout.
    Lapsed {
        /// When the scheduler lapsed it.
        at: DateTime<Utc>,
    },
    /// Provisioning the AWS assignment failed.
    Failed {
        /// When.
        at: DateTime<Utc>,
        /// What failed, for the requester and the audit trail.
        reason: String,
    },
}

impl RequestState {
    /// The state's name, without its data.
    pub fn name(&self) -> StateName {
        match self {
            RequestState::Pending => StateName::Pending,
            RequestState::Approved { .. } => StateName::Approved,
            RequestState::Active { .. } => StateName::Active,
            RequestState::Ended { .. } => StateName::Ended,
            RequestState::Denied { .. } => StateName::Denied,
            RequestState::Cancelled { .. } => StateName::Cancelled,
            RequestState::Lapsed { .. } => StateName::Lapsed,
            RequestState::Failed { .. } => StateName::Failed,
        }
    }
}

/// One approver's approval of a request or of an extension.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// The approver.
    pub by: UserId,
    /// When they approved.
    pub at: DateTime<Utc>,
}

/// An extension asked for on an active grant, waiting for approval.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extension {
    /// Time to add to `expires_at`.
    pub extra: Duration,
    /// Why more time is needed.
    pub reason: String,
    /// When the requester asked.
    pub requested_at: DateTime<Utc>,
    /// Approvals so far; it is applied when the profile's N distinct approvers agree.
    pub approvals: Vec<Approval>,
}

/// Raw input from a requester (web form, CLI); [`Request::submit`] validates every field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Draft {
    /// The profile asked for.
    pub profile: String,
    /// The AWS account id, as typed.
    pub account: String,
    /// The OS user, as typed.
    pub os_user: String,
    /// How long access should last once active.
    pub duration: Duration,
    /// Why access is needed.
    pub reason: String,
    /// A ticket id or URL; empty means none.
    pub ticket: Option<String>,
}

/// One request for time-bound shell access, from submission to its end.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Its id.
    pub id: RequestId,
    /// Who asked.
    pub requester: UserId,
    /// The profile asked for.
    pub profile: String,
    /// The target AWS account.
    pub account: AccountId,
    /// The OS user sessions run as.
    pub os_user: OsUser,
    /// How the OS user is enforced, copied from the profile at submission so a
    /// later config change does not alter how an existing grant is cleaned up.
    pub run_as_mode: RunAsMode,
    /// Duration asked for, counted from activation.
    pub duration: Duration,
    /// Why access is needed (trimmed).
    pub reason: String,
    /// Ticket id or URL, if given.
    pub ticket: Option<String>,
    /// When it was submitted; the approval timeout counts from here.
    pub created_at: DateTime<Utc>,
    /// Approvals of the request itself.
    pub approvals: Vec<Approval>,
    /// An extension waiting for approval; only ever set while active.
    pub extension: Option<Extension>,
    /// Where it is in its lifecycle.
    pub state: RequestState,
}

impl Request {
    /// Validates `draft` against `policy` and creates the request, `Pending`, or
    /// `Approved` at once if the profile auto-approves.
    ///
    /// `open_of_person` are the other requests of the same person (any profile,
    /// any sign-in mapped to the same IdC user); only open principal-tag ones
    /// matter, because in that mode the OS user lives in one per-person attribute.
    pub fn submit(
        id: RequestId,
        draft: Draft,
        by: &Actor,
        policy: &Policy,
        open_of_person: &[Request],
        now: DateTime<Utc>,
    ) -> Result<Request, DomainError> {
        if draft.profile != policy.profile {
            return Err(DomainError::WrongProfile {
                asked: draft.profile,
                profile: policy.profile.clone(),
            });
        }
        if !policy.may_request(by) {
            return Err(DomainError::NotRequester {
                profile: policy.profile.clone(),
                groups: policy.requester_groups.clone(),
            });
        }
        // Inputs come from forms, where stray spaces are common and harmless.
        let account = AccountId::parse(draft.account.trim())?;
        if !policy.accounts.contains(&account) {
            return Err(DomainError::AccountNotInProfile {
                account: account.to_string(),
                profile: policy.profile.clone(),
                allowed: policy.accounts.iter().map(ToString::to_string).collect(),
            });
        }
        let os_user = OsUser::parse(draft.os_user.trim())?;
        if !policy.allowed_os_users.contains(&os_user) {
            return Err(DomainError::OsUserNotAllowed {
                os_user: os_user.to_string(),
                profile: policy.profile.clone(),
                allowed: policy
                    .allowed_os_users
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
            });
        }
        if draft.duration.is_zero() {
            return Err(DomainError::DurationZero);
        }
        if draft.duration < policy.min_duration {
            return Err(DomainError::DurationTooShort {
                asked: draft.duration,
                min: policy.min_duration,
            });
        }
        if draft.duration > policy.max_duration {
            return Err(DomainError::DurationTooLong {
                asked: draft.duration,
                max: policy.max_duration,
            });
        }
        // Refuse now what activation could not compute later.
        to_delta(draft.duration)?;
        let reason = clean_reason(&draft.reason)?;
        let ticket = clean_ticket(draft.ticket)?;
        if policy.run_as_mode == RunAsMode::PrincipalTag {
            let conflict = open_of_person.iter().find(|other| {
                other.id != id
                    && other.is_open()
                    && other.run_as_mode == RunAsMode::PrincipalTag
                    && other.os_user != os_user
            });
            if let Some(other) = conflict {
                return Err(DomainError::RunAsConflict {
                    open: other.id,
                    os_user: other.os_user.to_string(),
                });
            }
        }
        let state = if policy.auto_approve {
            RequestState::Approved { approved_at: now }
        } else {
            RequestState::Pending
        };
        Ok(Request {
            id,
            requester: by.user.clone(),
            profile: policy.profile.clone(),
            account,
            os_user,
            run_as_mode: policy.run_as_mode,
            duration: draft.duration,
            reason,
            ticket,
            created_at: now,
            approvals: Vec::new(),
            extension: None,
            state,
        })
    }

    /// Records `by`'s approval of a pending request, or of the pending extension
    /// of an active one. The request becomes `Approved` (the extension is applied)
    /// once the profile's number of distinct approvers is reached.
    pub fn approve(
        mut self,
        by: &Actor,
        policy: &Policy,
        now: DateTime<Utc>,
    ) -> Result<Request, DomainError> {
        self.check_policy(policy)?;
        match self.state {
            RequestState::Pending => {
                check_approver(by, &self.requester, policy, &self.approvals)?;
                self.approvals.push(Approval {
                    by: by.user.clone(),
                    at: now,
                });
                if distinct_approvers(&self.approvals) >= policy.approvals_needed() {
                    self.state = RequestState::Approved { approved_at: now };
                }
                Ok(self)
            }
            RequestState::Active {
                activated_at,
                expires_at,
            } => {
                let Some(mut extension) = self.extension.take() else {
                    return Err(DomainError::NoExtensionPending);
                };
                check_approver(by, &self.requester, policy, &extension.approvals)?;
                extension.approvals.push(Approval {
                    by: by.user.clone(),
                    at: now,
                });
                if distinct_approvers(&extension.approvals) >= policy.approvals_needed() {
                    self.state = RequestState::Active {
                        activated_at,
                        expires_at: add(expires_at, extension.extra)?,
                    };
                } else {
                    self.extension = Some(extension);
                }
                Ok(self)
            }
            _ => Err(self.invalid("approve")),
        }
    }

    /// Refuses a pending request (→ `Denied`), or drops the pending extension of
    /// an active one (the grant keeps running to its current `expires_at`).
    /// Only an eligible approver who is not the requester may deny: the
    /// requester cancels instead.
    pub fn deny(
        mut self,
        by: &Actor,
        policy: &Policy,
        comment: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Request, DomainError> {
        self.check_policy(policy)?;
        match self.state {
            RequestState::Pending => {
                check_denier(by, &self.requester, policy, "deny")?;
                let comment = clean_comment(comment)?;
                self.state = RequestState::Denied {
                    by: by.user.clone(),
                    at: now,
                    comment,
                };
                Ok(self)
            }
            RequestState::Active { .. } => {
                if self.extension.is_none() {
                    return Err(DomainError::NoExtensionPending);
                }
                check_denier(by, &self.requester, policy, "deny the extension of")?;
                clean_comment(comment)?;
                self.extension = None;
                Ok(self)
            }
            _ => Err(self.invalid("deny")),
        }
    }

    /// Withdraws a pending or approved request (→ `Cancelled`); the requester or an admin only.
    pub fn cancel(mut self, by: &Actor, now: DateTime<Utc>) -> Result<Request, DomainError> {
        match self.state {
            RequestState::Pending | RequestState::Approved { .. } => {
                if by.user != self.requester && !by.is_admin {
                    return Err(DomainError::NotAllowed {
                        action: "cancel",
                        why: "only the requester or an admin may cancel it; approvers deny a pending request or revoke an approved one".to_owned(),
                    });
                }
                self.state = RequestState::Cancelled {
                    by: by.user.clone(),
                    at: now,
                };
                Ok(self)
            }
            _ => Err(self.invalid("cancel")),
        }
    }

    /// Marks an approved request active once its AWS assignment exists; the
    /// duration counts from `now`, not from submission.
    pub fn activate(mut self, now: DateTime<Utc>) -> Result<Request, DomainError> {
        match self.state {
            RequestState::Approved { .. } => {
                self.state = RequestState::Active {
                    activated_at: now,
                    expires_at: add(now, self.duration)?,
                };
                Ok(self)
            }
            _ => Err(self.invalid("activate")),
        }
    }

    /// Records that provisioning an approved request failed (→ `Failed`).
    pub fn fail(mut self, reason: String, now: DateTime<Utc>) -> Result<Request, DomainError> {
        match self.state {
            RequestState::Approved { .. } => {
                self.state = RequestState::Failed { at: now, reason };
                Ok(self)
            }
            _ => Err(self.invalid("fail")),
        }
    }

    /// Ends an active grant whose time is up (→ `Ended`, expired); refuses with
    /// `NotDue` before `expires_at`, so a stale timer cannot end a grant early.
    pub fn expire(mut self, now: DateTime<Utc>) -> Result<Request, DomainError> {
        match self.state {
            RequestState::Active {
                activated_at,
                expires_at,
            } => {
                if now < expires_at {
                    return Err(DomainError::NotDue { expires_at });
                }
                self.extension = None;
                self.state = RequestState::Ended {
                    activated_at: Some(activated_at),
                    ended_at: now,
                    why: EndReason::Expired,
                };
                Ok(self)
            }
            _ => Err(self.invalid("expire")),
        }
    }

    /// Ends an active or approved grant early (→ `Ended`, revoked). Allowed for
    /// the requester, the profile's approvers and admins.
    pub fn revoke(
        mut self,
        by: &Actor,
        policy: &Policy,
        comment: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Request, DomainError> {
        self.check_policy(policy)?;
        let activated_at = match self.state {
            RequestState::Active { activated_at, .. } => Some(activated_at),
            // Approved may already hold an assignment being provisioned, so it
            // is revoked (and cleaned up) rather than cancelled.
            RequestState::Approved { .. } => None,
            _ => return Err(self.invalid("revoke")),
        };
        if by.user != self.requester && !policy.may_approve(by) && !by.is_admin {
            return Err(DomainError::NotAllowed {
                action: "revoke",
                why: format!(
                    "only the requester, approvers of profile `{}` and admins may end this grant",
                    self.profile
                ),
            });
        }
        let comment = clean_comment(comment)?;
        self.extension = None;
        self.state = RequestState::Ended {
            activated_at,
            ended_at: now,
            why: EndReason::Revoked {
                by: by.user.clone(),
                comment,
            },
        };
        Ok(self)
    }

    /// Closes a pending request nobody decided on within the profile's approval
    /// timeout (→ `Lapsed`); refuses with `NotDue` (carrying the deadline) before that.
    pub fn lapse(mut self, policy: &Policy, now: DateTime<Utc>) -> Result<Request, DomainError> {
        self.check_policy(policy)?;
        match self.state {
            RequestState::Pending => {
                let deadline = add(self.created_at, policy.approval_timeout)?;
                if now < deadline {
                    return Err(DomainError::NotDue {
                        expires_at: deadline,
                    });
                }
                self.state = RequestState::Lapsed { at: now };
                Ok(self)
            }
            _ => Err(self.invalid("lapse")),
        }
    }

    /// Asks for `extra` more time on an active grant; requester only. The
    /// grant's total (activation to new end) must stay within the profile's
    /// maximum. Applied at once if the profile auto-approves, else stored as
    /// the pending [`Extension`] for the same N-of-M approval as the request.
    pub fn request_extension(
        mut self,
        by: &Actor,
        extra: Duration,
        reason: String,
        policy: &Policy,
        now: DateTime<Utc>,
    ) -> Result<Request, DomainError> {
        self.check_policy(policy)?;
        let RequestState::Active {
            activated_at,
            expires_at,
        } = self.state
        else {
            return Err(self.invalid("extend"));
        };
        if by.user != self.requester {
            return Err(DomainError::NotAllowed {
                action: "extend",
                why: "only the requester may ask for more time on their grant; others can request access of their own".to_owned(),
            });
        }
        if self.extension.is_some() {
            return Err(DomainError::ExtensionPending);
        }
        if extra.is_zero() {
            return Err(DomainError::DurationZero);
        }
        if extra < policy.min_duration {
            return Err(DomainError::DurationTooShort {
                asked: extra,
                min: policy.min_duration,
            });
        }
        let new_expires_at = add(expires_at, extra)?;
        let total = new_expires_at.signed_duration_since(activated_at);
        // A max beyond chrono's range is no limit at all.
        let max = TimeDelta::from_std(policy.max_duration).unwrap_or(TimeDelta::MAX);
        if total > max {
            return Err(DomainError::DurationTooLong {
                asked: total.to_std().unwrap_or(Duration::MAX),
                max: policy.max_duration,
            });
        }
        let reason = clean_reason(&reason)?;
        if policy.auto_approve {
            self.state = RequestState::Active {
                activated_at,
                expires_at: new_expires_at,
            };
        } else {
            self.extension = Some(Extension {
                extra,
                reason,
                requested_at: now,
                approvals: Vec::new(),
            });
        }
        Ok(self)
    }

    /// When access ends, if the grant is active.
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        match self.state {
            RequestState::Active { expires_at, .. } => Some(expires_at),
            _ => None,
        }
    }

    /// Whether the request is still open: pending, approved or active.
    pub fn is_open(&self) -> bool {
        matches!(
            self.state,
            RequestState::Pending | RequestState::Approved { .. } | RequestState::Active { .. }
        )
    }

    /// Whether the AWS assignment should exist for this request (approved or
    /// active); the converger makes AWS match this.
    pub fn wants_assignment(&self) -> bool {
        matches!(
            self.state,
            RequestState::Approved { .. } | RequestState::Active { .. }
        )
    }

    /// Distinct approvals still needed: for a pending request, or for the
    /// pending extension of an active one; 0 in every other case.
    pub fn approvals_missing(&self, policy: &Policy) -> u32 {
        let approvals = match (&self.state, &self.extension) {
            (RequestState::Pending, _) => &self.approvals,
            (RequestState::Active { .. }, Some(extension)) => &extension.approvals,
            _ => return 0,
        };
        policy
            .approvals_needed()
            .saturating_sub(distinct_approvers(approvals))
    }

    /// The refusal for `action` in the current state.
    fn invalid(&self, action: &'static str) -> DomainError {
        DomainError::InvalidTransition {
            action,
            state: self.state.name(),
        }
    }

    /// Guards against judging a request by another profile's rules.
    fn check_policy(&self, policy: &Policy) -> Result<(), DomainError> {
        if self.profile == policy.profile {
            Ok(())
        } else {
            Err(DomainError::WrongProfile {
                asked: self.profile.clone(),
                profile: policy.profile.clone(),
            })
        }
    }
}

/// Checks that `by` may add an approval to `approvals` of `requester`'s request.
fn check_approver(
    by: &Actor,
    requester: &UserId,
    policy: &Policy,
    approvals: &[Approval],
) -> Result<(), DomainError> {
    // Checked before eligibility so an admin requester hears the real reason.
    if by.user == *requester {
        return Err(DomainError::SelfApproval);
    }
    if !policy.may_approve(by) {
        return Err(not_eligible(policy));
    }
    if approvals.iter().any(|a| a.by == by.user) {
        return Err(DomainError::AlreadyApproved {
            by: by.user.clone(),
        });
    }
    Ok(())
}

/// Checks that `by` may deny `requester`'s request (or extension).
fn check_denier(
    by: &Actor,
    requester: &UserId,
    policy: &Policy,
    action: &'static str,
) -> Result<(), DomainError> {
    if by.user == *requester {
        return Err(DomainError::NotAllowed {
            action,
            why: "it is your own; cancel a pending request or revoke an active grant instead"
                .to_owned(),
        });
    }
    if !policy.may_approve(by) {
        return Err(not_eligible(policy));
    }
    Ok(())
}

fn not_eligible(policy: &Policy) -> DomainError {
    DomainError::NotEligibleApprover {
        profile: policy.profile.clone(),
        groups: policy.approver_groups.clone(),
    }
}

/// Counts distinct approvers, so a duplicated stored row can never count twice toward N.
fn distinct_approvers(approvals: &[Approval]) -> u32 {
    let distinct = approvals.iter().map(|a| &a.by).collect::<BTreeSet<_>>();
    u32::try_from(distinct.len()).unwrap_or(u32::MAX)
}

fn to_delta(d: Duration) -> Result<TimeDelta, DomainError> {
    TimeDelta::from_std(d).map_err(|_| DomainError::DurationOutOfRange { asked: d })
}

/// `at + d`, refusing (never panicking) when it leaves chrono's range.
fn add(at: DateTime<Utc>, d: Duration) -> Result<DateTime<Utc>, DomainError> {
    at.checked_add_signed(to_delta(d)?)
        .ok_or(DomainError::DurationOutOfRange { asked: d })
}

fn clean_reason(reason: &str) -> Result<String, DomainError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(DomainError::ReasonRequired);
    }
    // A reason may run over several lines (a text area); nothing else invisible.
    visible_text("reason", &reason.replace("\r\n", "\n").replace('\n', " "))?;
    let len = reason.chars().count();
    if len > MAX_REASON_CHARS {
        return Err(DomainError::ReasonTooLong {
            len,
            max: MAX_REASON_CHARS,
        });
    }
    Ok(reason.to_owned())
}

/// Trims the ticket; blank means none (forms send empty strings).
fn clean_ticket(ticket: Option<String>) -> Result<Option<String>, DomainError> {
    let ticket = optional_text(ticket, MAX_TICKET_CHARS, |len, max| {
        DomainError::TicketTooLong { len, max }
    })?;
    if let Some(t) = &ticket {
        visible_text("ticket", t)?;
    }
    Ok(ticket)
}

fn clean_comment(comment: Option<String>) -> Result<Option<String>, DomainError> {
    let comment = optional_text(comment, MAX_COMMENT_CHARS, |len, max| {
        DomainError::CommentTooLong { len, max }
    })?;
    if let Some(c) = &comment {
        visible_text("comment", c)?;
    }
    Ok(comment)
}

/// Refuses control characters (C0, DEL, C1) and the bidirectional-formatting ones
/// (embeddings, overrides and isolates, and the marks), naming the first found.
pub fn visible_text(field: &'static str, text: &str) -> Result<(), DomainError> {
    let invisible = |c: char| {
        c.is_control()
            || matches!(
                c,
                '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
            )
    };
    match text.chars().find(|c| invisible(*c)) {
        Some(c) => Err(DomainError::InvisibleCharacter {
            field,
            code: format!("U+{:04X}", u32::from(c)),
        }),
        None => Ok(()),
    }
}

fn optional_text(
    text: Option<String>,
    max: usize,
    too_long: fn(usize, usize) -> DomainError,
) -> Result<Option<String>, DomainError> {
    let Some(text) = text else { return Ok(None) };
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let len = text.chars().count();
    if len > max {
        return Err(too_long(len, max));
    }
    Ok(Some(text.to_owned()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::domain::error::ErrorKind;

    // ---- builders ----

    fn t(mins: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_225_600, 0).unwrap() + TimeDelta::minutes(mins)
    }

    fn mins(m: u64) -> Duration {
        Duration::from_secs(m * 60)
    }

    fn hours(h: u64) -> Duration {
        mins(h * 60)
    }

    fn id(n: u128) -> RequestId {
        RequestId(uuid::Uuid::from_u128(n))
    }

    /// An admin here also approves every profile (`[auth] admins_approve = true`);
    /// `admin_who_does_not_approve` is one without that power.
    fn person(name: &str, groups: &[&str], is_admin: bool) -> Actor {
        Actor {
            user: UserId::new(name),
            groups: groups.iter().map(ToString::to_string).collect(),
            is_admin,
            approves_all: is_admin,
            authenticated_at: None,
        }
    }

    fn admin_who_does_not_approve() -> Actor {
        Actor {
            approves_all: false,
            authenticated_at: None,
            ..admin()
        }
    }

    /// The requester: a developer.
    fn alice() -> Actor {
        person("alice", &["devs"], false)
    }

    /// Approvers of the profile.
    fn bob() -> Actor {
        person("bob", &["sre"], false)
    }

    fn carol() -> Actor {
        person("carol", &["sre"], false)
    }

    /// An admin in no approver group.
    fn admin() -> Actor {
        person("admin", &[], true)
    }

    /// An admin who is also a developer and requests access.
    fn ada() -> Actor {
        person("ada", &["devs", "sre"], true)
    }

    /// Another developer: may request, may not approve.
    fn mallory() -> Actor {
        person("mallory", &["devs"], false)
    }

    fn policy() -> Policy {
        Policy {
            profile: "prod-web".into(),
            accounts: vec![
                AccountId::parse("123456789012").unwrap(),
                AccountId::parse("012345678901").unwrap(),
            ],
            allowed_os_users: vec![
                OsUser::parse("app").unwrap(),
                OsUser::parse("deploy").unwrap(),
            ],
            min_duration: mins(1),
            max_duration: hours(8),
            requester_groups: vec!["devs".into()],
            approver_groups: vec!["sre".into(), "leads".into()],
            approvers: Vec::new(),
            approvals_required: 1,
            auto_approve: false,
            approval_timeout: hours(4),
            run_as_mode: RunAsMode::PrincipalTag,
            step_up: false,
        }
    }

    fn two_of_three() -> Policy {
        Policy {
            approvals_required: 2,
            ..policy()
        }
    }

    fn auto() -> Policy {
        Policy {
            auto_approve: true,
            ..policy()
        }
    }

    fn draft() -> Draft {
        Draft {
            profile: "prod-web".into(),
            account: "123456789012".into(),
            os_user: "app".into(),
            duration: hours(1),
            reason: "debug incident INC-1".into(),
            ticket: Some("INC-1".into()),
        }
    }

    fn submit_as(
        by: &Actor,
        d: Draft,
        p: &Policy,
        open: &[Request],
    ) -> Result<Request, DomainError> {
        Request::submit(id(1), d, by, p, open, t(0))
    }

    /// alice's request, submitted at t(0).
    fn pending() -> Request {
        submit_as(&alice(), draft(), &policy(), &[]).unwrap()
    }

    /// Approved by bob at t(5).
    fn approved() -> Request {
        pending().approve(&bob(), &policy(), t(5)).unwrap()
    }

    /// Active from t(10) to t(70).
    fn active() -> Request {
        approved().activate(t(10)).unwrap()
    }

    /// Active, with a 30 minute extension asked for at t(20).
    fn extending() -> Request {
        active()
            .request_extension(&alice(), mins(30), "still digging".into(), &policy(), t(20))
            .unwrap()
    }

    fn in_state(name: StateName) -> Request {
        let p = policy();
        match name {
            StateName::Pending => pending(),
            StateName::Approved => approved(),
            StateName::Active => active(),
            StateName::Ended => active().expire(t(70)).unwrap(),
            StateName::Denied => pending().deny(&bob(), &p, None, t(5)).unwrap(),
            StateName::Cancelled => pending().cancel(&alice(), t(5)).unwrap(),
            StateName::Lapsed => pending().lapse(&p, t(240)).unwrap(),
            StateName::Failed => approved().fail("IdC said no".into(), t(10)).unwrap(),
        }
    }

    fn invalid(action: &'static str, state: StateName) -> DomainError {
        DomainError::InvalidTransition { action, state }
    }

    // ---- every action from every state ----

    #[derive(Debug)]
    enum Outcome {
        To(StateName),
        Invalid,
        Refused(DomainError),
    }

    const ACTIONS: [&str; 9] = [
        "approve", "deny", "cancel", "activate", "fail", "expire", "revoke", "lapse", "extend",
    ];

    fn act(action: &str, r: Request) -> Result<Request, DomainError> {
        let (p, now) = (policy(), t(1000));
        match action {
            "approve" => r.approve(&bob(), &p, now),
            "deny" => r.deny(&bob(), &p, None, now),
            "cancel" => r.cancel(&alice(), now),
            "activate" => r.activate(now),
            "fail" => r.fail("boom".into(), now),
            "expire" => r.expire(now),
            "revoke" => r.revoke(&alice(), &p, None, now),
            "lapse" => r.lapse(&p, now),
            "extend" => r.request_extension(&alice(), mins(30), "more".into(), &p, now),
            other => panic!("unknown action {other}"),
        }
    }

    #[test]
    fn every_action_from_every_state() {
        use Outcome::{Invalid as X, Refused, To};
        use StateName::*;
        let rows: Vec<(&str, Request, [Outcome; 9])> = vec![
            (
                "pending",
                in_state(Pending),
                [
                    To(Approved),
                    To(Denied),
                    To(Cancelled),
                    X,
                    X,
                    X,
                    X,
                    To(Lapsed),
                    X,
                ],
            ),
            (
                "approved",
                in_state(Approved),
                [
                    X,
                    X,
                    To(Cancelled),
                    To(Active),
                    To(Failed),
                    X,
                    To(Ended),
                    X,
                    X,
                ],
            ),
            (
                "active",
                in_state(Active),
                [
                    Refused(DomainError::NoExtensionPending),
                    Refused(DomainError::NoExtensionPending),
                    X,
                    X,
                    X,
                    To(Ended),
                    To(Ended),
                    X,
                    To(Active),
                ],
            ),
            (
                "active with extension",
                extending(),
                [
                    To(Active),
                    To(Active),
                    X,
                    X,
                    X,
                    To(Ended),
                    To(Ended),
                    X,
                    Refused(DomainError::ExtensionPending),
                ],
            ),
            ("ended", in_state(Ended), [X, X, X, X, X, X, X, X, X]),
            ("denied", in_state(Denied), [X, X, X, X, X, X, X, X, X]),
            (
                "cancelled",
                in_state(Cancelled),
                [X, X, X, X, X, X, X, X, X],
            ),
            ("lapsed", in_state(Lapsed), [X, X, X, X, X, X, X, X, X]),
            ("failed", in_state(Failed), [X, X, X, X, X, X, X, X, X]),
        ];
        // Every state appears in the table.
        let covered: BTreeSet<StateName> = rows.iter().map(|(_, r, _)| r.state.name()).collect();
        assert_eq!(covered.len(), StateName::ALL.len());

        for (label, request, outcomes) in rows {
            let from = request.state.name();
            for (action, expected) in ACTIONS.iter().zip(outcomes) {
                let got = act(action, request.clone());
                match (&expected, got) {
                    (To(want), Ok(next)) => {
                        assert_eq!(next.state.name(), *want, "{action} from {label}")
                    }
                    (X, Err(err)) => {
                        assert_eq!(err, invalid(action, from), "{action} from {label}");
                        assert_eq!(err.kind(), ErrorKind::Conflict);
                    }
                    (Refused(want), Err(err)) => assert_eq!(&err, want, "{action} from {label}"),
                    (want, got) => panic!("{action} from {label}: want {want:?}, got {got:?}"),
                }
            }
        }
    }

    #[test]
    fn invalid_transition_message_names_action_and_state() {
        let err = in_state(StateName::Denied).activate(t(1)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot activate a request that is denied; reload it to see what changed"
        );
    }

    // ---- submit ----

    #[test]
    fn submit_creates_a_pending_request_from_the_draft() {
        let r = submit_as(
            &alice(),
            Draft {
                account: " 012345678901 ".into(),
                os_user: "deploy ".into(),
                reason: "  fix the cron job \n".into(),
                ticket: Some(" OPS-7 ".into()),
                ..draft()
            },
            &policy(),
            &[],
        )
        .unwrap();
        assert_eq!(r.id, id(1));
        assert_eq!(r.requester, UserId::new("alice"));
        assert_eq!(r.profile, "prod-web");
        assert_eq!(r.account.as_str(), "012345678901");
        assert_eq!(r.os_user.as_str(), "deploy");
        assert_eq!(r.run_as_mode, RunAsMode::PrincipalTag);
        assert_eq!(r.duration, hours(1));
        assert_eq!(r.reason, "fix the cron job");
        assert_eq!(r.ticket.as_deref(), Some("OPS-7"));
        assert_eq!(r.created_at, t(0));
        assert!(r.approvals.is_empty());
        assert_eq!(r.extension, None);
        assert_eq!(r.state, RequestState::Pending);
        assert_eq!(r.approvals_missing(&policy()), 1);
    }

    #[test]
    fn submit_copies_the_run_as_mode_from_the_policy() {
        let p = Policy {
            run_as_mode: RunAsMode::SessionDocument,
            ..policy()
        };
        let r = submit_as(&alice(), draft(), &p, &[]).unwrap();
        assert_eq!(r.run_as_mode, RunAsMode::SessionDocument);
    }

    #[test]
    fn submit_with_auto_approve_is_approved_at_once() {
        let r = submit_as(&alice(), draft(), &auto(), &[]).unwrap();
        assert_eq!(r.state, RequestState::Approved { approved_at: t(0) });
        assert!(r.approvals.is_empty());
        assert!(r.wants_assignment());
    }

    #[test]
    fn submit_refuses_someone_outside_the_requester_groups() {
        for who in [bob(), admin()] {
            let err = submit_as(&who, draft(), &policy(), &[]).unwrap_err();
            assert_eq!(
                err,
                DomainError::NotRequester {
                    profile: "prod-web".into(),
                    groups: vec!["devs".into()],
                }
            );
            assert_eq!(err.kind(), ErrorKind::Forbidden);
            let text = err.to_string();
            assert!(
                text.contains("`prod-web`") && text.contains("devs"),
                "{text}"
            );
        }
    }

    #[test]
    fn submit_refuses_a_draft_for_another_profile() {
        let d = Draft {
            profile: "staging".into(),
            ..draft()
        };
        let err = submit_as(&alice(), d, &policy(), &[]).unwrap_err();
        assert_eq!(
            err,
            DomainError::WrongProfile {
                asked: "staging".into(),
                profile: "prod-web".into()
            }
        );
        assert_eq!(err.field(), Some("profile"));
    }

    #[test]
    fn submit_refuses_a_malformed_account() {
        let d = Draft {
            account: "1234".into(),
            ..draft()
        };
        let err = submit_as(&alice(), d, &policy(), &[]).unwrap_err();
        assert_eq!(
            err,
            DomainError::InvalidAccountId {
                value: "1234".into()
            }
        );
        assert_eq!(err.field(), Some("account"));
    }

    #[test]
    fn submit_refuses_an_account_outside_the_profile_and_lists_the_allowed_ones() {
        let d = Draft {
            account: "999999999999".into(),
            ..draft()
        };
        let err = submit_as(&alice(), d, &policy(), &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "account 999999999999 is not part of profile `prod-web`; allowed: 123456789012, 012345678901"
        );
        assert_eq!(err.field(), Some("account"));
        assert_eq!(err.kind(), ErrorKind::Invalid);
    }

    #[test]
    fn submit_refuses_an_invalid_os_user() {
        let d = Draft {
            os_user: "root".into(),
            ..draft()
        };
        let err = submit_as(&alice(), d, &policy(), &[]).unwrap_err();
        assert!(matches!(err, DomainError::InvalidOsUser { ref value, .. } if value == "root"));
        assert_eq!(err.field(), Some("os_user"));
    }

    #[test]
    fn submit_refuses_an_os_user_outside_the_profile() {
        let d = Draft {
            os_user: "x".into(),
            ..draft()
        };
        let err = submit_as(&alice(), d, &policy(), &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "OS user `x` is not allowed by profile `prod-web`; allowed: app, deploy"
        );
        assert_eq!(err.field(), Some("os_user"));
    }

    #[test]
    fn invisible_characters_are_refused_in_reason_ticket_and_comment() {
        let d = Draft {
            reason: "fix the \u{202E}gnp.exe".into(),
            ..draft()
        };
        let err = submit_as(&alice(), d, &policy(), &[]).unwrap_err();
        assert_eq!(
            err,
            DomainError::InvisibleCharacter {
                field: "reason",
                code: "U+202E".into()
            }
        );
        assert_eq!(err.field(), Some("reason"));
        assert!(err.to_string().contains("remove it"), "{err}");
        let d = Draft {
            ticket: Some("INC-1\u{7}".into()),
            ..draft()
        };
        assert!(matches!(
            submit_as(&alice(), d, &policy(), &[]),
            Err(DomainError::InvisibleCharacter {
                field: "ticket",
                ..
            })
        ));
        // Lines are fine in a reason.
        let d = Draft {
            reason: "first line\r\nsecond line".into(),
            ..draft()
        };
        assert!(submit_as(&alice(), d, &policy(), &[]).is_ok());
        assert!(matches!(
            clean_comment(Some("ok\u{2066}".into())),
            Err(DomainError::InvisibleCharacter {
                field: "comment",
                ..
            })
        ));
    }

    #[test]
    fn submit_refuses_zero_duration() {
        let d = Draft {
            duration: Duration::ZERO,
            ..draft()
        };
        let err = submit_as(&alice(), d, &policy(), &[]).unwrap_err();
        assert_eq!(err, DomainError::DurationZero);
        assert_eq!(err.field(), Some("duration"));
    }

    #[test]
    fn submit_refuses_a_duration_under_the_minimum_and_accepts_the_minimum() {
        let d = Draft {
            duration: Duration::from_millis(500),
            ..draft()
        };
        let err = submit_as(&alice(), d, &policy(), &[]).unwrap_err();
        assert_eq!(
            err,
            DomainError::DurationTooShort {
                asked: Duration::from_millis(500),
                min: mins(1)
            }
        );
        assert_eq!(err.field(), Some("duration"));
        assert!(err.to_string().contains("minimum of 1m"), "{err}");
        let d = Draft {
            duration: mins(1),
            ..draft()
        };
        assert!(submit_as(&alice(), d, &policy(), &[]).is_ok());
    }

    #[test]
    fn submit_refuses_a_duration_over_the_maximum_and_accepts_the_maximum() {
        let d = Draft {
            duration: hours(8) + mins(30),
            ..draft()
        };
        let err = submit_as(&alice(), d, &policy(), &[]).unwrap_err();
        assert_eq!(
            err,
            DomainError::DurationTooLong {
                asked: hours(8) + mins(30),
                max: hours(8)
            }
        );
        let text = err.to_string();
        assert!(
            text.contains("8h30m") && text.contains("maximum of 8h"),
            "{text}"
        );

        let d = Draft {
            duration: hours(8),
            ..draft()
        };
        assert!(submit_as(&alice(), d, &policy(), &[]).is_ok());
    }

    #[test]
    fn submit_refuses_a_duration_beyond_chronos_range() {
        let p = Policy {
            min_duration: Duration::ZERO,
            max_duration: Duration::MAX,
            ..policy()
        };
        let d = Draft {
            duration: Duration::MAX,
            ..draft()
        };
        let err = submit_as(&alice(), d, &p, &[]).unwrap_err();
        assert_eq!(
            err,
            DomainError::DurationOutOfRange {
                asked: Duration::MAX
            }
        );
        assert_eq!(err.field(), Some("duration"));
    }

    #[test]
    fn submit_requires_a_reason() {
        for blank in ["", "   ", "\n\t"] {
            let d = Draft {
                reason: blank.into(),
                ..draft()
            };
            let err = submit_as(&alice(), d, &policy(), &[]).unwrap_err();
            assert_eq!(err, DomainError::ReasonRequired);
            assert_eq!(err.field(), Some("reason"));
        }
    }

    #[test]
    fn submit_limits_the_reason_to_1000_characters() {
        let d = Draft {
            reason: "é".repeat(1000),
            ..draft()
        };
        assert!(submit_as(&alice(), d, &policy(), &[]).is_ok());
        let d = Draft {
            reason: "a".repeat(1001),
            ..draft()
        };
        let err = submit_as(&alice(), d, &policy(), &[]).unwrap_err();
        assert_eq!(
            err,
            DomainError::ReasonTooLong {
                len: 1001,
                max: 1000
            }
        );
        assert_eq!(err.field(), Some("reason"));
    }

    #[test]
    fn submit_treats_a_blank_ticket_as_none() {
        for blank in [None, Some(String::new()), Some("  ".into())] {
            let d = Draft {
                ticket: blank,
                ..draft()
            };
            assert_eq!(submit_as(&alice(), d, &policy(), &[]).unwrap().ticket, None);
        }
    }

    #[test]
    fn submit_limits_the_ticket_to_200_characters() {
        let d = Draft {
            ticket: Some("t".repeat(200)),
            ..draft()
        };
        assert!(submit_as(&alice(), d, &policy(), &[]).is_ok());
        let d = Draft {
            ticket: Some("t".repeat(201)),
            ..draft()
        };
        let err = submit_as(&alice(), d, &policy(), &[]).unwrap_err();
        assert_eq!(err, DomainError::TicketTooLong { len: 201, max: 200 });
        assert_eq!(err.field(), Some("ticket"));
    }

    // ---- principal-tag conflicts ----

    /// An open request of alice's as OS user `deploy`, id 2.
    fn alice_open_as_deploy() -> Request {
        let d = Draft {
            os_user: "deploy".into(),
            ..draft()
        };
        let mut r = Request::submit(id(2), d, &alice(), &policy(), &[], t(0)).unwrap();
        r = r.approve(&bob(), &policy(), t(1)).unwrap();
        r
    }

    #[test]
    fn principal_tag_refuses_a_second_os_user_while_one_is_open() {
        for open in [
            alice_open_as_deploy(),
            {
                let mut r = alice_open_as_deploy();
                r.state = RequestState::Pending;
                r
            },
            alice_open_as_deploy().activate(t(2)).unwrap(),
        ] {
            let err = submit_as(&alice(), draft(), &policy(), &[open]).unwrap_err();
            assert_eq!(
                err,
                DomainError::RunAsConflict {
                    open: id(2),
                    os_user: "deploy".into()
                }
            );
            assert_eq!(
                err.to_string(),
                format!(
                    "you already have request {} as OS user `deploy` open; one principal-tag OS user per person at a time: end it or ask for `deploy`",
                    id(2)
                )
            );
            assert_eq!(err.field(), Some("os_user"));
            assert_eq!(err.kind(), ErrorKind::Conflict);
        }
    }

    #[test]
    fn principal_tag_allows_the_same_os_user_again() {
        let d = Draft {
            os_user: "deploy".into(),
            ..draft()
        };
        assert!(submit_as(&alice(), d, &policy(), &[alice_open_as_deploy()]).is_ok());
    }

    #[test]
    fn session_document_mode_allows_different_os_users() {
        let p = Policy {
            run_as_mode: RunAsMode::SessionDocument,
            ..policy()
        };
        assert!(submit_as(&alice(), draft(), &p, &[alice_open_as_deploy()]).is_ok());
    }

    #[test]
    fn an_open_session_document_grant_does_not_hold_the_tag() {
        let mut open = alice_open_as_deploy();
        open.run_as_mode = RunAsMode::SessionDocument;
        assert!(submit_as(&alice(), draft(), &policy(), &[open]).is_ok());
    }

    #[test]
    fn closed_requests_do_not_conflict() {
        let p = policy();
        let closed = [
            alice_open_as_deploy()
                .revoke(&alice(), &p, None, t(3))
                .unwrap(),
            alice_open_as_deploy().cancel(&alice(), t(3)).unwrap(),
            alice_open_as_deploy().fail("x".into(), t(3)).unwrap(),
            {
                let mut r = alice_open_as_deploy();
                r.state = RequestState::Pending;
                r.deny(&bob(), &p, None, t(3)).unwrap()
            },
        ];
        assert!(submit_as(&alice(), draft(), &p, &closed).is_ok());
    }

    #[test]
    fn the_same_person_under_another_sign_in_conflicts() {
        // Two sign-ins mapped to one IdC user share one run-as attribute.
        let mut other_login = alice_open_as_deploy();
        other_login.requester = UserId::new("alice-sso");
        assert!(matches!(
            submit_as(&alice(), draft(), &policy(), &[other_login]),
            Err(DomainError::RunAsConflict { .. })
        ));
    }

    // ---- approve ----

    #[test]
    fn one_approval_approves_a_one_of_m_request() {
        let r = pending().approve(&bob(), &policy(), t(5)).unwrap();
        assert_eq!(r.state, RequestState::Approved { approved_at: t(5) });
        assert_eq!(
            r.approvals,
            vec![Approval {
                by: UserId::new("bob"),
                at: t(5)
            }]
        );
        assert_eq!(r.approvals_missing(&policy()), 0);
    }

    #[test]
    fn the_requester_cannot_approve_their_own_request() {
        let err = pending().approve(&alice(), &policy(), t(5)).unwrap_err();
        assert_eq!(err, DomainError::SelfApproval);
        assert_eq!(err.kind(), ErrorKind::Forbidden);
    }

    #[test]
    fn an_admin_cannot_approve_their_own_request() {
        let r = submit_as(&ada(), draft(), &policy(), &[]).unwrap();
        let err = r.approve(&ada(), &policy(), t(5)).unwrap_err();
        assert_eq!(err, DomainError::SelfApproval);
    }

    #[test]
    fn an_admin_outside_the_approver_groups_can_approve_others() {
        let r = pending().approve(&admin(), &policy(), t(5)).unwrap();
        assert_eq!(r.state.name(), StateName::Approved);
    }

    #[test]
    fn a_non_approver_cannot_approve() {
        let err = pending().approve(&mallory(), &policy(), t(5)).unwrap_err();
        assert_eq!(
            err,
            DomainError::NotEligibleApprover {
                profile: "prod-web".into(),
                groups: vec!["sre".into(), "leads".into()],
            }
        );
        assert_eq!(
            err.to_string(),
            "you are not an approver for profile `prod-web`: approvers are admins and members of sre, leads"
        );
        assert_eq!(err.kind(), ErrorKind::Forbidden);
    }

    #[test]
    fn two_of_three_needs_two_distinct_approvers() {
        let p = two_of_three();
        let r = submit_as(&alice(), draft(), &p, &[]).unwrap();
        assert_eq!(r.approvals_missing(&p), 2);

        let r = r.approve(&bob(), &p, t(5)).unwrap();
        assert_eq!(r.state, RequestState::Pending);
        assert_eq!(r.approvals_missing(&p), 1);

        let err = r.clone().approve(&bob(), &p, t(6)).unwrap_err();
        assert_eq!(
            err,
            DomainError::AlreadyApproved {
                by: UserId::new("bob")
            }
        );
        assert_eq!(err.kind(), ErrorKind::Conflict);

        let r = r.approve(&carol(), &p, t(7)).unwrap();
        assert_eq!(r.state, RequestState::Approved { approved_at: t(7) });
        assert_eq!(r.approvals.len(), 2);
        assert_eq!(r.approvals_missing(&p), 0);
    }

    #[test]
    fn zero_approvals_required_still_needs_one_approver() {
        let p = Policy {
            approvals_required: 0,
            ..policy()
        };
        let r = submit_as(&alice(), draft(), &p, &[]).unwrap();
        assert_eq!(r.state, RequestState::Pending);
        assert_eq!(r.approvals_missing(&p), 1);
        let r = r.approve(&bob(), &p, t(5)).unwrap();
        assert_eq!(r.state.name(), StateName::Approved);
    }

    #[test]
    fn approve_refuses_another_profiles_policy() {
        let p = Policy {
            profile: "staging".into(),
            ..policy()
        };
        let err = pending().approve(&bob(), &p, t(5)).unwrap_err();
        assert_eq!(
            err,
            DomainError::WrongProfile {
                asked: "prod-web".into(),
                profile: "staging".into()
            }
        );
    }

    // ---- deny ----

    #[test]
    fn an_approver_denies_a_pending_request_with_a_comment() {
        let r = pending()
            .deny(&bob(), &policy(), Some("  use staging  ".into()), t(5))
            .unwrap();
        assert_eq!(
            r.state,
            RequestState::Denied {
                by: UserId::new("bob"),
                at: t(5),
                comment: Some("use staging".into()),
            }
        );
        assert!(!r.is_open());
    }

    #[test]
    fn an_admin_may_deny_and_a_blank_comment_is_none() {
        let r = pending()
            .deny(&admin(), &policy(), Some(" ".into()), t(5))
            .unwrap();
        assert!(matches!(
            r.state,
            RequestState::Denied { comment: None, .. }
        ));
    }

    #[test]
    fn a_partly_approved_request_can_still_be_denied() {
        let p = two_of_three();
        let r = submit_as(&alice(), draft(), &p, &[])
            .unwrap()
            .approve(&bob(), &p, t(5))
            .unwrap();
        let r = r.deny(&carol(), &p, None, t(6)).unwrap();
        assert_eq!(r.state.name(), StateName::Denied);
    }

    #[test]
    fn the_requester_cannot_deny_and_is_told_to_cancel() {
        let err = pending().deny(&alice(), &policy(), None, t(5)).unwrap_err();
        assert!(matches!(
            err,
            DomainError::NotAllowed { action: "deny", .. }
        ));
        assert!(err.to_string().contains("cancel"), "{err}");
        assert_eq!(err.kind(), ErrorKind::Forbidden);
    }

    #[test]
    fn a_non_approver_cannot_deny() {
        let err = pending()
            .deny(&mallory(), &policy(), None, t(5))
            .unwrap_err();
        assert!(matches!(err, DomainError::NotEligibleApprover { .. }));
    }

    #[test]
    fn deny_limits_the_comment() {
        let err = pending()
            .deny(&bob(), &policy(), Some("c".repeat(1001)), t(5))
            .unwrap_err();
        assert_eq!(
            err,
            DomainError::CommentTooLong {
                len: 1001,
                max: 1000
            }
        );
        assert_eq!(err.field(), Some("comment"));
    }

    // ---- cancel ----

    #[test]
    fn the_requester_cancels_a_pending_or_approved_request() {
        for r in [pending(), approved()] {
            let r = r.cancel(&alice(), t(8)).unwrap();
            assert_eq!(
                r.state,
                RequestState::Cancelled {
                    by: UserId::new("alice"),
                    at: t(8)
                }
            );
            assert!(!r.wants_assignment());
        }
    }

    #[test]
    fn an_admin_may_cancel_anyones_request() {
        let r = pending().cancel(&admin(), t(8)).unwrap();
        assert_eq!(r.state.name(), StateName::Cancelled);
    }

    #[test]
    fn others_cannot_cancel() {
        for who in [bob(), mallory()] {
            let err = pending().cancel(&who, t(8)).unwrap_err();
            assert!(matches!(
                err,
                DomainError::NotAllowed {
                    action: "cancel",
                    ..
                }
            ));
            assert!(
                err.to_string().contains("only the requester or an admin"),
                "{err}"
            );
        }
    }

    // ---- activate / fail ----

    #[test]
    fn the_duration_runs_from_activation() {
        let r = approved().activate(t(30)).unwrap();
        assert_eq!(
            r.state,
            RequestState::Active {
                activated_at: t(30),
                expires_at: t(90)
            }
        );
        assert_eq!(r.expires_at(), Some(t(90)));
        assert!(r.is_open() && r.wants_assignment());
    }

    #[test]
    fn activate_refuses_an_end_time_beyond_chronos_range() {
        let mut r = approved();
        r.duration = Duration::from_secs(u64::MAX / 4);
        let err = r.activate(t(30)).unwrap_err();
        assert!(matches!(err, DomainError::DurationOutOfRange { .. }));
    }

    #[test]
    fn provisioning_failure_is_recorded() {
        let r = approved()
            .fail("AccessDenied on CreateAccountAssignment".into(), t(9))
            .unwrap();
        assert_eq!(
            r.state,
            RequestState::Failed {
                at: t(9),
                reason: "AccessDenied on CreateAccountAssignment".into()
            }
        );
        assert!(!r.is_open() && !r.wants_assignment());
    }

    // ---- expire ----

    #[test]
    fn expire_before_time_is_not_due() {
        let err = active().expire(t(69)).unwrap_err();
        assert_eq!(err, DomainError::NotDue { expires_at: t(70) });
        assert_eq!(err.kind(), ErrorKind::Conflict);
    }

    #[test]
    fn expire_at_or_after_time_ends_the_grant() {
        for now in [t(70), t(500)] {
            let r = active().expire(now).unwrap();
            assert_eq!(
                r.state,
                RequestState::Ended {
                    activated_at: Some(t(10)),
                    ended_at: now,
                    why: EndReason::Expired,
                }
            );
            assert_eq!(r.expires_at(), None);
            assert!(!r.wants_assignment());
        }
    }

    #[test]
    fn expire_drops_a_pending_extension() {
        let r = extending().expire(t(70)).unwrap();
        assert_eq!(r.extension, None);
        assert_eq!(r.approvals_missing(&policy()), 0);
    }

    // ---- revoke ----

    #[test]
    fn an_admin_approves_only_when_the_config_says_so_but_always_revokes() {
        let err = pending()
            .approve(&admin_who_does_not_approve(), &policy(), t(5))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Forbidden);
        let r = pending().approve(&bob(), &policy(), t(5)).unwrap();
        let r = r.activate(t(6)).unwrap();
        assert!(
            r.revoke(&admin_who_does_not_approve(), &policy(), None, t(7))
                .is_ok()
        );
    }

    #[test]
    fn revoke_by_requester_approver_or_admin() {
        for who in [alice(), bob(), admin()] {
            let r = active()
                .revoke(&who, &policy(), Some("done".into()), t(30))
                .unwrap();
            assert_eq!(
                r.state,
                RequestState::Ended {
                    activated_at: Some(t(10)),
                    ended_at: t(30),
                    why: EndReason::Revoked {
                        by: who.user.clone(),
                        comment: Some("done".into())
                    },
                }
            );
        }
    }

    #[test]
    fn revoke_by_anyone_else_is_refused() {
        let err = active()
            .revoke(&mallory(), &policy(), None, t(30))
            .unwrap_err();
        assert!(matches!(
            err,
            DomainError::NotAllowed {
                action: "revoke",
                ..
            }
        ));
        assert!(
            err.to_string().contains("approvers of profile `prod-web`"),
            "{err}"
        );
        assert_eq!(err.kind(), ErrorKind::Forbidden);
    }

    #[test]
    fn revoke_of_an_approved_request_has_no_activation() {
        let r = approved().revoke(&bob(), &policy(), None, t(7)).unwrap();
        assert!(matches!(
            r.state,
            RequestState::Ended {
                activated_at: None,
                why: EndReason::Revoked { comment: None, .. },
                ..
            }
        ));
    }

    #[test]
    fn revoke_drops_a_pending_extension_and_limits_the_comment() {
        let r = extending()
            .revoke(&alice(), &policy(), None, t(30))
            .unwrap();
        assert_eq!(r.extension, None);
        let err = active()
            .revoke(&alice(), &policy(), Some("x".repeat(1001)), t(30))
            .unwrap_err();
        assert!(matches!(err, DomainError::CommentTooLong { .. }));
    }

    // ---- lapse ----

    #[test]
    fn lapse_before_the_approval_timeout_is_not_due() {
        let err = pending().lapse(&policy(), t(239)).unwrap_err();
        assert_eq!(err, DomainError::NotDue { expires_at: t(240) });
    }

    #[test]
    fn lapse_after_the_approval_timeout() {
        for now in [t(240), t(1000)] {
            let r = pending().lapse(&policy(), now).unwrap();
            assert_eq!(r.state, RequestState::Lapsed { at: now });
            assert!(!r.is_open());
        }
    }

    // ---- extensions ----

    #[test]
    fn an_extension_waits_for_approval() {
        let r = extending();
        assert_eq!(r.expires_at(), Some(t(70)));
        assert_eq!(
            r.extension,
            Some(Extension {
                extra: mins(30),
                reason: "still digging".into(),
                requested_at: t(20),
                approvals: vec![],
            })
        );
        assert_eq!(r.approvals_missing(&policy()), 1);
    }

    #[test]
    fn an_approved_extension_moves_expires_at() {
        let r = extending().approve(&bob(), &policy(), t(25)).unwrap();
        assert_eq!(
            r.state,
            RequestState::Active {
                activated_at: t(10),
                expires_at: t(100)
            }
        );
        assert_eq!(r.extension, None);
        // The request's own approvals are untouched.
        assert_eq!(r.approvals.len(), 1);
    }

    #[test]
    fn an_extension_needs_n_distinct_approvers_and_no_self_approval() {
        let p = two_of_three();
        let r = submit_as(&alice(), draft(), &p, &[])
            .unwrap()
            .approve(&bob(), &p, t(1))
            .unwrap()
            .approve(&carol(), &p, t(2))
            .unwrap()
            .activate(t(10))
            .unwrap()
            .request_extension(&alice(), mins(30), "more".into(), &p, t(20))
            .unwrap();
        // Approving the request did not count toward the extension.
        assert_eq!(r.approvals_missing(&p), 2);

        assert_eq!(
            r.clone().approve(&alice(), &p, t(21)).unwrap_err(),
            DomainError::SelfApproval
        );
        assert!(matches!(
            r.clone().approve(&mallory(), &p, t(21)).unwrap_err(),
            DomainError::NotEligibleApprover { .. }
        ));

        let r = r.approve(&bob(), &p, t(21)).unwrap();
        assert_eq!(r.expires_at(), Some(t(70)));
        assert_eq!(r.approvals_missing(&p), 1);
        assert_eq!(
            r.clone().approve(&bob(), &p, t(22)).unwrap_err(),
            DomainError::AlreadyApproved {
                by: UserId::new("bob")
            }
        );

        let r = r.approve(&admin(), &p, t(23)).unwrap();
        assert_eq!(r.expires_at(), Some(t(100)));
        assert_eq!(r.extension, None);
    }

    #[test]
    fn a_denied_extension_is_dropped_and_the_grant_keeps_running() {
        let r = extending()
            .deny(&bob(), &policy(), Some("no".into()), t(25))
            .unwrap();
        assert_eq!(r.extension, None);
        assert_eq!(
            r.state,
            RequestState::Active {
                activated_at: t(10),
                expires_at: t(70)
            }
        );
    }

    #[test]
    fn an_extension_cannot_be_denied_by_the_requester_or_a_non_approver() {
        let err = extending()
            .deny(&alice(), &policy(), None, t(25))
            .unwrap_err();
        assert!(matches!(err, DomainError::NotAllowed { .. }));
        let err = extending()
            .deny(&mallory(), &policy(), None, t(25))
            .unwrap_err();
        assert!(matches!(err, DomainError::NotEligibleApprover { .. }));
    }

    #[test]
    fn approve_or_deny_without_a_pending_extension() {
        let err = active().approve(&bob(), &policy(), t(25)).unwrap_err();
        assert_eq!(err, DomainError::NoExtensionPending);
        assert_eq!(err.kind(), ErrorKind::Conflict);
        let err = active().deny(&bob(), &policy(), None, t(25)).unwrap_err();
        assert_eq!(err, DomainError::NoExtensionPending);
    }

    #[test]
    fn an_auto_approved_profile_extends_at_once() {
        let p = auto();
        let r = submit_as(&alice(), draft(), &p, &[])
            .unwrap()
            .activate(t(10))
            .unwrap()
            .request_extension(&alice(), mins(45), "more".into(), &p, t(20))
            .unwrap();
        assert_eq!(r.expires_at(), Some(t(115)));
        assert_eq!(r.extension, None);
    }

    #[test]
    fn an_extension_past_the_maximum_total_is_refused() {
        // Active 1h of an 8h maximum: 7h more is fine, 7h1m is not.
        let ok = active().request_extension(&alice(), hours(7), "x".into(), &policy(), t(20));
        assert!(ok.is_ok());
        let err = active()
            .request_extension(&alice(), hours(7) + mins(1), "x".into(), &policy(), t(20))
            .unwrap_err();
        assert_eq!(
            err,
            DomainError::DurationTooLong {
                asked: hours(8) + mins(1),
                max: hours(8)
            }
        );
        assert!(err.to_string().contains("8h1m"), "{err}");
    }

    #[test]
    fn a_second_extension_waits_for_the_first() {
        let err = extending()
            .request_extension(&alice(), mins(10), "x".into(), &policy(), t(21))
            .unwrap_err();
        assert_eq!(err, DomainError::ExtensionPending);
        assert_eq!(err.kind(), ErrorKind::Conflict);
    }

    #[test]
    fn only_the_requester_may_extend() {
        for who in [bob(), admin(), mallory()] {
            let err = active()
                .request_extension(&who, mins(10), "x".into(), &policy(), t(20))
                .unwrap_err();
            assert!(matches!(
                err,
                DomainError::NotAllowed {
                    action: "extend",
                    ..
                }
            ));
        }
    }

    #[test]
    fn an_extension_needs_time_and_a_reason() {
        let err = active()
            .request_extension(&alice(), Duration::ZERO, "x".into(), &policy(), t(20))
            .unwrap_err();
        assert_eq!(err, DomainError::DurationZero);
        let err = active()
            .request_extension(&alice(), mins(10), " ".into(), &policy(), t(20))
            .unwrap_err();
        assert_eq!(err, DomainError::ReasonRequired);
        let err = active()
            .request_extension(&alice(), mins(10), "r".repeat(1001), &policy(), t(20))
            .unwrap_err();
        assert!(matches!(err, DomainError::ReasonTooLong { .. }));
    }

    // ---- helpers and names ----

    #[test]
    fn open_and_assignment_flags_per_state() {
        for name in StateName::ALL {
            let r = in_state(name);
            assert_eq!(r.state.name(), name);
            let open = matches!(
                name,
                StateName::Pending | StateName::Approved | StateName::Active
            );
            let wants = matches!(name, StateName::Approved | StateName::Active);
            assert_eq!(r.is_open(), open, "{name}");
            assert_eq!(r.wants_assignment(), wants, "{name}");
            assert_eq!(
                r.expires_at().is_some(),
                name == StateName::Active,
                "{name}"
            );
            if name != StateName::Pending {
                assert_eq!(r.approvals_missing(&policy()), 0, "{name}");
            }
        }
    }

    #[test]
    fn state_names_round_trip() {
        for name in StateName::ALL {
            assert_eq!(name.as_str().parse::<StateName>().unwrap(), name);
            assert_eq!(name.to_string(), name.as_str());
            assert_eq!(name.as_str(), name.as_str().to_lowercase());
            let json = serde_json::to_string(&name).unwrap();
            assert_eq!(json, format!("\"{}\"", name.as_str()));
            assert_eq!(serde_json::from_str::<StateName>(&json).unwrap(), name);
        }
    }

    #[test]
    fn a_bad_state_name_is_named_in_the_error() {
        let err = "Active".parse::<StateName>().unwrap_err();
        assert_eq!(
            err,
            DomainError::InvalidStateName {
                value: "Active".into()
            }
        );
        assert!(err.to_string().contains("`Active`"), "{err}");
    }

    #[test]
    fn requests_round_trip_through_json_in_every_state() {
        let mut all: Vec<Request> = StateName::ALL.into_iter().map(in_state).collect();
        all.push(extending());
        all.push(
            active()
                .revoke(&bob(), &policy(), Some("bye".into()), t(30))
                .unwrap(),
        );
        for r in all {
            let json = serde_json::to_string(&r).unwrap();
            let back: Request = serde_json::from_str(&json).unwrap();
            assert_eq!(back, r, "{json}");
        }
    }

    #[test]
    fn request_json_shape_is_readable() {
        let value = serde_json::to_value(active()).unwrap();
        assert_eq!(value["state"]["name"], "active");
        assert_eq!(value["account"], "123456789012");
        assert_eq!(value["os_user"], "app");
        assert_eq!(value["run_as_mode"], "principal-tag");
        let ended = active().revoke(&bob(), &policy(), None, t(30)).unwrap();
        let value = serde_json::to_value(ended).unwrap();
        assert_eq!(value["state"]["why"]["kind"], "revoked");
        assert_eq!(value["state"]["why"]["by"], "bob");
    }

    #[test]
    fn stored_json_with_an_invalid_os_user_is_rejected() {
        let mut value = serde_json::to_value(active()).unwrap();
        value["os_user"] = "root".into();
        assert!(serde_json::from_value::<Request>(value).is_err());
    }
}
