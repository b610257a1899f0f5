//! Who may see what: the read side of authorization, shared by pages and the API.
//! (What a person may *do* to a request is the domain's decision.)

use crate::config::{Config, ProfileConfig};
use crate::store::requests::{ListFilter, StoredRequest};

use super::CurrentUser;

/// Whether `user` approves requests of `profile` (as a member of an approver group,
/// a named approver, or an admin).
pub fn approves(user: &CurrentUser, profile: &ProfileConfig) -> bool {
    user.is_admin
        || profile
            .approver_groups
            .iter()
            .any(|g| user.user.groups.contains(g))
        || profile.approvers.contains(&user.user.id)
}

/// Whether `user` may request `profile`.
pub fn may_request(user: &CurrentUser, profile: &ProfileConfig) -> bool {
    profile
        .requester_groups
        .iter()
        .any(|g| user.user.groups.contains(g))
}

/// Names of the profiles whose requests `user` approves.
pub fn approved_profiles(user: &CurrentUser, config: &Config) -> Vec<String> {
    config
        .profiles
        .iter()
        .filter(|p| approves(user, p))
        .map(|p| p.name.clone())
        .collect()
}

/// Whether `user` may see `stored`: their own, one they approve, or any for an admin.
pub fn can_view(user: &CurrentUser, stored: &StoredRequest, config: &Config) -> bool {
    user.is_admin
        || stored.request.requester.as_str() == user.user.id
        || config
            .profile(&stored.request.profile)
            .is_some_and(|p| approves(user, p))
}

/// Narrows a listing to what `user` may see.
pub fn restrict(user: &CurrentUser, config: &Config, mut filter: ListFilter) -> ListFilter {
    if !user.is_admin {
        filter.visible_to = Some((user.user.id.clone(), approved_profiles(user, config)));
    }
    filter
}
