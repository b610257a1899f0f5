//! Which instances a person can reach, and through which profile and grant: what
//! `GET /api/v1/targets`, `jitgate targets` and `jitgate ssh` resolve names with.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::authz::Rules;
use super::error::AppError;
use super::ports::{Directory, Inventory, Store};
use super::requests::Requests;
use crate::domain::{Actor, RequestId, StateName, Target, TargetScope};

/// How many of a person's active grants are looked at (far above what anyone holds).
const ACTIVE_GRANTS: i64 = 200;

/// A target a person can reach: the profiles of theirs that cover it and their active
/// grants that do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reachable {
    /// The instance.
    pub target: Target,
    /// Profiles covering it that the person may request (every covering profile for an
    /// admin).
    pub profiles: Vec<String>,
    /// The person's active grants that reach it now.
    pub grants: Vec<RequestId>,
}

/// The targets a person can reach, from one lookup of the inventory.
#[derive(Debug, Clone)]
pub struct TargetList {
    /// By Name tag, then instance id.
    pub reachable: Vec<Reachable>,
    /// When the inventory was looked up.
    pub looked_up_at: DateTime<Utc>,
}

/// The targets use case.
pub struct Targets<S, D> {
    requests: Requests<S, D>,
    inventory: Arc<dyn Inventory>,
    scopes: Arc<Vec<TargetScope>>,
    rules: Arc<Rules>,
}

impl<S: Clone, D> Clone for Targets<S, D> {
    fn clone(&self) -> Self {
        Self {
            requests: self.requests.clone(),
            inventory: self.inventory.clone(),
            scopes: self.scopes.clone(),
            rules: self.rules.clone(),
        }
    }
}

impl<S: Store, D: Directory> Targets<S, D> {
    /// The use case over `inventory`, with each profile's `scopes`, under `rules`; the
    /// person's grants are read through `requests`.
    pub fn new(
        requests: Requests<S, D>,
        inventory: Arc<dyn Inventory>,
        scopes: Vec<TargetScope>,
        rules: Arc<Rules>,
    ) -> Self {
        Self {
            requests,
            inventory,
            scopes: Arc::new(scopes),
            rules,
        }
    }

    /// The instances a grant reaches: its profile's scope on its account. Empty when the
    /// inventory has not been looked up yet or the profile is no longer configured. The
    /// caller has already checked that the person may see the grant.
    pub fn reached_by(&self, grant: &crate::domain::Request) -> Vec<Target> {
        let (Some(snapshot), Some(scope)) = (
            self.inventory.snapshot(),
            self.scopes.iter().find(|s| s.profile == grant.profile),
        ) else {
            return Vec::new();
        };
        snapshot
            .targets
            .iter()
            .filter(|t| t.account == grant.account && scope.covers(t))
            .cloned()
            .collect()
    }

    /// The targets `query` picks (an instance id, or part of a Name tag) that `actor`
    /// can reach through a profile they may request, or holds a grant on; an admin sees
    /// every target in any profile's scope.
    pub async fn list(&self, actor: &Actor, query: &str) -> Result<TargetList, AppError> {
        let snapshot = self.inventory.snapshot().ok_or(AppError::NotReady(
            "the list of instances has not been looked up yet; try again in a minute",
        ))?;
        let active = self
            .requests
            .mine(actor, vec![StateName::Active], None, ACTIVE_GRANTS)
            .await?;
        let mut reachable = Vec::new();
        for target in snapshot.targets.iter().filter(|t| t.matches(query)) {
            let covering: Vec<&TargetScope> =
                self.scopes.iter().filter(|s| s.covers(target)).collect();
            let profiles: Vec<String> = covering
                .iter()
                .filter(|s| {
                    self.rules.is_admin(actor)
                        || self
                            .rules
                            .policy(&s.profile)
                            .is_some_and(|p| self.rules.may_request(actor, p))
                })
                .map(|s| s.profile.clone())
                .collect();
            let grants: Vec<RequestId> = active
                .iter()
                .filter(|g| {
                    g.request.account == target.account
                        && covering.iter().any(|s| s.profile == g.request.profile)
                })
                .map(|g| g.request.id)
                .collect();
            if !profiles.is_empty() || !grants.is_empty() {
                reachable.push(Reachable {
                    target: target.clone(),
                    profiles,
                    grants,
                });
            }
        }
        reachable.sort_by(|a, b| {
            (&a.target.name, &a.target.instance_id).cmp(&(&b.target.name, &b.target.instance_id))
        });
        Ok(TargetList {
            reachable,
            looked_up_at: snapshot.looked_up_at,
        })
    }
}
