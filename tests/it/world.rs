//! A scenario's world: the AWS peer seeded with people and permission sets, the OpenID
//! provider with the same people, a database (SQLite file or a fresh Postgres database)
//! and the `jitgate-server` process. Tests act as the people the way users do: signed
//! in through the provider, over the server's JSON API (each person's token made from
//! their web session); they read the database and the AWS peer to check the outcome.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use aws_sdk_ssoadmin::config::Credentials;
use jitgate_proto::RequestView;
use jitgate_server::audit::AuditEvent;
use jitgate_server::domain::RequestRecord;
use jitgate_server::domain::{RequestId, StateName};
use jitgate_server::store::requests;
use jitgate_server::store::{Db, audit, principals};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{
    AwsPeer, ConfigBuilder, OidcPeer, PeerKnobs, ProfileSpec, ServerProcess, browser, run_cli,
    sign_in, sqlite_url_in, start_postgres, wait_for, wait_until,
};

/// Runs each scenario `async fn name(Backend) -> Result<()>` as two tests, on SQLite and
/// on Postgres: `name::sqlite` and `name::postgres`.
macro_rules! on_both_backends {
    ($($scenario:ident),+ $(,)?) => {$(
        mod $scenario {
            #[tokio::test]
            async fn sqlite() -> anyhow::Result<()> {
                super::$scenario($crate::world::Backend::Sqlite).await
            }

            #[tokio::test]
            async fn postgres() -> anyhow::Result<()> {
                super::$scenario($crate::world::Backend::Postgres).await
            }
        }
    )+};
}
pub(crate) use on_both_backends;

/// Which database a scenario runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The account every scenario grants access to.
pub const ACCOUNT: &str = "111111111111";
/// People, in the AWS peer (IdC users) and the OpenID provider: (user name, OIDC groups).
/// The first five are the provider's own accounts (tests/peers/oidc/provider.mjs).
pub const PEOPLE: &[(&str, &[&str])] = &[
    ("alice", &["developers"]),
    ("bob", &["sre"]),
    ("carol", &["sre", "jitgate-admins"]),
    ("dave", &["developers"]),
    ("erin", &["contractors"]),
    ("frank", &["developers"]),
    ("grace", &["developers"]),
    ("heidi", &["developers"]),
    ("ivan", &["developers"]),
    ("judy", &["developers"]),
    // An administrator in no approver group.
    ("olga", &["jitgate-admins"]),
];

/// A person the OpenID provider knows (a developer) who has no IAM Identity Center user.
pub const NO_IDC_USER: &str = "zed";

/// The developers of [`PEOPLE`].
pub const DEVELOPERS: &[&str] = &["alice", "dave", "frank", "grace", "heidi", "ivan", "judy"];

/// The promise of a revocation: the assignment is gone from AWS within this long of the
/// revoke answer or of `expires_at` (with IdC taking about a second per operation).
pub const REVOKE_PROMISE: Duration = Duration::from_secs(2);

/// The issuer of the IdC users' external ids (`idc_match = "external_id"`).
pub const SCIM_ISSUER: &str = "https://scim.jitgate.test";

/// An API call refused: the answer's status and its `{"error": {...}}` body.
#[derive(Debug, Clone)]
pub struct Refused {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub field: Option<String>,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

impl std::error::Error for Refused {}

/// The refusal inside an error from one of [`World`]'s act methods, if that is what it is.
pub fn refusal(e: &anyhow::Error) -> Option<&Refused> {
    e.downcast_ref::<Refused>()
}

pub struct World {
    pub peer: AwsPeer,
    pub seed: Value,
    pub config_toml: String,
    pub db: Db,
    /// The database's URL, for tests that look at rows the store does not read back.
    pub db_url: String,
    pub server: ServerProcess,
    /// The OpenID provider the people sign in with.
    pub oidc: OidcPeer,
    http: reqwest::Client,
    tokens: tokio::sync::Mutex<HashMap<String, String>>,
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
        Self::start_inner(backend, knobs, None, customize).await
    }

