//! Looks up the permission sets the profiles name, in the background: at start IAM
//! Identity Center may be unreachable, throttling, or missing a permission set, and none
//! of that may stop the scheduler (revocations need no catalog). Until the lookup works
//! new grants are refused as "not ready"; a missing permission set is logged at error
//! level on every attempt and fails only its profiles' new grants.

use std::time::Duration;

use tokio::sync::watch;

use super::stopping;
use crate::aws::IdentityCenter;
use crate::broker::{Broker, Catalog};

/// Pause after a lookup that left permission sets missing (an administrator may create
/// them), and between refreshes of a complete catalog (one may be renamed).
const RECHECK_MISSING: Duration = Duration::from_secs(60);
const REFRESH: Duration = Duration::from_secs(600);
/// Longest pause between attempts while IdC does not answer.
const MAX_RETRY: Duration = Duration::from_secs(30);

pub(super) async fn run<I: IdentityCenter>(broker: Broker<I>, mut stopped: watch::Receiver<bool>) {
    let mut retry = Duration::from_secs(1);
    loop {
        let pause = match broker.idc().permission_sets().await {
            Ok(by_name) => {
                retry = Duration::from_secs(1);
                let (catalog, missing) = Catalog::resolve(broker.config(), &by_name);
                for problem in &missing {
                    tracing::error!(profile = %problem.profile, permission_set = %problem.name, "{problem}; new grants of this profile are refused until it exists");
                }
                let complete = missing.is_empty();
                broker.catalog().set(catalog, missing);
                if complete { REFRESH } else { RECHECK_MISSING }
            }
            Err(e) => {
                let pause = retry;
                retry = (retry * 2).min(MAX_RETRY);
                if broker.catalog().get().is_err() {
                    tracing::warn!(error = %e, retry_in_secs = pause.as_secs(), "cannot look up permission sets in IAM Identity Center yet; new grants wait for it, revocations do not");
                } else {
                    tracing::warn!(error = %e, "refreshing the permission sets failed; keeping the last lookup");
                }
                pause
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stopping(&mut stopped) => return,
        }
    }
}
