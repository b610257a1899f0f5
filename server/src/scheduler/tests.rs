//! The scheduler driven by a controlled clock against an in-memory IdC (a fake is fine
//! here: these are unit tests of jitgate's own logic; the integration tests in
//! tests/it run the real AWS peer). The database is a real SQLite file.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use jitgate_core::clock::{Clock, ManualClock};

use super::converge::converge;
use super::expiry::expire_due;
use crate::aws::{
    AssignmentKey, AwsError, IdentityCenter, OpKind, OpStatus, PrincipalKind, StartedOp,
};
use crate::broker::{Action, Broker, Catalog, CatalogCell, Wakers};
use crate::config::load_from_str;
use crate::domain::{Actor, Draft, IdcLookup, PrincipalId, RequestId, StateName, UserId};
use crate::store::{Db, principals, requests};

const JITSSM: &str = "arn:aws:sso:::permissionSet/ssoins-test/ps-jitssm";
const DEPLOY: &str = "arn:aws:sso:::permissionSet/ssoins-test/ps-deploy";

/// IdC in memory: operations end when first asked about; the attribute write can be
/// made to fail for everyone.
#[derive(Default)]
struct FakeIdc {
    assignments: Mutex<BTreeSet<AssignmentKey>>,
    pending: Mutex<HashMap<String, (OpKind, AssignmentKey)>>,
    attribute: Mutex<BTreeMap<String, String>>,
    refuse_attribute: Mutex<bool>,
    next_op: Mutex<u64>,
}

impl FakeIdc {
    fn start(&self, kind: OpKind, key: &AssignmentKey) -> StartedOp {
        let id = {
            let mut next = self.next_op.lock().unwrap();
            *next += 1;
            format!("op-{next}")
        };
        self.pending
            .lock()
            .unwrap()
            .insert(id.clone(), (kind, key.clone()));
        StartedOp {
            request_id: id,
            status: OpStatus::InProgress,
        }
    }

    fn has(&self, key: &AssignmentKey) -> bool {
        self.assignments.lock().unwrap().contains(key)
    }
}

impl IdentityCenter for FakeIdc {
    async fn find_user(&self, lookup: &IdcLookup) -> Result<Option<PrincipalId>, AwsError> {
        Ok(match lookup {
            IdcLookup::UserName { user_name } => Some(PrincipalId::new(format!("u-{user_name}"))),
            _ => None,
        })
    }

    async fn set_run_as(
        &self,
        principal_id: &PrincipalId,
        os_user: Option<&str>,
    ) -> Result<(), AwsError> {
        if *self.refuse_attribute.lock().unwrap() {
            return Err(AwsError::Api {
                operation: "UpdateUser",
                code: "AccessDeniedException".into(),
                message: "not authorized to perform: identitystore:UpdateUser".into(),
                transient: false,
            });
        }
        let mut attribute = self.attribute.lock().unwrap();
        match os_user {
            Some(u) => attribute.insert(principal_id.to_string(), u.to_owned()),
            None => attribute.remove(principal_id.as_str()),
        };
        Ok(())
    }

    async fn start_create(&self, key: &AssignmentKey) -> Result<StartedOp, AwsError> {
        Ok(self.start(OpKind::Create, key))
    }

    async fn start_delete(
        &self,
        key: &AssignmentKey,
        _: PrincipalKind,
    ) -> Result<Option<StartedOp>, AwsError> {
        if !self.has(key) {
            return Ok(None);
        }
        Ok(Some(self.start(OpKind::Delete, key)))
    }

    async fn operation_status(&self, _: OpKind, request_id: &str) -> Result<OpStatus, AwsError> {
        let Some((kind, key)) = self.pending.lock().unwrap().remove(request_id) else {
            return Ok(OpStatus::Succeeded);
        };
        let mut assignments = self.assignments.lock().unwrap();
        match kind {
            OpKind::Create => assignments.insert(key),
            OpKind::Delete => assignments.remove(&key),
        };
        Ok(OpStatus::Succeeded)
    }

