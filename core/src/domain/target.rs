//! Targets: the instances a profile's grants reach, as the server's inventory knows them.

use std::collections::BTreeMap;

use super::AccountId;

/// An instance in a member account, with what Session Manager reports of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The EC2 instance id (`i-…`).
    pub instance_id: String,
    /// Its `Name` tag, if it has one.
    pub name: Option<String>,
    /// The member account it runs in.
    pub account: AccountId,
    /// The region it runs in.
    pub region: String,
    /// Every tag of the instance.
    pub tags: BTreeMap<String, String>,
    /// Session Manager's ping status (`Online`, `ConnectionLost`, ...); `None` when the
    /// agent never registered, so no session can reach it.
    pub ping: Option<String>,
}

impl Target {
    /// Whether `query` picks this target: its instance id exactly, or part of its Name
    /// tag (any case). An empty query picks every target.
    pub fn matches(&self, query: &str) -> bool {
        let query = query.trim();
        query.is_empty()
            || self.instance_id == query
            || self
                .name
                .as_deref()
                .is_some_and(|n| n.to_lowercase().contains(&query.to_lowercase()))
    }
}

/// Which instances a profile's grants reach: its accounts, its regions and the tags an
/// instance must carry (the permission set's policy allows `ssm:StartSession` on those).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetScope {
    /// The profile's name.
    pub profile: String,
    /// The profile's accounts.
    pub accounts: Vec<AccountId>,
    /// The profile's regions (never empty: the server's region when none is configured).
    pub regions: Vec<String>,
    /// Tag key → value, every one required; empty: every instance.
    pub tags: BTreeMap<String, String>,
}

impl TargetScope {
    /// Whether grants of this profile on `target`'s account reach it.
    pub fn covers(&self, target: &Target) -> bool {
        self.accounts.contains(&target.account)
            && self.regions.contains(&target.region)
            && self.tags.iter().all(|(k, v)| target.tags.get(k) == Some(v))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn target(name: &str, env: &str, account: &str, region: &str) -> Target {
        Target {
            instance_id: format!("i-{name}"),
            name: Some(name.into()),
            account: AccountId::parse(account).unwrap(),
            region: region.into(),
            tags: BTreeMap::from([("env".into(), env.into()), ("Name".into(), name.into())]),
            ping: Some("Online".into()),
        }
    }

    #[test]
    fn a_scope_needs_the_account_the_region_and_every_tag() {
        let scope = TargetScope {
            profile: "prod-web".into(),
            accounts: vec![AccountId::parse("111111111111").unwrap()],
            regions: vec!["us-east-1".into()],
            tags: BTreeMap::from([("env".into(), "prod".into())]),
        };
        assert!(scope.covers(&target("web-1", "prod", "111111111111", "us-east-1")));
        assert!(!scope.covers(&target("db-1", "staging", "111111111111", "us-east-1")));
        assert!(!scope.covers(&target("web-2", "prod", "222222222222", "us-east-1")));
        assert!(!scope.covers(&target("web-3", "prod", "111111111111", "eu-west-1")));
        let everything = TargetScope {
            tags: BTreeMap::new(),
            ..scope
        };
        assert!(everything.covers(&target("db-1", "staging", "111111111111", "us-east-1")));
    }

    #[test]
    fn a_query_is_an_instance_id_or_part_of_the_name() {
        let t = target("web-1", "prod", "111111111111", "us-east-1");
        assert!(t.matches(""));
        assert!(t.matches("WEB"));
        assert!(t.matches("i-web-1"));
        assert!(!t.matches("i-web"));
        assert!(!t.matches("db"));
    }
}
