//! The `jitgate` CLI binary against the real server, the OpenID provider peer and the AWS
//! peer: the browser login with PKCE (the browser's part played by a signed-in HTTP
//! client), then requests, approvals, refusals and `--wait` as people run them.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use reqwest::StatusCode;
use reqwest::header::LOCATION;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::harness::cli_binary;
use crate::world::{Backend, World, prod_profile};

/// One person's `jitgate`, with its own config directory.
pub(crate) struct Person {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) server: String,
}

impl Person {
    pub(crate) fn command(&self, args: &[&str]) -> Result<Command> {
        let mut command = Command::new(cli_binary()?);
        command
            .args(args)
            .env("JITGATE_CONFIG_DIR", self.dir.path())
            .env_remove("JITGATE_SERVER")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        Ok(command)
    }

    /// Runs `jitgate ARGS` to the end.
    pub(crate) async fn run(&self, args: &[&str]) -> Result<Output> {
        Ok(self.command(args)?.output().await?)
    }

    /// Runs `jitgate --json ARGS`, which must succeed, and parses what it printed.
    async fn json(&self, args: &[&str]) -> Result<Value> {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.run(&all).await?;
        if !out.status.success() {
            bail!(
                "jitgate {args:?} failed ({}): {}",
                out.status,
                text(&out.stderr)
            );
        }
        serde_json::from_slice(&out.stdout)
            .with_context(|| format!("jitgate {args:?} printed no JSON: {}", text(&out.stdout)))
    }
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn form_value(page: &str, name: &str) -> Option<String> {
    page.split(&format!("name=\"{name}\" value=\""))
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .map(str::to_owned)
}

/// `jitgate login --no-browser` as `login`: the CLI prints the URL, the person's browser
/// (their signed-in session) confirms, the browser lands on the CLI's loopback port.
pub(crate) async fn logged_in(w: &World, login: &str) -> Result<Person> {
    let person = Person {
        dir: tempfile::tempdir()?,
        server: w.server.listen_url(),
    };
    let mut cli = person
        .command(&["--server", &person.server, "login", "--no-browser"])?
        // Open and silent: the CLI also accepts a pasted code.
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = cli.stderr.take().context("stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    let url = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(url) = line
                .trim()
                .strip_prefix("http")
                .filter(|_| line.contains("/cli/login?"))
            {
                return Ok(format!("http{url}"));
            }
        }
        bail!("the CLI printed no login URL")
    })
    .await??;

    let (browser, _) = w.session_of(login).await?;
    let page = browser.get(&url).send().await?;
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await?;
    let form: Vec<(&str, String)> = ["csrf", "port", "state", "code_challenge", "name"]
        .into_iter()
        .map(|f| {
            Ok((
                f,
                form_value(&page, f).with_context(|| format!("no {f} field"))?,
            ))
        })
        .collect::<Result<_>>()?;
    let confirmed = browser
        .post(format!("{}/cli/login", person.server))
        .form(&form)
        .send()
        .await?;
    assert_eq!(confirmed.status(), StatusCode::SEE_OTHER);
    let loopback = confirmed
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .context("no redirect to the CLI")?
        .to_owned();
    // The browser follows the redirect to the CLI's listener.
    let landed = reqwest::get(&loopback).await?;
    assert_eq!(landed.status(), StatusCode::OK);
    assert!(landed.text().await?.contains("Signed in"));

    let status = tokio::time::timeout(Duration::from_secs(20), cli.wait()).await??;
    let mut out = String::new();
    if let Some(mut stdout) = cli.stdout.take() {
        tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut out).await?;
    }
    assert!(status.success(), "login failed: {out}");
    assert!(out.contains(&format!("as {login}")), "{out}");
    Ok(person)
}

#[cfg(unix)]
fn mode_of(path: &Path) -> Result<u32> {
    use std::os::unix::fs::PermissionsExt;
    Ok(std::fs::metadata(path)?.permissions().mode() & 0o777)
}

