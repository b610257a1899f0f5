//! `jitgate ssh`: the built CLI against the real server, the OIDC peer and the AWS peer
//! (IdC sign-in, portal, Session Manager), with a stand-in `session-manager-plugin` on
//! PATH that records how it was run (and, when asked, resolves its profile's
//! credentials with botocore and resumes the session, as the real plugin does).

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use jitgate_server::domain::{RequestId, StateName};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::harness::{ProfileSpec, venv_python, wait_for};
use crate::jitgate_cli::{Person, logged_in, text};
use crate::world::{ACCOUNT, Backend, World, prod_profile};

const START_URL: &str = "https://peer.awsapps.com/start";
const SHORT: Duration = Duration::from_secs(30);

/// The stand-in plugin: `--version` answers `STANDIN_VERSION` (default a current one);
/// a session run writes {argv, env (AWS_*)} to `STANDIN_RECORD`; with `STANDIN_RESOLVE=1`
/// it also resolves the profile's credentials (botocore, `credential_process`), waits
/// `STANDIN_WAIT` seconds, resolves them again and resumes the session with them.
const STANDIN: &str = r#"
import json, os, sys, time
args = sys.argv[1:]
if args == ["--version"]:
    print(os.environ.get("STANDIN_VERSION", "1.2.707.0"))
    sys.exit(0)
record = {"argv": args, "env": {k: v for k, v in os.environ.items() if k.startswith("AWS_")}}
if os.environ.get("STANDIN_RESOLVE") == "1":
    import botocore.session
    session = botocore.session.Session(profile=args[3])
    creds = session.get_credentials()
    first = creds.get_frozen_credentials()
    time.sleep(float(os.environ.get("STANDIN_WAIT", "0")))
    second = creds.get_frozen_credentials()
    record["keys"] = [first.access_key, second.access_key]
    answer = json.loads(os.environ[args[0]] if args[0] == "AWS_SSM_START_SESSION_RESPONSE" else args[0])
    ssm = session.create_client("ssm", region_name=args[1], endpoint_url=args[5])
    record["resumed"] = ssm.resume_session(SessionId=answer["SessionId"])["SessionId"]
with open(os.environ["STANDIN_RECORD"], "w") as f:
    json.dump(record, f)
"#;

