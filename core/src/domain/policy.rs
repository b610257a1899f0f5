//! Access policy: who acts ([`Actor`]) and what one configured profile allows ([`Policy`]).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::DomainError;
use super::ids::{AccountId, UserId};
use super::os_user::OsUser;

/// How the chosen OS user reaches `SSMSessionRunAs` (docs/OPERATIONS.md, "Enforcing the OS user").
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum RunAsMode {
    /// The OS user is written into an identity-store attribute that IdC passes
    /// on as a session tag. One value per person, so one OS user per person at
    /// a time across all their open grants.
    #[default]
    PrincipalTag,
    /// One permission set and SSM document per OS user; concurrent grants with
    /// different OS users are fine.
    SessionDocument,
}

impl RunAsMode {
    /// Every mode, in config order.
    pub const ALL: [RunAsMode; 2] = [RunAsMode::PrincipalTag, RunAsMode::SessionDocument];

    /// The config and wire spelling: `principal-tag` or `session-document`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunAsMode::PrincipalTag => "principal-tag",
            RunAsMode::SessionDocument => "session-document",
        }
    }
}

impl fmt::Display for RunAsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunAsMode {
    type Err = DomainError;

    /// Parses the spelling produced by [`RunAsMode::as_str`]; the error names the bad value.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|mode| mode.as_str() == s)
            .ok_or_else(|| DomainError::InvalidRunAsMode {
                value: s.to_owned(),
            })
    }
}

/// Who performs an action: the signed-in person with the groups from their
/// ID token and whether config makes them a jitgate admin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The person's stable id (OIDC subject).
    pub user: UserId,
    /// OIDC groups, as refreshed at the last sign-in.
    pub groups: Vec<String>,
    /// Admins see everything and may cancel and revoke anything.
    pub is_admin: bool,
    /// Approves requests of every profile (never their own): an admin, when the config
    /// gives admins that power (`[auth] admins_approve`); otherwise approving needs an
    /// approver group of the profile, for admins too.
    pub approves_all: bool,
    /// When the person last proved who they are to the identity provider (the ID
    /// token's `auth_time`), for a web session; `None` for the API, the CLI and Slack.
    /// Profiles with `step_up` take approvals only from a recent one.
    #[serde(default)]
    pub authenticated_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl Actor {
    /// Whether the actor belongs to at least one of `groups`.
    pub fn in_any(&self, groups: &[String]) -> bool {
        self.groups.iter().any(|g| groups.contains(g))
    }
}

/// The domain view of one configured profile: what can be requested and who decides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// The profile's name, as requesters pick it.
    pub profile: String,
    /// AWS accounts a request under this profile may target.
    pub accounts: Vec<AccountId>,
    /// OS users a request under this profile may ask for.
    pub allowed_os_users: Vec<OsUser>,
    /// Shortest grant (and extension) that may be asked for.
    pub min_duration: Duration,
    /// Longest grant, counted from activation and including extensions.
    pub max_duration: Duration,
    /// OIDC groups whose members may request this profile.
    pub requester_groups: Vec<String>,
    /// OIDC groups whose members may approve requests for this profile (admins always may).
    pub approver_groups: Vec<String>,
    /// Individual users who may approve, besides the members of `approver_groups`.
    pub approvers: Vec<UserId>,
    /// Distinct approvers needed (N of M). A request that is not auto-approved
    /// always needs at least one, even if this is 0.
    pub approvals_required: u32,
    /// Requests and extensions are approved on submission (e.g. staging).
    pub auto_approve: bool,
    /// How long a request may wait for approval before it lapses.
    pub approval_timeout: Duration,
    /// How the OS user is enforced for grants of this profile.
    pub run_as_mode: RunAsMode,
    /// Approving needs a fresh sign-in at the identity provider (its MFA), on the web:
    /// not a Slack click, an API token or the CLI.
    pub step_up: bool,
}

impl Policy {
    /// Whether `actor` may request this profile: a member of any requester group.
    pub fn may_request(&self, actor: &Actor) -> bool {
        actor.in_any(&self.requester_groups)
    }

    /// Whether `actor` may approve (or deny) requests for this profile: someone who
    /// approves all (see [`Actor::approves_all`]), a member of any approver group or a
    /// named approver. Self-approval is refused
    /// separately.
    pub fn may_approve(&self, actor: &Actor) -> bool {
        actor.approves_all
            || actor.in_any(&self.approver_groups)
            || self.approvers.contains(&actor.user)
    }