#[tokio::test]
async fn the_cli_logs_in_requests_and_approves_with_the_same_rules() -> Result<()> {
    let w = World::start_with_sign_in(Backend::Sqlite, |c| c.profile(prod_profile())).await?;
    let alice = logged_in(&w, "alice").await?;
    let bob = logged_in(&w, "bob").await?;

    // The token is kept for its owner only, and nowhere in the config.
    let credentials = alice.dir.path().join("credentials.json");
    assert_eq!(mode_of(&credentials)?, 0o600);
    let config = std::fs::read_to_string(alice.dir.path().join("config.toml"))?;
    assert!(
        config.contains(&alice.server) && !config.contains("jgt_"),
        "{config}"
    );

    let profiles = alice.json(&["profiles"]).await?;
    assert_eq!(profiles[0]["name"], "prod-web");
    assert_eq!(profiles[0]["may_request"], true);

    // One account in the profile: --account is not needed.
    let created = alice
        .json(&[
            "request",
            "prod-web",
            "--as",
            "app",
            "--for",
            "1h",
            "--reason",
            "deploy the fix",
        ])
        .await?;
    assert_eq!(created["state"], "pending");
    let id = created["id"].as_str().context("id")?.to_owned();

    // The same rules as the web: no self-approval, with the server's reason and exit 4.
    let own = alice.run(&["approve", &id]).await?;
    assert_eq!(own.status.code(), Some(4), "{}", text(&own.stderr));
    assert!(
        text(&own.stderr).contains("approve"),
        "{}",
        text(&own.stderr)
    );
    // Bad input is refused with what to fix.
    let bad = alice
        .run(&[
            "request", "prod-web", "--as", "root", "--for", "1h", "--reason", "x",
        ])
        .await?;
    assert_eq!(bad.status.code(), Some(4));
    assert!(text(&bad.stderr).contains("root"), "{}", text(&bad.stderr));

    let waiting = bob.json(&["status"]).await?;
    assert_eq!(waiting["to_approve"][0]["id"], id.as_str());
    let approved = bob.json(&["approve", &id]).await?;
    assert!(matches!(
        approved["state"].as_str(),
        Some("approved" | "active")
    ));
    w.wait_assignment("alice", "JitSsm", true, Duration::from_secs(10))
        .await?;

    let status = alice.json(&["status"]).await?;
    assert_eq!(status["grants"][0]["id"], id.as_str());
    let human = alice.run(&["status"]).await?;
    assert!(
        text(&human.stdout).contains("left)"),
        "{}",
        text(&human.stdout)
    );

    let revoked = alice.json(&["revoke", &id, "--reason", "done"]).await?;
    assert_eq!(revoked["state"], "ended");

    // Logged out, the token is revoked on the server too.
    let token = std::fs::read_to_string(&credentials)?;
    let token: Value = serde_json::from_str(&token)?;
    let out = alice.run(&["logout"]).await?;
    assert!(out.status.success());
    let answer = reqwest::Client::new()
        .get(format!("{}/api/v1/me", alice.server))
        .bearer_auth(token["token"].as_str().context("token")?)
        .send()
        .await?;
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    let after = alice.run(&["status"]).await?;
    assert_eq!(after.status.code(), Some(3));
    assert!(
        text(&after.stderr).contains("jitgate login"),
        "{}",
        text(&after.stderr)
    );
    Ok(())
}

#[tokio::test]
async fn request_wait_ends_when_the_grant_is_active_or_denied() -> Result<()> {
    let w = World::start_with_sign_in(Backend::Sqlite, |c| c.profile(prod_profile())).await?;
    let alice = logged_in(&w, "alice").await?;
    let bob = logged_in(&w, "bob").await?;
    let args = [
        "--json", "request", "prod-web", "--as", "app", "--for", "1h", "--reason", "x", "--wait",
    ];

    for (decision, exit) in [("approve", 0), ("deny", 5)] {
        let waiting = alice
            .command(&args)?
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        // Bob decides once it is in his queue.
        let id = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let queue = bob.json(&["status"]).await?;
                if let Some(id) = queue["to_approve"][0]["id"].as_str() {
                    return anyhow::Ok(id.to_owned());
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
        .await??;
        let mut decide = vec![decision, id.as_str()];
        if decision == "deny" {
            decide.extend(["--reason", "not during the freeze"]);
        }
        bob.json(&decide).await?;
        let out =
            tokio::time::timeout(Duration::from_secs(30), waiting.wait_with_output()).await??;
        assert_eq!(
            out.status.code(),
            Some(exit),
            "{decision}: {}",
            text(&out.stderr)
        );
        let last: Value = serde_json::from_slice(&out.stdout)?;
        let want = if decision == "approve" {
            "active"
        } else {
            "denied"
        };
        assert_eq!(last["state"], want);
        if decision == "deny" {
            let said = text(&out.stderr);
            assert!(
                said.contains("denied by sub-bob: not during the freeze"),
                "{said}"
            );
        }
        if decision == "approve" {
            assert!(w.has_assignment("alice", "JitSsm").await?);
            alice.json(&["revoke", &id]).await?;
        }
    }
    Ok(())
}

#[tokio::test]
async fn without_a_login_the_cli_says_what_to_run() -> Result<()> {
    let person = Person {
        dir: tempfile::tempdir()?,
        server: "http://127.0.0.1:9".into(),
    };
    let out = person.run(&["status"]).await?;
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("jitgate login --server"),
        "{}",
        text(&out.stderr)
    );
    let out = person.run(&["--server", &person.server, "status"]).await?;
    assert_eq!(out.status.code(), Some(3));
    let out = person.run(&["completions", "bash"]).await?;
    assert!(out.status.success() && text(&out.stdout).contains("jitgate"));
    let help = person.run(&["--help"]).await?;
    assert!(
        text(&help.stdout).contains("Exit codes"),
        "{}",
        text(&help.stdout)
    );
    Ok(())
}

