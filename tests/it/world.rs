//! A scenario's world: the AWS peer seeded with people and permission sets, a database
//! (SQLite file or a fresh Postgres database), the `jitgate-server` process, and a broker
//! in the test process on the same database, through which the test acts as the people
//! (the way the web app will, in another process than the scheduler).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use aws_sdk_ssoadmin::config::Credentials;
use chrono::Utc;
use jitgate_server::aws::IdcClient;
use jitgate_server::broker::{Broker, Catalog, Person, Wakers};
use jitgate_server::config::load_from_str;
use jitgate_server::domain::{Draft, RequestId, StateName, UserId};
use jitgate_server::store::requests::{self, StoredRequest};
use jitgate_server::store::{Db, audit};
use serde_json::{Value, json};

use crate::harness::{
    AwsPeer, ConfigBuilder, OidcPeer, PeerKnobs, ProfileSpec, ServerProcess, run_cli,
    sqlite_url_in, start_postgres, wait_for, wait_until,
};

/// Which database a scenario runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The account every scenario grants access to.
pub const ACCOUNT: &str = "111111111111";
/// People seeded in the peer: (user name, OIDC groups).
pub const PEOPLE: &[(&str, &[&str])] = &[
    ("alice", &["developers"]),
    ("bob", &["sre"]),
    ("carol", &["sre"]),
    ("dave", &["developers"]),
    ("erin", &["developers"]),
    ("frank", &["developers"]),
    ("grace", &["developers"]),
    ("heidi", &["developers"]),
    ("ivan", &["developers"]),
    ("judy", &["developers"]),
];

/// The developers of [`PEOPLE`].
pub const DEVELOPERS: &[&str] = &[
    "alice", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
];

pub struct World {
    pub peer: AwsPeer,
    pub seed: Value,
    pub config_toml: String,
    pub db: Db,
    pub broker: Broker<IdcClient>,
    pub server: ServerProcess,
    /// The OpenID provider, for scenarios started with [`World::start_with_sign_in`].
    pub oidc: Option<OidcPeer>,
    _dir: tempfile::TempDir,
}

/// The profile most scenarios use: `prod-web` on [`ACCOUNT`], principal-tag with
/// permission set JitSsm, OS users app/readonly, developers request, one sre approves.
pub fn prod_profile() -> ProfileSpec {
    ProfileSpec::default()
}

impl World {
    /// Starts everything; `customize` adjusts the server config.
    pub async fn start(
        backend: Backend,
        knobs: PeerKnobs,
        customize: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
    ) -> Result<World> {
        Self::start_inner(backend, knobs, false, customize).await
    }

    /// [`World::start`] plus the OpenID provider, with the server's `[oidc]` pointing at it.
    pub async fn start_with_sign_in(
        backend: Backend,
        customize: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
    ) -> Result<World> {
        Self::start_inner(backend, PeerKnobs::default(), true, customize).await
    }

    async fn start_inner(
        backend: Backend,
        knobs: PeerKnobs,
        with_oidc: bool,
        customize: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
    ) -> Result<World> {
        let dir = tempfile::tempdir()?;
        let peer = AwsPeer::start(knobs).await?;
        let users: Vec<Value> = PEOPLE
            .iter()
            .map(|(name, _)| json!({"user_name": name, "email": format!("{name}@example.com"), "display_name": format!("{name} Example")}))
            .collect();
        let seed = peer
            .seed(&json!({
                "users": users,
                "permission_sets": [{"name": "JitSsm"}, {"name": "JitSsm-deploy"}, {"name": "JitSsm-readonly"}],
                "accounts": [ACCOUNT],
            }))
            .await?;
        let db_url = match backend {
            Backend::Sqlite => sqlite_url_in(dir.path()),
            Backend::Postgres => start_postgres().await?.fresh_database().await?,
        };
        let mut builder = customize(ConfigBuilder::from_seed(&db_url, peer.url(), &seed)?);
        let public_url = format!("http://127.0.0.1:{}", builder.listen_port());
        let oidc = if with_oidc {
            let oidc = OidcPeer::start(&[format!("{public_url}/auth/callback")]).await?;
            builder = builder.raw(&format!(
                "[server]\npublic_url = \"{public_url}\"\n\n[oidc]\nissuer = \"{}\"\nclient_id = \"jitgate\"\nclient_secret = \"jitgate-secret\"\n",
                oidc.issuer()
            ));
            Some(oidc)
        } else {
            None
        };
        let config_toml = builder.render();
        let config = Arc::new(load_from_str(&config_toml, Vec::new()).context("test config")?);
        let server = ServerProcess::spawn(&config_toml).await?;

        let db = Db::connect(&db_url, 5).await?;
        let idc = IdcClient::connect_with(
            &config.aws,
            Some(Credentials::new("test", "test", None, None, "tests")),
        )
        .await?;
        let catalog = Catalog::resolve(&config, &idc.permission_sets_by_name().await?)
            .map_err(|missing| anyhow::anyhow!("{missing:?}"))?;
        let broker = Broker::new(
            db.clone(),
            config.clone(),
            Arc::new(idc),
            Arc::new(catalog),
            Arc::new(Wakers::default()),
        );
        Ok(World {
            peer,
            seed,
            config_toml,
            db,
            broker,
            server,
            oidc,
            _dir: dir,
        })
    }

