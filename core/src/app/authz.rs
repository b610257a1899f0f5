//! Who may do what, decided once for every edge: who is an admin, who may request or
//! approve a profile, who may see a request, and what a person may do to one right now.
//! What an action then does is the domain's ([`crate::domain::Request`]), which checks
//! the same rules again as it applies it.

use crate::domain::{Actor, Policy, Request, RequestState, UserId};

/// The configured rules: the admin groups and every profile's policy.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    admin_groups: Vec<String>,
    admins_approve: bool,
    policies: Vec<Policy>,
    /// How recent a sign-in approves for a `step_up` profile.
    step_up_max_age: std::time::Duration,
}

/// What a person may do to a request now (buttons on its page, CLI and Slack choices).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Actions {
    /// Approve it (or its pending extension).
    pub approve: bool,
    /// Deny it (or its pending extension).
    pub deny: bool,
    /// Withdraw it before it is active.
    pub cancel: bool,
    /// End it early.
    pub revoke: bool,
    /// Ask for more time.
    pub extend: bool,
    /// Approve and deny are about the pending extension of an active grant.
    pub on_extension: bool,
}

impl Rules {
    /// The rules of `admin_groups` (who, when `admins_approve`, also approve every
    /// profile) and the profiles' `policies`.
    pub fn new(admin_groups: Vec<String>, admins_approve: bool, policies: Vec<Policy>) -> Self {
        Rules {
            admin_groups,
            admins_approve,
            policies,
            step_up_max_age: std::time::Duration::from_secs(5 * 60),
        }
    }

    /// These rules, with sign-ins up to `max_age` old approving for `step_up` profiles.
    pub fn with_step_up_max_age(mut self, max_age: std::time::Duration) -> Self {
        self.step_up_max_age = max_age;
        self
    }

    /// Whether `actor` signed in recently enough at `now` to approve for a `step_up`
    /// profile: a web session whose ID token said when they authenticated, at most
    /// `step_up_max_age` ago (a little ahead of `now` is clock skew, not a forgery: the
    /// token's signature vouches for it).
    pub fn stepped_up(&self, actor: &Actor, now: chrono::DateTime<chrono::Utc>) -> bool {
        let Some(at) = actor.authenticated_at else {
            return false;
        };
        let max_age =
            chrono::TimeDelta::from_std(self.step_up_max_age).unwrap_or(chrono::TimeDelta::MAX);
        // A provider's clock far ahead would otherwise lengthen the window by as much.
        let skew = chrono::TimeDelta::seconds(60);
        now - at <= max_age && at <= now + skew
    }

    /// The actor for a person with `groups` as the identity provider said last: who they
    /// are and whether they administer jitgate. Built once per request; every decision
    /// of that request uses it.
    pub fn actor(&self, user: UserId, groups: Vec<String>) -> Actor {
        let is_admin = groups.iter().any(|g| self.admin_groups.contains(g));
        Actor {
            user,
            groups,
            is_admin,
            approves_all: is_admin && self.admins_approve,
            authenticated_at: None,
        }
    }

    /// Every profile's policy, in config order.
    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    /// The policy of the profile called `name`, if it is configured.
    pub fn policy(&self, name: &str) -> Option<&Policy> {
        self.policies.iter().find(|p| p.profile == name)
    }

    /// Whether `actor` may request `policy`'s profile.
    pub fn may_request(&self, actor: &Actor, policy: &Policy) -> bool {
        actor.in_any(&policy.requester_groups)
    }

    /// The profiles `actor` may request.
    pub fn requestable(&self, actor: &Actor) -> Vec<&Policy> {
        self.policies
            .iter()
            .filter(|p| self.may_request(actor, p))
            .collect()
    }

    /// The names of the profiles whose requests `actor` approves.
    pub fn approved_profiles(&self, actor: &Actor) -> Vec<String> {
        self.policies
            .iter()
            .filter(|p| p.may_approve(actor))
            .map(|p| p.profile.clone())
            .collect()
    }

    /// Whether `actor` administers jitgate (all requests, the audit trail).
    pub fn is_admin(&self, actor: &Actor) -> bool {
        actor.is_admin
    }

    /// Whether `actor` may see `request`: their own, one of a profile they approve, or any
    /// for an admin. Anything else is "not found" to them, so ids cannot be probed.
    pub fn may_view(&self, actor: &Actor, request: &Request) -> bool {
        actor.is_admin
            || request.requester == actor.user
            || self
                .policy(&request.profile)
                .is_some_and(|p| p.may_approve(actor))
    }

    /// What `actor` may do to `request` now.
    pub fn actions(&self, actor: &Actor, request: &Request) -> Actions {
        let mine = request.requester == actor.user;
        let approver = self
            .policy(&request.profile)
            .is_some_and(|p| p.may_approve(actor));
        let decide = approver && !mine && awaits(request, &actor.user);
        let active = matches!(request.state, RequestState::Active { .. });
        let approved = matches!(request.state, RequestState::Approved { .. });
        let cancel = (matches!(request.state, RequestState::Pending) || approved)
            && (mine || actor.is_admin);
        Actions {
            approve: decide,
            deny: decide,
            cancel,
            // An approved request may be cancelled or revoked; offer one way to end it.
            revoke: (active || (approved && !cancel)) && (mine || approver || actor.is_admin),
            extend: active && mine && request.extension.is_none(),
            on_extension: active,
        }
    }
}

