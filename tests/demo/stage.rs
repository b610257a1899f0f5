//! The demo's world, stood up with the test kit the integration tests use
//! (tests/kit): the AWS peer (seeded with the demo's people, permission sets, accounts
//! and instances), the OpenID provider peer, the Slack peer (bob approves from Slack in
//! the walk-through) and `jitgate-server` on SQLite. Each process
//! stops when the demo does, however it ends (the kit's watchdog).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use testkit::{
    AwsPeer, OidcPeer, PeerKnobs, SLACK_APP_TOKEN, SLACK_BOT_TOKEN, ServerProcess, SlackPeer,
};

/// Where the demo keeps its database (fresh on every run): `$JITGATE_DEMO_DIR`, else
/// `demo/` in the cache dir.
pub fn demo_dir() -> Result<PathBuf> {
    match std::env::var_os("JITGATE_DEMO_DIR") {
        Some(dir) => Ok(PathBuf::from(dir)),
        None => Ok(testkit::cache_dir()?.join("demo")),
    }
}

/// Everything the demo started.
pub struct Stage {
    pub aws: AwsPeer,
    pub oidc: OidcPeer,
    pub slack: SlackPeer,
    pub server: ServerProcess,
    pub url: String,
    pub db_path: PathBuf,
    /// The seed's answer: instances by name, with their ids and addresses.
    pub seeded: Value,
}

/// 8080 unless something holds it, so the URL is easy to type; the next free one up
/// to 8180 otherwise.
fn server_port() -> Result<u16> {
    for port in 8080..=8180 {
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free port in 8080-8180 for the server")
}

fn seed_spec() -> Value {
    json!({
        "users": [
            {"user_name": "alice", "email": "alice@example.com", "display_name": "Alice Liddell"},
            {"user_name": "bob", "email": "bob@example.com", "display_name": "Bob Builder"},
            {"user_name": "carol", "email": "carol@example.com", "display_name": "Carol Danvers"},
            {"user_name": "dave", "email": "dave@example.com", "display_name": "Dave Lister"}
        ],
        "permission_sets": [{"name": "JitSsm"}, {"name": "JitSsm-deploy"}, {"name": "JitSsm-readonly"}],
        "accounts": ["111111111111", "222222222222"],
        "instances": [
            {"name": "web-1", "account": "111111111111"},
            {"name": "web-2", "account": "111111111111"},
            {"name": "db-1", "account": "111111111111", "instance_type": "t3.small"}
        ]
    })
}

fn field<'a>(seeded: &'a Value, name: &str) -> Result<&'a str> {
    seeded[name]
        .as_str()
        .with_context(|| format!("the AWS peer's seed answer has no `{name}`: {seeded}"))
}

/// A 64-hex-digit key for the audit chain, new on every run.
fn audit_key() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Stage {
    /// Starts the peers and the server; answers once the server is ready.
    pub async fn up() -> Result<Stage> {
        let dir = demo_dir()?;
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let db_path = dir.join("jitgate.db");
        // A fresh database each time, so a second demo starts from nothing (the WAL
        // files belong to the old database and must go with it).
        for suffix in ["", "-wal", "-shm"] {
            let path = PathBuf::from(format!("{}{suffix}", db_path.display()));
            if path.exists() {
                std::fs::remove_file(&path)
                    .with_context(|| format!("removing {}", path.display()))?;
            }
        }
        let port = server_port()?;
        let url = format!("http://127.0.0.1:{port}");

        say("starting the AWS peer (moto with IAM Identity Center extensions)");
        // Operations stay in progress a little longer than IdC's usual second, so the
        // walk-through shows a grant waiting for its assignment.
        let aws = AwsPeer::start(PeerKnobs {
            assignment_delay_ms: 1500,
            ..PeerKnobs::default()
        })
        .await?;
        let seeded = aws
            .seed(&seed_spec())
            .await
            .context("seeding the AWS peer")?;

        say("starting the OpenID provider peer (oidc-provider)");
        let oidc = OidcPeer::start_for(&url).await?;
        say("starting the Slack peer (Slack's Web API, signatures by slack_sdk)");
        let slack = SlackPeer::start().await?;
        slack
            .add_users(&[
                ("UALICE", "alice@example.com"),
                ("UBOB", "bob@example.com"),
                ("UCAROL", "carol@example.com"),
            ])
            .await?;
        let key = audit_key();
        let mut config = config_text(&url, &db_path, aws.url(), oidc.issuer(), &seeded, &key)?;
        config.push_str(&format!(
            "\n[slack]\n# The Slack peer started by the demo (tests/peers/slack_peer.py). Socket\n\
             # Mode, the default: jitgate opens a WebSocket to it, nothing comes in over HTTP.\n\
             app_token = \"{SLACK_APP_TOKEN}\"\nbot_token = \"{SLACK_BOT_TOKEN}\"\n\
             api_base_url = \"{}\"\n# Slack members are known by their email here; a deployment may\n\
             # rather have people link their Slack account on /settings/slack.\n\
             user_match = \"email\"\n# Requests are announced here; the message follows each one.\n\
             channel = \"#access\"\n",
            slack.api_url()
        ));
        say(&format!("starting jitgate-server on {url}"));
        // The key goes in the config (so `audit verify --config` works from a shell) and
        // in the environment, where a deployment gives it.
        let server = ServerProcess::spawn_with(&config, &[("JITGATE_AUDIT_KEY", key.as_str())])
            .await
            .context("starting jitgate-server")?;
        Ok(Stage {
            aws,
            oidc,
            slack,
            server,
            url,
            db_path,
            seeded,
        })
    }

    /// What is running and where, for the person at the terminal.
    pub fn describe(&self) -> String {
        let mut instances = Vec::new();
        if let Some(map) = self.seeded["instances"].as_object() {
            let mut names: Vec<&String> = map.keys().collect();
            names.sort();
            for name in names {
                let i = &map[name.as_str()];
                instances.push(format!(
                    "              {:<6} {}  {:<15} account {}",
                    name,
                    i["instance_id"].as_str().unwrap_or("?"),
                    i["private_ip"].as_str().unwrap_or("?"),
                    i["account"].as_str().unwrap_or("?"),
                ));
            }
        }
        format!(
            "jitgate is running at {url}\n  AWS peer    {peer}   (EC2 instances:)\n{instances}\n  \
             OIDC peer   {issuer}   (alice, bob, carol, dave; any password)\n  \
             Slack peer  {slack}   (messages in #access: {slack}/_peer/messages; every call: {slack}/_peer/calls)\n  \
             config      {config}   database {db}\n  \
             logs        {server_log}, {peer_log}, {oidc_log}",
            url = self.url,
            peer = self.aws.url(),
            instances = instances.join("\n"),
            issuer = self.oidc.issuer(),
            slack = self.slack.url(),
            config = self.server.config_path().display(),
            db = self.db_path.display(),
            server_log = self.server.log_path().display(),
            peer_log = self.aws.log_path().display(),
            oidc_log = self.oidc.log_path().display(),
        )
    }

    /// Stops the server (it finishes work in progress), then the peers.
    pub async fn down(mut self) -> Result<()> {
        say("stopping the server and the peers");
        self.server.terminate().await?;
        Ok(())
    }
}