    async fn user_name(&self, principal_id: &PrincipalId) -> Result<Option<String>, AwsError> {
        Ok(principal_id.as_str().strip_prefix("u-").map(str::to_owned))
    }

    async fn permission_set_name(&self, arn: &str) -> Result<Option<String>, AwsError> {
        Ok(self
            .permission_sets()
            .await?
            .into_iter()
            .find_map(|(name, a)| (a == arn).then_some(name)))
    }

    async fn permission_sets(&self) -> Result<HashMap<String, String>, AwsError> {
        Ok(HashMap::from([
            ("JitSsm".to_owned(), JITSSM.to_owned()),
            ("JitSsm-deploy".to_owned(), DEPLOY.to_owned()),
        ]))
    }

    async fn assigned_principals(
        &self,
        _: &str,
        _: &str,
    ) -> Result<Vec<(PrincipalKind, String)>, AwsError> {
        Ok(Vec::new())
    }
}

struct Bench {
    broker: Broker<FakeIdc>,
    idc: Arc<FakeIdc>,
    clock: ManualClock,
    _dir: tempfile::TempDir,
}

const CONFIG: &str = r#"
[database]
url = "sqlite://DB"

[auth]
admin_groups = ["admins"]

[[profiles]]
name = "prod"
accounts = ["111111111111"]
permission_set = "JitSsm"
allowed_os_users = ["app"]
max_duration = "4h"
requester_groups = ["developers"]
approver_groups = ["sre"]

[[profiles]]
name = "staging"
accounts = ["111111111111"]
permission_set = "JitSsm-{os_user}"
run_as_mode = "session-document"
allowed_os_users = ["deploy"]
max_duration = "4h"
requester_groups = ["developers"]
approver_groups = ["sre"]
"#;

async fn bench() -> Bench {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("jitgate.db");
    let text = CONFIG.replace("DB", &db_path.display().to_string());
    let config = Arc::new(
        load_from_str(
            &text,
            vec![(
                "JITGATE_AUDIT_KEY".into(),
                "scheduler-unit-tests-key-0123456789abcdef".into(),
            )],
        )
        .unwrap(),
    );
    let db = Db::connect(config.database.url.expose(), 2).await.unwrap();
    db.migrate().await.unwrap();
    let now = DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap();
    for (name, group) in [("alice", "developers"), ("bob", "sre")] {
        let user = crate::store::users::by_user_name(name, name, vec![group.into()], now);
        crate::store::users::save(&db, &user).await.unwrap();
    }
    let idc = Arc::new(FakeIdc::default());
    let (catalog, missing) = Catalog::resolve(&config, &idc.permission_sets().await.unwrap());
    assert!(missing.is_empty(), "{missing:?}");
    let clock = ManualClock::at(DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap());
    let broker = Broker::new(
        db,
        config,
        idc.clone(),
        Arc::new(CatalogCell::resolved(catalog)),
        Arc::new(Wakers::default()),
        Arc::new(clock.clone()),
    );
    Bench {
        broker,
        idc,
        clock,
        _dir: dir,
    }
}

impl Bench {
    /// The actor for `name`, a member of `group`, under the bench's rules.
    fn person(&self, name: &str, group: &str) -> Actor {
        self.broker
            .rules()
            .actor(UserId::new(name), vec![group.into()])
    }

    async fn grant(&self, profile: &str, os_user: &str, minutes: u64) -> RequestId {
        let draft = Draft {
            profile: profile.into(),
            account: "111111111111".into(),
            os_user: os_user.into(),
            duration: Duration::from_secs(minutes * 60),
            reason: "unit test".into(),
            ticket: None,
        };
        let now = self.clock.now();
        let stored = self
            .broker
            .submit(&self.person("alice", "developers"), draft, now)
            .await
            .unwrap();
        self.broker
            .act(
                &self.person("bob", "sre"),
                stored.request.id,
                Action::Approve,
                now,
            )
            .await
            .unwrap();
        stored.request.id
    }