/// Whether `request` waits for an approval `me` has not given yet.
pub fn awaits(request: &Request, me: &UserId) -> bool {
    let given = |approvals: &[crate::domain::Approval]| approvals.iter().any(|a| &a.by == me);
    match (&request.state, &request.extension) {
        (RequestState::Pending, _) => !given(&request.approvals),
        (RequestState::Active { .. }, Some(extension)) => !given(&extension.approvals),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::{DateTime, Utc};

    use super::*;
    use crate::domain::{Draft, RequestId, RunAsMode};

    fn policy(name: &str) -> Policy {
        Policy {
            profile: name.into(),
            accounts: vec!["111111111111".parse().unwrap()],
            allowed_os_users: vec!["app".parse().unwrap()],
            min_duration: Duration::from_secs(60),
            max_duration: Duration::from_secs(3600),
            requester_groups: vec!["developers".into()],
            approver_groups: vec!["sre".into()],
            approvers: vec![UserId::new("dana")],
            approvals_required: 1,
            auto_approve: false,
            approval_timeout: Duration::from_secs(3600),
            run_as_mode: RunAsMode::PrincipalTag,
            step_up: false,
        }
    }

    fn rules() -> Rules {
        Rules::new(
            vec!["jitgate-admins".into()],
            true,
            vec![policy("prod"), policy("staging")],
        )
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_225_600, 0).unwrap()
    }

    fn pending_by(rules: &Rules, who: &Actor) -> Request {
        let draft = Draft {
            profile: "prod".into(),
            account: "111111111111".into(),
            os_user: "app".into(),
            duration: Duration::from_secs(1800),
            reason: "incident".into(),
            ticket: None,
        };
        Request::submit(
            RequestId(uuid::Uuid::from_u128(1)),
            draft,
            who,
            rules.policy("prod").unwrap(),
            &[],
            now(),
        )
        .unwrap()
    }

    #[test]
    fn admins_are_made_by_their_groups_only() {
        let r = rules();
        assert!(
            r.actor(UserId::new("carol"), vec!["jitgate-admins".into()])
                .is_admin
        );
        assert!(!r.actor(UserId::new("bob"), vec!["sre".into()]).is_admin);
    }

    #[test]
    fn who_sees_and_who_decides() {
        let r = rules();
        let alice = r.actor(UserId::new("alice"), vec!["developers".into()]);
        let bob = r.actor(UserId::new("bob"), vec!["sre".into()]);
        let dana = r.actor(UserId::new("dana"), vec![]);
        let erin = r.actor(UserId::new("erin"), vec!["contractors".into()]);
        let carol = r.actor(UserId::new("carol"), vec!["jitgate-admins".into()]);
        let request = pending_by(&r, &alice);

        assert!(r.may_view(&alice, &request), "one's own");
        assert!(r.may_view(&bob, &request), "an approver's profile");
        assert!(r.may_view(&dana, &request), "a named approver");
        assert!(r.may_view(&carol, &request), "an admin");
        assert!(!r.may_view(&erin, &request), "nobody else");

        assert_eq!(
            r.actions(&alice, &request),
            Actions {
                cancel: true,
                ..Actions::default()
            },
            "no self-approval"
        );
        let bobs = r.actions(&bob, &request);
        assert!(bobs.approve && bobs.deny && !bobs.cancel && !bobs.revoke);
        assert_eq!(r.actions(&erin, &request), Actions::default());
        assert_eq!(r.approved_profiles(&bob), vec!["prod", "staging"]);
        assert!(r.approved_profiles(&erin).is_empty());
        assert_eq!(r.requestable(&alice).len(), 2);
        assert!(r.requestable(&bob).is_empty());
    }

    #[test]
    fn admins_approve_only_when_the_config_says_so() {
        let off = Rules::new(vec!["jitgate-admins".into()], false, vec![policy("prod")]);
        let carol = off.actor(UserId::new("carol"), vec!["jitgate-admins".into()]);
        let alice = off.actor(UserId::new("alice"), vec!["developers".into()]);
        let request = pending_by(&off, &alice);
        assert!(
            off.may_view(&carol, &request),
            "admins still see everything"
        );
        let actions = off.actions(&carol, &request);
        assert!(!actions.approve && actions.cancel);
        assert!(off.approved_profiles(&carol).is_empty());
        let on = Rules::new(vec!["jitgate-admins".into()], true, vec![policy("prod")]);
        let carol = on.actor(UserId::new("carol"), vec!["jitgate-admins".into()]);
        assert!(on.actions(&carol, &request).approve);
    }

    #[test]
    fn an_approver_who_approved_is_not_asked_again() {
        let r = Rules::new(
            vec![],
            false,
            vec![Policy {
                approvals_required: 2,
                ..policy("prod")
            }],
        );
        let alice = r.actor(UserId::new("alice"), vec!["developers".into()]);
        let bob = r.actor(UserId::new("bob"), vec!["sre".into()]);
        let request = pending_by(&r, &alice)
            .approve(&bob, r.policy("prod").unwrap(), now())
            .unwrap();
        assert!(!r.actions(&bob, &request).approve);
        let carl = r.actor(UserId::new("carl"), vec!["sre".into()]);
        assert!(r.actions(&carl, &request).approve);
    }
}
