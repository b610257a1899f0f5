//! The HTTP edges' view of the application layer's rules (jitgate_core::app::Rules):
//! who may see what and which profiles someone requests or approves, for the signed-in
//! person of a request ([`CurrentUser`], whose actor was built once by those rules).

use jitgate_core::app::Rules;

use crate::domain::Policy;
use crate::domain::RequestRecord;
use crate::store::requests::ListFilter;

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

/// Whether `user` may see `stored`: their own, one they approve, or any for an admin.
pub fn can_view(user: &CurrentUser, stored: &RequestRecord, rules: &Rules) -> bool {
    rules.may_view(&user.actor, &stored.request)
}

/// Narrows a listing to what `user` may see.
pub fn restrict(user: &CurrentUser, rules: &Rules, mut filter: ListFilter) -> ListFilter {
    if !user.actor.is_admin {
        filter.visible_to = Some((user.user.id.clone(), approved_profiles(user, rules)));
    }
    filter
}