/// The instances each person can reach, through the API and `jitgate targets`: the
/// profiles' tag scopes decide, a person sees what they may request (an admin all), and
/// an active grant shows on the instances it reaches.
#[tokio::test]
async fn targets_are_what_each_persons_profiles_reach() -> Result<()> {
    let prod = crate::harness::ProfileSpec {
        targets: vec![("env".into(), "prod".into())],
        ..prod_profile()
    };
    let staging = crate::harness::ProfileSpec {
        name: "staging".into(),
        auto_approve: true,
        targets: vec![("env".into(), "staging".into())],
        ..prod_profile()
    };
    let account = crate::world::ACCOUNT;
    let seed = serde_json::json!({"instances": [
        {"name": "web-1", "account": account, "tags": {"env": "prod"}},
        {"name": "web-2", "account": account, "tags": {"env": "prod"}, "ping": "ConnectionLost"},
        {"name": "db-1", "account": account, "tags": {"env": "staging"}},
        {"name": "build-1", "account": account, "tags": {"env": "ci"}},
    ]});
    let w =
        World::start_seeded(Backend::Sqlite, seed, |b| b.profile(prod).profile(staging)).await?;
    let names = |v: &Value| -> Vec<String> {
        v["targets"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    // The first lookup runs at start; wait until it has answered.
    let alice = crate::harness::wait_for(
        "the inventory to be looked up",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || async { Ok(w.api("alice", "/targets", None).await.ok()) },
    )
    .await?;
    assert_eq!(names(&alice), ["db-1", "web-1", "web-2"], "{alice}");
    let web2 = &alice["targets"][2];
    assert_eq!(web2["profiles"], serde_json::json!(["prod-web"]));
    assert_eq!(web2["ping_status"], "ConnectionLost");
    assert_eq!(web2["account_id"], crate::world::ACCOUNT);
    assert!(
        names(&w.api("erin", "/targets", None).await?).is_empty(),
        "a contractor requests nothing"
    );
    assert!(
        names(&w.api("bob", "/targets", None).await?).is_empty(),
        "an approver requests nothing"
    );
    assert_eq!(
        names(&w.api("carol", "/targets", None).await?),
        ["db-1", "web-1", "web-2"],
        "an admin sees every instance in scope, never one outside (build-1)"
    );

    let id = w
        .submit("alice", "prod-web", "app", Duration::from_secs(3600))
        .await?;
    w.approve_as("bob", id).await?;
    w.wait_state(
        id,
        jitgate_server::domain::StateName::Active,
        Duration::from_secs(30),
    )
    .await?;
    // The grant's page says what it reaches and how to connect.
    let (browser, _) = w.session_of("alice").await?;
    let page = browser
        .get(format!("{}/requests/{id}", w.server.listen_url()))
        .send()
        .await?
        .text()
        .await?;
    let reaches = page
        .split("id=\"reaches\"")
        .nth(1)
        .context("no Reaches section")?;
    assert!(reaches.contains("web-1") && reaches.contains("web-2") && !reaches.contains("db-1"));
    assert!(
        reaches.contains(&format!("--reason {id}"))
            && reaches.contains("aws ssm start-session")
            && reaches.contains("jitgate ssh i-")
            && reaches.contains(" --as app"),
        "{reaches}"
    );

    let person = logged_in(&w, "alice").await?;
    let found = person.json(&["targets", "WEB"]).await?;
    assert_eq!(names(&found), ["web-1", "web-2"]);
    assert_eq!(
        found["targets"][0]["grants"],
        serde_json::json!([id.to_string()])
    );
    let web1 = found["targets"][0]["instance_id"]
        .as_str()
        .context("no id")?
        .to_owned();
    let by_id = person.json(&["targets", &web1]).await?;
    assert_eq!(names(&by_id), ["web-1"]);
    let table = person.run(&["targets", "db"]).await?;
    assert!(table.status.success());
    let table = text(&table.stdout);
    assert!(
        table.contains("db-1") && table.contains("staging") && !table.contains("web-1"),
        "{table}"
    );
    let none = person.run(&["targets", "nothing-like-this"]).await?;
    assert!(
        text(&none.stdout).contains("No instance you can reach matches"),
        "{}",
        text(&none.stdout)
    );
    Ok(())
}
