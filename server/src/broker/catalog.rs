//! Permission set names resolved to ARNs once at start, so a typo in a profile stops
//! the server instead of failing a grant later.

use std::collections::HashMap;

use crate::config::{Config, ProfileConfig};
use crate::domain::OsUser;

/// A permission set a profile names that IdC does not have.
#[derive(Debug, thiserror::Error)]
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
    ) -> Result<Self, Vec<CatalogError>> {
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
        if missing.is_empty() {
            Ok(Self { arns })
        } else {
            Err(missing)
        }
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