    /// Claims alice and runs one pass, as a worker would, at the clock's time.
    async fn pass(&self) {
        let now = self.clock.now();
        let claims = principals::claim(
            self.broker.db(),
            "test#1",
            now,
            now + TimeDelta::seconds(10),
            10,
        )
        .await
        .unwrap();
        for claim in claims {
            converge(&self.broker, "test#1", &claim).await.unwrap();
        }
    }

    async fn state(&self, id: RequestId) -> StateName {
        requests::get(self.broker.db(), id)
            .await
            .unwrap()
            .unwrap()
            .request
            .state
            .name()
    }
}

fn key(arn: &str) -> AssignmentKey {
    AssignmentKey {
        principal_id: "u-alice".into(),
        account_id: "111111111111".into(),
        permission_set_arn: arn.into(),
    }
}

#[tokio::test]
async fn a_grant_runs_from_activation_and_ends_exactly_at_its_time() {
    let b = bench().await;
    let id = b.grant("prod", "app", 30).await;
    b.pass().await;
    assert_eq!(b.state(id).await, StateName::Active);
    assert!(b.idc.has(&key(JITSSM)));
    assert_eq!(
        b.idc
            .attribute
            .lock()
            .unwrap()
            .get("u-alice")
            .map(String::as_str),
        Some("app")
    );
    let stored = requests::get(b.broker.db(), id).await.unwrap().unwrap();
    assert_eq!(
        stored.request.expires_at(),
        Some(b.clock.now() + TimeDelta::minutes(30)),
        "time runs from activation, read from the one clock"
    );

    // A second before the end nothing happens; at the end the grant goes.
    b.clock
        .advance(TimeDelta::minutes(30) - TimeDelta::seconds(1));
    expire_due(&b.broker).await.unwrap();
    assert_eq!(b.state(id).await, StateName::Active);
    b.clock.advance(TimeDelta::seconds(1));
    expire_due(&b.broker).await.unwrap();
    assert_eq!(b.state(id).await, StateName::Ended);
    b.pass().await;
    assert!(!b.idc.has(&key(JITSSM)), "revoked");
    assert!(
        b.idc.attribute.lock().unwrap().is_empty(),
        "attribute cleared"
    );
    assert!(
        principals::is_converged(b.broker.db(), &"u-alice".into())
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn a_refused_attribute_fails_only_its_grant_after_its_attempts_on_the_clock() {
    let b = bench().await;
    *b.idc.refuse_attribute.lock().unwrap() = true;
    let tagged = b.grant("prod", "app", 60).await;
    let doc = b.grant("staging", "deploy", 60).await;
    b.pass().await;
    assert_eq!(
        b.state(doc).await,
        StateName::Active,
        "does not need the attribute"
    );
    assert!(b.idc.has(&key(DEPLOY)));
    assert_eq!(b.state(tagged).await, StateName::Approved);

    // Each retry waits for its back-off on the clock: passes before it change nothing.
    let attempts = i64::from(b.broker.config().scheduler.grant_attempts);
    for attempt in 2..=attempts {
        b.pass().await;
        assert_eq!(b.state(tagged).await, StateName::Approved, "retried early");
        b.clock.advance(TimeDelta::seconds(61));
        b.pass().await;
        let failures = principals::run_as(b.broker.db(), &"u-alice".into())
            .await
            .unwrap()
            .failures
            .count;
        if attempt < attempts {
            assert_eq!(failures, attempt, "one failure per back-off step");
        }
    }
    assert_eq!(b.state(tagged).await, StateName::Failed);
    assert_eq!(b.state(doc).await, StateName::Active);
    assert!(
        !b.idc.has(&key(JITSSM)),
        "nothing made for the failed grant"
    );
}