    /// The policy of a profile that is no longer configured: nothing new may be asked
    /// for or approved; what it granted may still be ended by its requester or an admin,
    /// and its open requests are due to lapse at once.
    pub fn removed(profile: &str) -> Policy {
        Policy {
            profile: profile.to_owned(),
            accounts: Vec::new(),
            allowed_os_users: Vec::new(),
            min_duration: Duration::ZERO,
            max_duration: Duration::ZERO,
            requester_groups: Vec::new(),
            approver_groups: Vec::new(),
            approvers: Vec::new(),
            approvals_required: 1,
            auto_approve: false,
            approval_timeout: Duration::ZERO,
            run_as_mode: RunAsMode::default(),
            step_up: false,
        }
    }

    /// Approvals a non-auto-approved request needs: `approvals_required`, but at
    /// least 1, because a misconfigured 0 must not turn into silent auto-approval.
    pub fn approvals_needed(&self) -> u32 {
        self.approvals_required.max(1)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::domain::error::ErrorKind;

    fn actor(name: &str, groups: &[&str], is_admin: bool) -> Actor {
        Actor {
            user: UserId::new(name),
            groups: groups.iter().map(ToString::to_string).collect(),
            is_admin,
            approves_all: is_admin,
            authenticated_at: None,
        }
    }

    fn policy() -> Policy {
        Policy {
            profile: "prod-web".into(),
            accounts: vec![AccountId::parse("123456789012").unwrap()],
            allowed_os_users: vec![OsUser::parse("app").unwrap()],
            min_duration: Duration::from_secs(60),
            max_duration: Duration::from_secs(8 * 3600),
            requester_groups: vec!["devs".into(), "contractors".into()],
            approver_groups: vec!["sre".into()],
            approvers: vec![UserId::new("dave")],
            approvals_required: 1,
            auto_approve: false,
            approval_timeout: Duration::from_secs(3600),
            run_as_mode: RunAsMode::PrincipalTag,
            step_up: false,
        }
    }

    #[test]
    fn may_request_needs_a_requester_group() {
        let p = policy();
        assert!(p.may_request(&actor("a", &["devs"], false)));
        assert!(p.may_request(&actor("a", &["x", "contractors"], false)));
        assert!(!p.may_request(&actor("a", &["sre"], false)));
        assert!(!p.may_request(&actor("a", &[], false)));
        // Being an admin grants approval rights, not access.
        assert!(!p.may_request(&actor("a", &[], true)));
    }

    #[test]
    fn may_approve_needs_an_approver_group_or_admin() {
        let p = policy();
        assert!(p.may_approve(&actor("a", &["sre"], false)));
        assert!(p.may_approve(&actor("a", &[], true)));
        assert!(!p.may_approve(&actor("a", &["devs"], false)));
        assert!(!p.may_approve(&actor("a", &[], false)));
        // A named approver needs no group.
        assert!(p.may_approve(&actor("dave", &[], false)));
    }

    #[test]
    fn approvals_needed_is_at_least_one() {
        let mut p = policy();
        p.approvals_required = 0;
        assert_eq!(p.approvals_needed(), 1);
        p.approvals_required = 3;
        assert_eq!(p.approvals_needed(), 3);
    }

    #[test]
    fn run_as_mode_spellings_round_trip() {
        for mode in RunAsMode::ALL {
            assert_eq!(mode.as_str().parse::<RunAsMode>().unwrap(), mode);
            assert_eq!(mode.to_string(), mode.as_str());
            let json = serde_json::to_string(&mode).unwrap();
            assert_eq!(json, format!("\"{}\"", mode.as_str()));
            assert_eq!(serde_json::from_str::<RunAsMode>(&json).unwrap(), mode);
        }
        assert_eq!(RunAsMode::default(), RunAsMode::PrincipalTag);
    }

    #[test]
    fn run_as_mode_parse_error_names_the_value() {
        let err = "PrincipalTag".parse::<RunAsMode>().unwrap_err();
        assert_eq!(
            err,
            DomainError::InvalidRunAsMode {
                value: "PrincipalTag".into()
            }
        );
        let text = err.to_string();
        assert!(text.contains("`PrincipalTag`"), "{text}");
        assert!(text.contains("principal-tag, session-document"), "{text}");
        assert_eq!(err.kind(), ErrorKind::Invalid);
    }
}