/// A directory holding the stand-in as `session-manager-plugin`.
fn standin_bin() -> Result<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("session-manager-plugin");
    std::fs::write(&path, format!("#!{}\n{STANDIN}", venv_python()?.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(dir)
}

/// PATH with `bin` first (or without any plugin when `None`).
fn path_with(bin: Option<&Path>) -> String {
    let system = "/usr/local/bin:/usr/bin:/bin";
    match bin {
        Some(bin) => format!("{}:{system}", bin.display()),
        None => system.to_owned(),
    }
}

/// `jitgate ARGS` as `person`, HOME in their directory (the AWS CLI's cache lives
/// there), AWS calls to the peer.
fn ssh_command(
    w: &World,
    person: &Person,
    bin: Option<&Path>,
    record: &Path,
    args: &[&str],
) -> Result<tokio::process::Command> {
    let mut command = person.command(args)?;
    command
        .env("HOME", person.dir.path())
        .env("PATH", path_with(bin))
        .env("AWS_ENDPOINT_URL", w.peer.url())
        .env("STANDIN_RECORD", record)
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_CONFIG_FILE");
    Ok(command)
}

/// Runs `jitgate ssh`, signing in to IdC as `user` in the "browser" when the CLI asks
/// (it prints the authorize URL); answers the finished run and whether it asked.
async fn run_ssh(user: &str, mut command: tokio::process::Command) -> Result<(Output, bool)> {
    let command_env: Vec<(String, String)> = command
        .as_std()
        .get_envs()
        .filter_map(|(k, v)| Some((k.to_str()?.to_owned(), v?.to_str()?.to_owned())))
        .collect();
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take().context("stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    let mut said = String::new();
    let mut asked = false;
    let reading = async {
        while let Some(line) = lines.next_line().await? {
            said.push_str(&line);
            said.push('\n');
            if let Some(code) = line.split("shows the code: ").nth(1) {
                asked = true;
                // The person confirms the device code in a browser, signed in as `user`.
                let approved = reqwest::Client::new()
                    .post(format!("{}/_peer/sso/approve", peer_url(&command_env)?))
                    .json(&json!({"user_code": code.trim(), "user_name": user}))
                    .send()
                    .await?;
                ensure!(
                    approved.status().is_success(),
                    "device code: {}",
                    approved.status()
                );
            } else if let Some(at) = line.find("http").filter(|_| line.contains("/authorize?")) {
                asked = true;
                // The person's browser, signed in to the portal as `user`, follows the
                // redirect to the CLI's loopback port.
                let landed = reqwest::Client::new()
                    .get(line[at..].trim())
                    .header("x-peer-user", user)
                    .send()
                    .await?;
                ensure!(landed.status().is_success(), "sign-in: {}", landed.status());
            }
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(Duration::from_secs(90), reading)
        .await
        .context("jitgate ssh did not finish")??;
    let mut out = child.wait_with_output().await?;
    out.stderr = said.into_bytes();
    Ok((out, asked))
}

/// The AWS peer a command was pointed at.
fn peer_url(env: &[(String, String)]) -> Result<&str> {
    env.iter()
        .find(|(k, _)| k == "AWS_ENDPOINT_URL")
        .map(|(_, v)| v.as_str())
        .context("no AWS_ENDPOINT_URL")
}

fn record_of(path: &Path) -> Result<Value> {
    let bytes = std::fs::read(path).context("the plugin was not run")?;
    Ok(serde_json::from_slice(&bytes)?)
}

fn staging() -> ProfileSpec {
    ProfileSpec {
        name: "staging".into(),
        permission_set: "JitSsm-{os_user}".into(),
        run_as_mode: "session-document".into(),
        allowed_os_users: vec!["deploy".into(), "readonly".into()],
        auto_approve: true,
        targets: vec![("env".into(), "staging".into())],
        ..prod_profile()
    }
}

async fn world() -> Result<(World, Value)> {
    let prod = ProfileSpec {
        targets: vec![("env".into(), "prod".into())],
        ..prod_profile()
    };
    let seed = json!({
        "instances": [
            {"name": "web-1", "account": ACCOUNT, "tags": {"env": "prod"}},
            {"name": "web-10", "account": ACCOUNT, "tags": {"env": "prod"}},
            {"name": "db-1", "account": ACCOUNT, "tags": {"env": "staging"}},
        ],
        "documents": {"JitGate-RunAs-deploy": "deploy", "JitGate-RunAs-readonly": "readonly"},
    });
    let w = World::start_seeded(Backend::Sqlite, seed.clone(), |b| {
        b.profile(prod).profile(staging())
    })
    .await?;
    let seeded = w
        .peer
        .seed(&json!({"instances": seed["instances"]}))
        .await?;
    wait_for(
        "the inventory to be looked up",
        SHORT,
        Duration::from_millis(200),
        || async { Ok(w.api("alice", "/targets", None).await.ok()) },
    )
    .await?;
    Ok((w, seeded["instances"].clone()))
}

fn id_of(instances: &Value, name: &str) -> Result<String> {
    instances[name]["instance_id"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no instance {name}"))
}

async fn active_grant(w: &World, who: &str) -> Result<RequestId> {
    let id = w
        .submit(who, "prod-web", "app", Duration::from_secs(3600))
        .await?;
    w.approve_as("bob", id).await?;
    w.wait_state(id, StateName::Active, SHORT).await?;
    Ok(id)
}

/// From a Name tag to the plugin, as the AWS CLI runs it: sign-in (authorization code +
/// PKCE), role credentials, StartSession with the grant as reason, the plugin's six
/// arguments and hand-off; the OS user enforced in both run-as modes; a grant requested
/// on the spot; no grant or no plugin said clearly; revoking ends the session.
#[tokio::test]
async fn ssh_connects_through_the_grant_as_its_os_user() -> Result<()> {
    let (w, instances) = world().await?;
    let web1 = id_of(&instances, "web-1")?;
    let db1 = id_of(&instances, "db-1")?;
    let alice = logged_in(&w, "alice").await?;
    let bin = standin_bin()?;
    let record = alice.dir.path().join("plugin.json");

    // No grant, no terminal: the command to run, nothing requested.
    let (out, _) = run_ssh(
        "alice",
        ssh_command(
            &w,
            &alice,
            Some(bin.path()),
            &record,
            &["ssh", "web-1", "--as", "app"],
        )?,
    )
    .await?;
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr)
            .contains("run: jitgate request prod-web --as app --for 1h --account 111111111111"),
        "{}",
        text(&out.stderr)
    );
    // Nothing by that name: what exists instead.
    let (out, _) = run_ssh(
        "alice",
        ssh_command(
            &w,
            &alice,
            Some(bin.path()),
            &record,
            &["ssh", "nothing-here"],
        )?,
    )
    .await?;
    assert_eq!(out.status.code(), Some(4));
    assert!(
        text(&out.stderr).contains("you can reach: db-1, web-1, web-10"),
        "{}",
        text(&out.stderr)
    );

    // Two partial matches, no terminal: both listed, and how to choose.
    let (out, _) = run_ssh(
        "alice",
        ssh_command(&w, &alice, Some(bin.path()), &record, &["ssh", "web"])?,
    )
    .await?;
    assert_eq!(out.status.code(), Some(4));
    let said = text(&out.stderr);
    assert!(
        said.contains("2 instances match `web`")
            && said.contains("1. web-1 (")
            && said.contains("2. web-10 (")
            && said.contains("give an instance id, or --first"),
        "{said}"
    );

    let grant = active_grant(&w, "alice").await?;
    // No plugin: how to install it, and no session started.
    let (out, _) = run_ssh(
        "alice",
        ssh_command(&w, &alice, None, &record, &["ssh", "web-1"])?,
    )
    .await?;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("session-manager-plugin is not on your PATH: install"));
    assert!(w.peer.sessions().await?.is_empty());

    // web-1, not web-10: the exact Name tag wins over the partial match.
    let (out, asked) = run_ssh(
        "alice",
        ssh_command(
            &w,
            &alice,
            Some(bin.path()),
            &record,
            &["ssh", "web-1", "--no-browser"],
        )?,
    )
    .await?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(asked, "the first connection signs in to IdC");
    let run = record_of(&record)?;
    let argv: Vec<&str> = run["argv"]
        .as_array()
        .context("argv")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(argv.len(), 6, "{argv:?}");
    assert_eq!(argv[0], "AWS_SSM_START_SESSION_RESPONSE");
    assert_eq!(argv[1], "us-east-1");
    assert_eq!(argv[2], "StartSession");
    assert_eq!(argv[3], format!("jitgate-{ACCOUNT}-JitSsm"));
    let parameters: Value = serde_json::from_str(argv[4])?;
    assert_eq!(
        parameters,
        json!({"Target": web1, "Reason": grant.to_string()})
    );
    assert_eq!(argv[5], w.peer.url());
    let answer: Value = serde_json::from_str(
        run["env"]["AWS_SSM_START_SESSION_RESPONSE"]
            .as_str()
            .context("no hand-off")?,
    )?;
    let session_id = answer["SessionId"]
        .as_str()
        .context("SessionId")?
        .to_owned();
    assert!(answer["TokenValue"].is_string() && answer["StreamUrl"].is_string());
    let profiles = std::fs::read_to_string(
        run["env"]["AWS_CONFIG_FILE"]
            .as_str()
            .context("no config file")?,
    )?;
    assert!(
        profiles.contains(&format!("[profile jitgate-{ACCOUNT}-JitSsm]"))
            && profiles.contains("credential_process = ")
            && profiles.contains(" credentials --account 111111111111 --role-name JitSsm"),
        "{profiles}"
    );
    assert!(
        run["env"].get("AWS_ACCESS_KEY_ID").is_none(),
        "no static keys"
    );
    let sessions = w.peer.sessions().await?;
    let opened = sessions
        .iter()
        .find(|s| s.session_id == session_id)
        .context("no such session at the peer")?;
    assert_eq!(opened.target, web1);
    assert_eq!(
        opened.run_as, "app",
        "principal-tag mode: the grant's OS user"
    );
    assert_eq!(opened.reason.as_deref(), Some(grant.to_string().as_str()));
    assert!(opened.owner.ends_with("/alice"), "{}", opened.owner);

    // The token jitgate cached is the AWS CLI's: botocore's own loader reads it.
    let check = tokio::process::Command::new(venv_python()?)
        .args([
            "-c",
            "import os,sys\nfrom botocore.utils import SSOTokenLoader, JSONFileCache\n\
             loader = SSOTokenLoader(cache=JSONFileCache(os.path.expanduser('~/.aws/sso/cache')))\n\
             t = loader(sys.argv[1])\nprint(t['accessToken'][:3], t['expiresAt'], bool(t.get('refreshToken')))",
            START_URL,
        ])
        .env("HOME", alice.dir.path())
        .output()
        .await?;
    assert!(check.status.success(), "{}", text(&check.stderr));
    assert!(
        text(&check.stdout).starts_with("aoa "),
        "{}",
        text(&check.stdout)
    );
    assert!(text(&check.stdout).trim().ends_with("True"));

    // Under the session-document profile: a grant requested and waited for here (auto
    // approved), the cached sign-in reused, the run-as document passed.
    std::fs::remove_file(&record)?;
    let (out, asked) = run_ssh(
        "alice",
        ssh_command(
            &w,
            &alice,
            Some(bin.path()),
            &record,
            &[
                "ssh",
                "db-1",
                "--as",
                "deploy",
                "--reason",
                "run the migration",
                "--for",
                "30m",
            ],
        )?,
    )
    .await?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!asked, "signed in already");
    let run = record_of(&record)?;
    let parameters: Value = serde_json::from_str(run["argv"][4].as_str().context("argv")?)?;
    assert_eq!(parameters["Target"], db1);
    assert_eq!(parameters["DocumentName"], "JitGate-RunAs-deploy");
    assert_eq!(run["argv"][3], format!("jitgate-{ACCOUNT}-JitSsm-deploy"));
    let staged = w
        .peer
        .sessions()
        .await?
        .into_iter()
        .find(|s| s.target == db1)
        .context("no session on db-1")?;
    assert_eq!(
        staged.run_as, "deploy",
        "session-document mode: the document's user"
    );

    // Revoking the prod grant ends its session; the staging one stays.
    let out = alice
        .run(&["revoke", &grant.to_string(), "--reason", "done"])
        .await?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    wait_for(
        "the revoked grant's session to end",
        SHORT,
        Duration::from_millis(100),
        || async {
            let all = w.peer.sessions().await?;
            Ok(all
                .iter()
                .any(|s| s.session_id == session_id && !s.active)
                .then_some(all))
        },
    )
    .await
    .map(|all| {
        assert!(
            all.iter()
                .any(|s| s.session_id == staged.session_id && s.active),
            "another grant's session stays"
        )
    })?;
    Ok(())
}

/// A sign-in written by the AWS CLI (botocore) serves `jitgate ssh`; an old plugin gets
/// the answer as its first argument; the plugin's profile resolves fresh credentials
/// through `jitgate credentials` once the first ones have expired, and resumes with them.
#[tokio::test]
async fn the_aws_cli_s_sign_in_and_refreshable_credentials_serve_the_plugin() -> Result<()> {
    let (w, instances) = world().await?;
    let web1 = id_of(&instances, "web-1")?;
    let dave = logged_in(&w, "dave").await?;
    let bin = standin_bin()?;
    let record = dave.dir.path().join("plugin.json");
    active_grant(&w, "dave").await?;
    // Credentials that expire within seconds, so the plugin must ask again.
    w.peer
        .set_config(&json!({"role_credential_seconds": 3}))
        .await?;

    let token = w.peer.idc_sign_in("dave").await?;
    let save = tokio::process::Command::new(venv_python()?)
        .args([
            "-c",
            "import os,sys,datetime\nfrom botocore.utils import SSOTokenLoader, JSONFileCache\n\
             loader = SSOTokenLoader(cache=JSONFileCache(os.path.expanduser('~/.aws/sso/cache')))\n\
             at = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)\n\
             loader.save_token(sys.argv[1], {'startUrl': sys.argv[1], 'region': 'us-east-1', \
             'accessToken': sys.argv[2], 'expiresAt': at.strftime('%Y-%m-%dT%H:%M:%SZ')})",
            START_URL,
            &token,
        ])
        .env("HOME", dave.dir.path())
        .output()
        .await?;
    assert!(save.status.success(), "{}", text(&save.stderr));

    let mut command = ssh_command(&w, &dave, Some(bin.path()), &record, &["ssh", "web-1"])?;
    command
        .env("STANDIN_VERSION", "1.2.400.0")
        .env("STANDIN_RESOLVE", "1")
        .env("STANDIN_WAIT", "4");
    let (out, asked) = run_ssh("dave", command).await?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!asked, "the AWS CLI's sign-in is used");
    assert!(
        text(&out.stderr).contains("session-manager-plugin 1.2.400.0 is old"),
        "{}",
        text(&out.stderr)
    );
    let run = record_of(&record)?;
    let answer: Value = serde_json::from_str(run["argv"][0].as_str().context("argv")?)?;
    assert!(
        answer["SessionId"].is_string(),
        "an old plugin takes the JSON itself"
    );
    assert!(run["env"].get("AWS_SSM_START_SESSION_RESPONSE").is_none());
    let keys: Vec<&str> = run["keys"]
        .as_array()
        .context("keys")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(keys.len(), 2);
    assert_ne!(
        keys[0], keys[1],
        "fresh credentials after the first expired"
    );
    assert_eq!(run["resumed"], answer["SessionId"]);
    let session = w
        .peer
        .sessions()
        .await?
        .into_iter()
        .find(|s| s.target == web1)
        .context("no session")?;
    assert_eq!(session.run_as, "app");
    Ok(())
}