    /// A seeded person.
    pub fn person(&self, name: &str) -> Person {
        let groups = PEOPLE
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, g)| g.iter().map(|s| s.to_string()).collect())
            .unwrap_or_default();
        Person {
            id: UserId::new(name),
            user_name: name.into(),
            email: Some(format!("{name}@example.com")),
            groups,
        }
    }

    /// The identity-store user id of a seeded person.
    pub fn user_id(&self, name: &str) -> Result<String> {
        self.seed["users"][name]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("{name} was not seeded"))
    }

    /// The ARN of a seeded permission set.
    pub fn permission_set(&self, name: &str) -> Result<String> {
        self.seed["permission_sets"][name]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("permission set {name} was not seeded"))
    }

    /// `who` asks for `profile` on [`ACCOUNT`] as `os_user` for `duration`.
    pub async fn submit(
        &self,
        who: &str,
        profile: &str,
        os_user: &str,
        duration: Duration,
    ) -> Result<RequestId> {
        self.submit_on(who, profile, ACCOUNT, os_user, duration)
            .await
    }

    /// `who` asks for `profile` on `account` as `os_user` for `duration`.
    pub async fn submit_on(
        &self,
        who: &str,
        profile: &str,
        account: &str,
        os_user: &str,
        duration: Duration,
    ) -> Result<RequestId> {
        let draft = Draft {
            profile: profile.into(),
            account: account.into(),
            os_user: os_user.into(),
            duration,
            reason: "investigating a production incident".into(),
            ticket: Some("INC-1".into()),
        };
        let stored = self
            .broker
            .submit(&self.person(who), draft, Utc::now())
            .await?;
        Ok(stored.request.id)
    }

    pub async fn approve_as(&self, who: &str, id: RequestId) -> Result<StoredRequest> {
        Ok(self
            .broker
            .approve(&self.person(who), id, Utc::now())
            .await?)
    }

    pub async fn request(&self, id: RequestId) -> Result<StoredRequest> {
        requests::get(&self.db, id)
            .await?
            .with_context(|| format!("request {id} not found"))
    }

    /// Waits until the request is in `state`.
    pub async fn wait_state(
        &self,
        id: RequestId,
        state: StateName,
        timeout: Duration,
    ) -> Result<StoredRequest> {
        wait_for(
            &format!("request {id} to be {state}"),
            timeout,
            Duration::from_millis(100),
            || async {
                let r = self.request(id).await?;
                Ok((r.request.state.name() == state).then_some(r))
            },
        )
        .await
        .with_context(|| format!("server log:\n{}", self.server.log()))
    }

    /// Waits until AWS owes nothing more for this ended request.
    pub async fn wait_settled(&self, id: RequestId, timeout: Duration) -> Result<StoredRequest> {
        wait_for(
            &format!("request {id} to be settled"),
            timeout,
            Duration::from_millis(100),
            || async {
                let r = self.request(id).await?;
                Ok(r.settled_at.is_some().then_some(r))
            },
        )
        .await
        .with_context(|| format!("server log:\n{}", self.server.log()))
    }

    /// Whether the peer holds `who`'s assignment of `permission_set` on [`ACCOUNT`].
    pub async fn has_assignment(&self, who: &str, permission_set: &str) -> Result<bool> {
        let principal = self.user_id(who)?;
        let arn = self.permission_set(permission_set)?;
        Ok(self.peer.assignments().await?.iter().any(|a| {
            a.principal_id == principal && a.permission_set_arn == arn && a.account_id == ACCOUNT
        }))
    }

    pub async fn wait_assignment(
        &self,
        who: &str,
        permission_set: &str,
        present: bool,
        timeout: Duration,
    ) -> Result<()> {
        let what = format!(
            "{who}'s {permission_set} assignment to be {}",
            if present { "present" } else { "gone" }
        );
        wait_until(&what, timeout, Duration::from_millis(100), || async {
            Ok(self.has_assignment(who, permission_set).await? == present)
        })
        .await
        .with_context(|| format!("server log:\n{}", self.server.log()))
    }

    /// The actions of the audit events about one request, in order.
    pub async fn audit_actions(&self, id: RequestId) -> Result<Vec<String>> {
        Ok(audit::for_request(&self.db, &id.to_string())
            .await?
            .into_iter()
            .map(|e| e.action)
            .collect())
    }

    /// The value of a seeded person's identity-store attribute, read from the peer.
    pub async fn user_attribute(&self, who: &str, attribute: &str) -> Result<Option<String>> {
        let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(self.peer.url())
            .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
            .load()
            .await;
        let client = aws_sdk_identitystore::Client::new(&shared);
        let user = client
            .describe_user()
            .identity_store_id(self.seed["identity_store_id"].as_str().unwrap_or_default())
            .user_id(self.user_id(who)?)
            .send()
            .await
            .context("DescribeUser")?;
        Ok(match attribute {
            "nickName" => user.nick_name().map(str::to_owned),
            other => bail!("attribute {other} not read by tests"),
        })
    }

    /// Waits until a seeded person's OS-user attribute is cleared. The controller
    /// clears it after the deletes of the same pass, so just after a request settles
    /// it may still be set for a moment.
    pub async fn wait_run_as_cleared(&self, who: &str, timeout: Duration) -> Result<()> {
        wait_until(
            &format!("{who}'s OS-user attribute to be cleared"),
            timeout,
            Duration::from_millis(100),
            || async { Ok(self.user_attribute(who, "nickName").await?.is_none()) },
        )
        .await
    }

    /// Runs `jitgate-server audit verify` against this world's database.
    pub async fn audit_verify(&self) -> Result<(bool, String)> {
        let out = run_cli(&["audit", "verify"], &self.config_toml).await?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok((out.status.success(), text))
    }
}