pub fn say(text: &str) {
    println!("demo: {text}");
}

/// The demo's config: two profiles (prod-web, approved by sre; staging, approved at
/// once), short scheduler intervals so the walk-through does not wait on them.
fn config_text(
    url: &str,
    db_path: &std::path::Path,
    peer: &str,
    issuer: &str,
    seeded: &Value,
    key: &str,
) -> Result<String> {
    let port = url.rsplit(':').next().unwrap_or("8080");
    Ok(format!(
        r#"# Written by jitgate-demo (tests/demo) for `make demo`; rewritten on every run.
# The commented reference is deploy/jitgate.example.toml.

[server]
listen = "127.0.0.1:{port}"
public_url = "{url}"

[database]
url = "sqlite://{db}"

[aws]
region = "us-east-1"
# The AWS peer started by the demo (tests/peers/aws_peer.py).
endpoint_url = "{peer}"
instance_arn = "{instance_arn}"
identity_store_id = "{identity_store_id}"
run_as_attribute = "nickName"
# The AWS peer's IdC sign-in takes any start URL (jitgate ssh against the peer:
# AWS_ENDPOINT_URL={peer}).
sso_start_url = "https://demo.awsapps.com/start"

[scheduler]
# Short, so the walk-through does not wait on them.
poll_interval = "500ms"
sweep = "*/10 * * * * *"

[auth]
admin_groups = ["jitgate-admins"]

[audit]
# Signs the audit chain. A deployment gives it through JITGATE_AUDIT_KEY instead, never
# in a file next to the database; the demo makes a new one on every run.
key = "{key}"

[oidc]
# The OpenID provider peer started by the demo (tests/peers/oidc/provider.mjs): any
# password signs in alice (developers), bob (sre), carol (sre, jitgate-admins), dave.
issuer = "{issuer}"
client_id = "jitgate"
client_secret = "jitgate-secret"

[[profiles]]
name = "prod-web"
description = "Shell on production web servers"
accounts = ["111111111111"]
permission_set = "JitSsm"
run_as_mode = "principal-tag"
allowed_os_users = ["app", "readonly"]
# The walk-through watches a 45 s grant expire; people would keep the 1m default or more.
min_duration = "30s"
max_duration = "4h"
requester_groups = ["developers"]
approver_groups = ["sre"]
approvals_required = 1
auto_approve = false
approval_timeout = "1h"

[[profiles]]
name = "staging"
description = "Staging, approved automatically"
accounts = ["222222222222"]
permission_set = "JitSsm-{{os_user}}"
run_as_mode = "session-document"
allowed_os_users = ["deploy", "readonly"]
min_duration = "30s"
max_duration = "8h"
# sre too: in the walk-through carol (sre) deploys to staging.
requester_groups = ["developers", "sre"]
approver_groups = ["sre"]
auto_approve = true
"#,
        db = db_path.display(),
        instance_arn = field(seeded, "instance_arn")?,
        identity_store_id = field(seeded, "identity_store_id")?,
    ))
}
