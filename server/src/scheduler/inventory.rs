//! Looking up the instances in the profiles' scope (the target inventory): at start and
//! every `[aws] inventory_refresh`, in every account and region a profile names, through
//! the member role. A region that cannot be looked up keeps what was found there last
//! time and is tried again sooner; the others are not held up.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::stopping;
use crate::aws::{IdentityCenter, MemberAccounts};
use crate::broker::Broker;
use crate::domain::{AccountId, Target};

/// How soon a lookup that failed somewhere is tried again.
const RETRY: Duration = Duration::from_secs(30);

pub(super) async fn run<I: IdentityCenter>(
    broker: Broker<I>,
    member: Arc<dyn MemberAccounts>,
    mut stopped: watch::Receiver<bool>,
) {
    let places = places(&broker);
    if places.is_empty() {
        return;
    }
    let mut last: HashMap<(AccountId, String), Vec<Target>> = HashMap::new();
    loop {
        let mut complete = true;
        for (account, region) in &places {
            // No tag filter: profiles on the same account and region may scope different
            // tags; the targets use case applies each profile's own.
            match member
                .instances(account.as_str(), region, &BTreeMap::new())
                .await
            {
                Ok(found) => {
                    let targets = found
                        .into_iter()
                        .map(|i| Target {
                            name: i.tags.get("Name").cloned(),
                            instance_id: i.instance_id,
                            account: account.clone(),
                            region: region.clone(),
                            tags: i.tags,
                            ping: i.ping,
                        })
                        .collect();
                    last.insert((account.clone(), region.clone()), targets);
                }
                Err(e) => {
                    complete = false;
                    tracing::warn!(account = %account, region, error = %e, "could not look up the instances; keeping the last list");
                }
            }
        }
        let mut all: Vec<Target> = last.values().flatten().cloned().collect();
        all.sort_by(|a, b| (&a.name, &a.instance_id).cmp(&(&b.name, &b.instance_id)));
        tracing::debug!(targets = all.len(), complete, "instances looked up");
        broker.inventory().set(all, broker.now());
        let wait = if complete {
            broker.config().aws.inventory_refresh.get()
        } else {
            RETRY.min(broker.config().aws.inventory_refresh.get())
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stopping(&mut stopped) => return,
        }
    }
}

/// Every (account, region) some profile names.
fn places<I: IdentityCenter>(broker: &Broker<I>) -> BTreeSet<(AccountId, String)> {
    let config = broker.config();
    let mut places = BTreeSet::new();
    for profile in &config.profiles {
        for region in profile.regions_or(&config.aws.region) {
            for account in &profile.accounts {
                places.insert((account.clone(), region.to_owned()));
            }
        }
    }
    places
}
