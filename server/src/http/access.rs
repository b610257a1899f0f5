//! The HTTP edges' view of the application layer's rules (jitgate_core::app::Rules),
//! for what a page shows (which profiles someone requests or approves): the signed-in
//! person of a request ([`CurrentUser`], whose actor was built once by those rules).
//! Who may see or do what is decided by the use cases themselves.

use jitgate_core::app::Rules;

use crate::domain::Policy;

use super::CurrentUser;

/// Whether `user` approves requests of `policy`'s profile (admins: all).
pub fn approves(user: &CurrentUser, policy: &Policy) -> bool {
    policy.may_approve(&user.actor)
}

/// Whether `user` may request `policy`'s profile.
pub fn may_request(rules: &Rules, user: &CurrentUser, policy: &Policy) -> bool {
    rules.may_request(&user.actor, policy)
}

/// Names of the profiles whose requests `user` approves.
pub fn approved_profiles(user: &CurrentUser, rules: &Rules) -> Vec<String> {
    rules.approved_profiles(&user.actor)
}
