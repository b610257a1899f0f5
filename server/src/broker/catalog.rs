//! Permission set names resolved to ARNs. Resolution needs IAM Identity Center, which
//! may be unreachable when the server starts: the scheduler resolves the catalog in the
//! background (scheduler/catalog.rs) and keeps it in a [`CatalogCell`]. Until then new
//! grants are refused as "not ready" (revocations need no catalog: each request keeps
//! its permission set ARN); a permission set that does not exist fails only the new
//! grants of the profiles that name it, with a message saying so.

use std::collections::HashMap;

use crate::config::{Config, ProfileConfig};
use jitgate_core::app::ports::{NoPermissionSet, PermissionSets};

use crate::domain::{OsUser, PermissionSetArn};

/// A permission set a profile names that IdC does not have.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "profile `{profile}` names permission set `{name}`, which IAM Identity Center does not \
     have; create it or fix profiles.permission_set"
)]
pub struct CatalogError {
    pub profile: String,
    pub name: String,
}

/// The permission set ARN of every (profile, OS user) a request can ask for.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    arns: HashMap<(String, String), String>,
}

impl Catalog {
    /// Resolves every profile's permission set(s) with `by_name` (name → ARN, as listed
    /// from IdC); ARNs in the config are taken as they are.
    pub fn resolve(
        config: &Config,
        by_name: &HashMap<String, String>,
    ) -> (Self, Vec<CatalogError>) {
        let mut arns = HashMap::new();
        let mut missing = Vec::new();
        for profile in &config.profiles {
            for os_user in &profile.allowed_os_users {
                let name = profile.permission_set_for(os_user);
                let arn = if name.starts_with("arn:") {
                    Some(name.clone())
                } else {
                    by_name.get(&name).cloned()
                };
                match arn {
                    Some(arn) => {
                        arns.insert((profile.name.clone(), os_user.to_string()), arn);
                    }
                    None => missing.push(CatalogError {
                        profile: profile.name.clone(),
                        name,
                    }),
                }
            }
        }
        (Self { arns }, missing)
    }

    /// The ARN for a grant of `profile` as `os_user`.
    pub fn arn_for(
        &self,
        profile: &ProfileConfig,
        os_user: &OsUser,
    ) -> Result<String, CatalogError> {
        self.arns
            .get(&(profile.name.clone(), os_user.to_string()))
            .cloned()
            .ok_or_else(|| CatalogError {
                profile: profile.name.clone(),
                name: profile.permission_set_for(os_user),
            })
    }

    /// Every managed (account, permission set ARN) pair: where the drift check looks.
    pub fn managed(&self, config: &Config) -> Vec<(String, String)> {
        let mut pairs: Vec<(String, String)> = config
            .profiles
            .iter()
            .flat_map(|p| {
                p.allowed_os_users.iter().filter_map(move |u| {
                    self.arns
                        .get(&(p.name.clone(), u.to_string()))
                        .map(|arn| (p, arn))
                })
            })
            .flat_map(|(p, arn)| p.accounts.iter().map(move |a| (a.to_string(), arn.clone())))
            .collect();
        pairs.sort();
        pairs.dedup();
        pairs
    }
}

/// The catalog as the server knows it: not resolved yet, or resolved with what is missing.
#[derive(Default)]
pub struct CatalogCell(std::sync::RwLock<Option<Resolved>>);

#[derive(Clone)]
struct Resolved {
    catalog: std::sync::Arc<Catalog>,
    missing: Vec<CatalogError>,
}

/// Why no catalog is available yet.
#[derive(Debug, thiserror::Error)]
#[error(
    "jitgate has not reached IAM Identity Center yet to look up permission sets, and keeps \
     trying; try again in a minute"
)]
pub struct NotResolved;

impl CatalogCell {
    /// A cell holding `catalog` already (tools, tests).
    pub fn resolved(catalog: Catalog) -> Self {
        let cell = Self::default();
        cell.set(catalog, Vec::new());
        cell
    }

    /// Records a resolution.
    pub fn set(&self, catalog: Catalog, missing: Vec<CatalogError>) {
        if let Ok(mut slot) = self.0.write() {
            *slot = Some(Resolved {
                catalog: std::sync::Arc::new(catalog),
                missing,
            });
        }
    }

    /// The catalog, once resolved.
    pub fn get(&self) -> Result<std::sync::Arc<Catalog>, NotResolved> {
        self.0
            .read()
            .ok()
            .and_then(|s| s.as_ref().map(|r| r.catalog.clone()))
            .ok_or(NotResolved)
    }

    /// For `/readyz`: `None` when every permission set resolved, else what is wrong.
    pub fn problem(&self) -> Option<String> {
        match self.0.read().ok().and_then(|s| s.clone()) {
            None => Some(
                "aws: permission sets not looked up yet (IAM Identity Center not reached)".into(),
            ),
            Some(r) if r.missing.is_empty() => None,
            Some(r) => Some(format!(
                "aws: {}",
                r.missing
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            )),
        }
    }
}

/// The catalog as the application layer's permission set port.
pub struct CatalogSets {
    pub cell: std::sync::Arc<CatalogCell>,
    pub config: std::sync::Arc<Config>,
}

impl PermissionSets for CatalogSets {
    fn arn_for(
        &self,
        profile: &str,
        os_user: &OsUser,
    ) -> Result<PermissionSetArn, NoPermissionSet> {
        let why = |e: &dyn std::fmt::Display| NoPermissionSet(e.to_string());
        let catalog = self.cell.get().map_err(|e| why(&e))?;
        let profile = self
            .config
            .profile(profile)
            .ok_or_else(|| NoPermissionSet(format!("no profile `{profile}`")))?;
        catalog
            .arn_for(profile, os_user)
            .map(PermissionSetArn::from)
            .map_err(|e| why(&e))
    }
}