/// The device-code sign-in, then one refresh for two processes at once: the cached
/// token close to expiry, two `jitgate credentials` (as two plugins would run them)
/// spend its single-use refresh token once, under the lock, and both get credentials.
#[tokio::test]
async fn device_code_sign_in_and_one_refresh_for_two_processes() -> Result<()> {
    let (w, _) = world().await?;
    let frank = logged_in(&w, "frank").await?;
    let bin = standin_bin()?;
    let record = frank.dir.path().join("plugin.json");
    active_grant(&w, "frank").await?;
    let (out, asked) = run_ssh(
        "frank",
        ssh_command(
            &w,
            &frank,
            Some(bin.path()),
            &record,
            &["ssh", "web-1", "--use-device-code", "--no-browser"],
        )?,
    )
    .await?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(asked, "signed in with the device code");

    let cache = std::fs::read_dir(frank.dir.path().join(".aws/sso/cache"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .context("no cached token")?;
    let mut token: Value = serde_json::from_slice(&std::fs::read(&cache)?)?;
    assert!(token["refreshToken"].is_string() && token["clientSecret"].is_string());
    let soon = chrono::Utc::now() + chrono::TimeDelta::minutes(5);
    token["expiresAt"] = soon.format("%Y-%m-%dT%H:%M:%SZ").to_string().into();
    std::fs::write(&cache, token.to_string())?;
    w.peer.reset().await?;

    let credentials = || {
        ssh_command(
            &w,
            &frank,
            None,
            &record,
            &[
                "credentials",
                "--account",
                ACCOUNT,
                "--role-name",
                "JitSsm",
                "--start-url",
                START_URL,
                "--sso-region",
                "us-east-1",
            ],
        )
        .map(|mut c| {
            c.stdout(Stdio::piped()).stderr(Stdio::piped());
            c
        })
    };
    let (a, b) = tokio::join!(credentials()?.output(), credentials()?.output());
    for out in [a?, b?] {
        assert!(out.status.success(), "{}", text(&out.stderr));
        let creds: Value = serde_json::from_slice(&out.stdout)?;
        assert_eq!(creds["Version"], 1);
        assert!(
            creds["AccessKeyId"]
                .as_str()
                .is_some_and(|k| k.starts_with("ASIA"))
        );
        assert!(creds["Expiration"].is_string());
    }
    let stats = w.peer.stats().await?;
    assert_eq!(
        stats["actions"]["sso:create_token"], 1,
        "one refresh for both: {stats}"
    );
    let refreshed: Value = serde_json::from_slice(&std::fs::read(&cache)?)?;
    assert_ne!(refreshed["accessToken"], token["accessToken"]);
    assert_ne!(refreshed["expiresAt"], token["expiresAt"], "an hour again");
    Ok(())
}