    async fn start_inner(
        backend: Backend,
        knobs: PeerKnobs,
        extra_seed: Option<Value>,
        customize: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
    ) -> Result<World> {
        let dir = tempfile::tempdir()?;
        let peer = AwsPeer::start(knobs).await?;
        let users: Vec<Value> = PEOPLE
            .iter()
            .map(|(name, _)| {
                json!({
                    "user_name": name,
                    "email": format!("{name}@example.com"),
                    "display_name": format!("{name} Example"),
                    // As SCIM provisioning from the OIDC peer would record them.
                    "external_ids": [{"issuer": SCIM_ISSUER, "id": format!("sub-{name}")}],
                })
            })
            .collect();
        let seed = peer
            .seed(&json!({
                "users": users,
                "groups": ["ops"],
                "permission_sets": [{"name": "JitSsm"}, {"name": "JitSsm-deploy"}, {"name": "JitSsm-readonly"}],
                "accounts": [ACCOUNT],
            }))
            .await?;
        if let Some(extra) = &extra_seed {
            peer.seed(extra).await?;
        }
        let db_url = match backend {
            Backend::Sqlite => sqlite_url_in(dir.path()),
            Backend::Postgres => start_postgres().await?.fresh_database().await?,
        };
        let mut builder = customize(ConfigBuilder::from_seed(&db_url, peer.url(), &seed)?);
        let public_url = format!("http://127.0.0.1:{}", builder.listen_port());
        let accounts = dir.path().join("oidc-accounts.json");
        let mut extra: serde_json::Map<String, Value> = PEOPLE
            .iter()
            .skip(5)
            .map(|(name, groups)| ((*name).to_owned(), json!({ "groups": groups })))
            .collect();
        extra.insert(NO_IDC_USER.into(), json!({ "groups": ["developers"] }));
        std::fs::write(&accounts, Value::Object(extra).to_string())?;
        let oidc =
            OidcPeer::start_with_accounts(&[format!("{public_url}/auth/callback")], &accounts)
                .await?;
        builder = builder.raw(&format!(
            "[server]\npublic_url = \"{public_url}\"\n\n[oidc]\nissuer = \"{}\"\nclient_id = \"jitgate\"\nclient_secret = \"jitgate-secret\"\n",
            oidc.issuer()
        ));
        let config_toml = builder.render();
        let server = ServerProcess::spawn(&config_toml).await?;
        let db = crate::harness::keyed(Db::connect(&db_url, 5).await?);
        Ok(World {
            peer,
            seed,
            config_toml,
            db,
            db_url,
            server,
            oidc,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
            tokens: tokio::sync::Mutex::default(),
            _dir: dir,
        })
    }

    /// [`World::start`], with `seed` (instances, documents: see `AwsPeer::seed`) added to
    /// the AWS peer before the server starts, so its first inventory lookup finds them.
    pub async fn start_seeded(
        backend: Backend,
        seed: Value,
        customize: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
    ) -> Result<World> {
        Self::start_inner(backend, PeerKnobs::default(), Some(seed), customize).await
    }

    /// [`World::start`] with the AWS peer's default behaviour.
    pub async fn start_with_sign_in(
        backend: Backend,
        customize: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
    ) -> Result<World> {
        Self::start(backend, PeerKnobs::default(), customize).await
    }

    /// Kills the server (SIGKILL) and starts it again with the same config, waiting until
    /// it is ready; returns when it was started.
    pub async fn restart(&mut self) -> Result<tokio::time::Instant> {
        self.server.kill9().await?;
        let started = tokio::time::Instant::now();
        self.server = ServerProcess::spawn(&self.config_toml).await?;
        Ok(started)
    }

    /// The identity-store id of a seeded group.
    pub fn group_id(&self, name: &str) -> Result<String> {
        self.seed["groups"][name]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("group {name} was not seeded"))
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

    /// `login` signed in through the provider in a browser of their own, with their
    /// session's CSRF token.
    pub async fn session_of(&self, login: &str) -> Result<(reqwest::Client, String)> {
        let client = browser()?;
        let outcome = sign_in(&client, &self.server.listen_url(), login).await?;
        if outcome.status != StatusCode::SEE_OTHER {
            bail!(
                "{login} could not sign in: {} {}",
                outcome.status,
                outcome.body
            );
        }
        let home = client
            .get(format!("{}/", self.server.listen_url()))
            .send()
            .await?
            .text()
            .await?;
        let csrf = home
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .context("no CSRF token on the home page")?
            .to_owned();
        Ok((client, csrf))
    }

    /// `login`'s API token, made once from their web session.
    pub async fn token_for(&self, login: &str) -> Result<String> {
        let mut tokens = self.tokens.lock().await;
        if let Some(token) = tokens.get(login) {
            return Ok(token.clone());
        }
        let (client, csrf) = self.session_of(login).await?;
        let created: Value = client
            .post(format!("{}/api/v1/tokens", self.server.listen_url()))
            .header("x-csrf-token", csrf)
            .json(&json!({ "name": "tests" }))
            .send()
            .await?
            .error_for_status()
            .with_context(|| format!("making {login}'s API token"))?
            .json()
            .await?;
        let token = created["token"]
            .as_str()
            .context("no token in the answer")?
            .to_owned();
        tokens.insert(login.to_owned(), token.clone());
        Ok(token)
    }

    /// `who` calls the API: `POST` with `body` (or `GET` without). A refusal is an error
    /// holding [`Refused`].
    pub async fn api(&self, who: &str, path: &str, body: Option<Value>) -> Result<Value> {
        let token = self.token_for(who).await?;
        let url = format!("{}/api/v1{path}", self.server.listen_url());
        let request = match body {
            Some(body) => self.http.post(&url).json(&body),
            None => self.http.get(&url),
        };
        let response = request
            .bearer_auth(token)
            .send()
            .await
            .with_context(|| format!("{who}: {path}"))?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let error = &answer["error"];
            return Err(Refused {
                status,
                code: error["code"].as_str().unwrap_or_default().to_owned(),
                message: error["message"].as_str().unwrap_or_default().to_owned(),
                field: error["field"].as_str().map(str::to_owned),
            }
            .into());
        }
        Ok(answer)
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
        let body = json!({
            "profile": profile,
            "account_id": account,
            "os_user": os_user,
            "duration": format!("{}s", duration.as_secs()),
            "reason": "investigating a production incident",
            "ticket": "INC-1",
        });
        let view: RequestView =
            serde_json::from_value(self.api(who, "/requests", Some(body)).await?)?;
        Ok(view.id.parse()?)
    }

    /// `who` acts on request `id`: `approve`, `deny`, `cancel`, `revoke` or `extend`.
    pub async fn act(
        &self,
        who: &str,
        id: RequestId,
        action: &str,
        body: Value,
    ) -> Result<RequestView> {
        let answer = self
            .api(who, &format!("/requests/{id}/{action}"), Some(body))
            .await?;
        Ok(serde_json::from_value(answer)?)
    }

    pub async fn approve_as(&self, who: &str, id: RequestId) -> Result<RequestView> {
        self.act(who, id, "approve", json!({})).await
    }

    /// `who` ends a grant early.
    pub async fn revoke_as(&self, who: &str, id: RequestId) -> Result<RequestView> {
        self.act(who, id, "revoke", json!({})).await
    }

    /// `who` withdraws a request.
    pub async fn cancel_as(&self, who: &str, id: RequestId) -> Result<RequestView> {
        self.act(who, id, "cancel", json!({})).await
    }

    /// `who` refuses a request.
    pub async fn deny_as(&self, who: &str, id: RequestId, comment: &str) -> Result<RequestView> {
        self.act(who, id, "deny", json!({ "comment": comment }))
            .await
    }

    /// `who` asks for `extra` time on their active grant.
    pub async fn extend_as(
        &self,
        who: &str,
        id: RequestId,
        extra: Duration,
    ) -> Result<RequestView> {
        self.act(
            who,
            id,
            "extend",
            json!({ "duration": format!("{}s", extra.as_secs()), "reason": "the fix needs longer" }),
        )
        .await
    }

    /// Waits until nothing is pending for `who` in AWS.
    pub async fn wait_converged(&self, who: &str, timeout: Duration) -> Result<()> {
        let principal = self.user_id(who)?;
        wait_until(
            &format!("{who} to be converged"),
            timeout,
            Duration::from_millis(50),
            || async { Ok(principals::is_converged(&self.db, &principal.clone().into()).await?) },
        )
        .await
        .with_context(|| format!("server log:\n{}", self.server.log()))
    }

    /// Who holds the lease on `who`'s convergence, if anyone.
    pub async fn lease_owner(&self, who: &str) -> Result<Option<String>> {
        Ok(principals::lease_owner(&self.db, &self.user_id(who)?.into()).await?)
    }

    pub async fn request(&self, id: RequestId) -> Result<RequestRecord> {
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
    ) -> Result<RequestRecord> {
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
    pub async fn wait_settled(&self, id: RequestId, timeout: Duration) -> Result<RequestRecord> {
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

    /// Waits (generously) until `who`'s assignment of `permission_set` is gone, then checks
    /// against the AWS peer's own record of the delete that it went within `bound` of
    /// `since` (the revoke's answer, or `expires_at`): the promise, measured by AWS.
    pub async fn assert_gone_within(
        &self,
        who: &str,
        permission_set: &str,
        since: std::time::SystemTime,
        bound: Duration,
    ) -> Result<()> {
        self.wait_assignment(who, permission_set, false, bound + Duration::from_secs(60))
            .await?;
        let principal = self.user_id(who)?;
        let arn = self.permission_set(permission_set)?;
        let gone_at = self
            .peer
            .history()
            .await?
            .into_iter()
            .filter(|op| {
                op.op == crate::harness::OpKind::Delete
                    && op.status == crate::harness::OpStatus::Succeeded
                    && op.principal_id == principal
                    && op.permission_set_arn == arn
            })
            .filter_map(|op| op.completed_at)
            .fold(None, |last: Option<f64>, at| {
                Some(last.map_or(at, |l| l.max(at)))
            })
            .context("the peer recorded no delete")?;
        let since = since.duration_since(std::time::UNIX_EPOCH)?.as_secs_f64();
        let took = gone_at - since;
        anyhow::ensure!(
            took <= bound.as_secs_f64(),
            "{who}'s {permission_set} assignment went {took:.2}s after the moment it was owed \
             (promise: {bound:?}); server log:\n{}",
            self.server.log()
        );
        Ok(())
    }

    /// Assigns `permission_set` on [`ACCOUNT`] to a principal (`USER` or `GROUP`) straight
    /// through the IdC API, as someone would behind jitgate's back, and waits until the
    /// operation has taken effect.
    pub async fn assign_by_hand(
        &self,
        principal_type: &str,
        principal_id: &str,
        permission_set: &str,
    ) -> Result<()> {
        let client = aws_sdk_ssoadmin::Client::new(&self.peer_sdk_config().await);
        let out = client
            .create_account_assignment()
            .instance_arn(self.seed["instance_arn"].as_str().unwrap_or_default())
            .target_id(ACCOUNT)
            .target_type(aws_sdk_ssoadmin::types::TargetType::AwsAccount)
            .permission_set_arn(self.permission_set(permission_set)?)
            .principal_type(principal_type.into())
            .principal_id(principal_id)
            .send()
            .await
            .context("CreateAccountAssignment")?;
        let request_id = out
            .account_assignment_creation_status()
            .and_then(|s| s.request_id())
            .context("no request id")?
            .to_owned();
        wait_until(
            "the hand-made assignment to take effect",
            Duration::from_secs(30),
            Duration::from_millis(100),
            || async {
                let status = client
                    .describe_account_assignment_creation_status()
                    .instance_arn(self.seed["instance_arn"].as_str().unwrap_or_default())
                    .account_assignment_creation_request_id(&request_id)
                    .send()
                    .await?;
                Ok(status
                    .account_assignment_creation_status()
                    .and_then(|s| s.status())
                    == Some(&aws_sdk_ssoadmin::types::StatusValues::Succeeded))
            },
        )
        .await
    }

    /// SDK settings that reach the AWS peer.
    pub async fn peer_sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(self.peer.url())
            .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
            .load()
            .await
    }

    /// The actions of the audit events about one request, in order.
    pub async fn audit_actions(&self, id: RequestId) -> Result<Vec<String>> {
        Ok(audit::for_request(&self.db, &id.to_string())
            .await?
            .into_iter()
            .map(|e| e.action.to_string())
            .collect())
    }

    /// Every audit event with this action, in order.
    pub async fn audit_events(&self, action: &str) -> Result<Vec<AuditEvent>> {
        Ok(audit::page_since(&self.db, i64::MIN, 0, 100_000)
            .await?
            .into_iter()
            .filter(|e| e.action == action)
            .collect())
    }

    /// Whether `client` (a browser's cookie jar) is signed in: the home page says so.
    pub async fn is_signed_in(&self, client: &reqwest::Client) -> Result<bool> {
        let home = client
            .get(format!("{}/", self.server.listen_url()))
            .send()
            .await?
            .text()
            .await?;
        Ok(home.contains("Signed in as"))
    }

    /// The value of a seeded person's identity-store attribute, read from the peer.
    pub async fn user_attribute(&self, who: &str, attribute: &str) -> Result<Option<String>> {
        let client = aws_sdk_identitystore::Client::new(&self.peer_sdk_config().await);
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
