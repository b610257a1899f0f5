//! The `ssh` scenario: from typing a command to the Session Manager plugin's exec.
//! `jitgate ssh web-1` (release build) beside `aws ssm start-session --target i-...`
//! (awscli from PyPI, pinned in tests/peers/requirements.txt), against the same AWS
//! peer and the same cached IdC sign-in (the AWS CLI's cache, which both read), each with
//! a stand-in plugin that exits at once. Both pay for role credentials, StartSession and
//! the plugin's `--version` and exec; jitgate also asks its server which instance and
//! grant (two API calls).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use chrono::{TimeDelta, Utc};
use jitgate_server::domain::StateName;
use serde_json::json;

use super::{ACCOUNT, restart, start, submit, wait_count};
use crate::harness::{cli_binary, venv_python};

const START_URL: &str = "https://peer.awsapps.com/start";
/// Timed runs of each command (after one untimed warm-up run each).
const RUNS: usize = 20;

pub async fn run() -> Result<()> {
    let mut b = start(1).await?;
    let user = b.users[0].clone();
    let seeded = b
        .peer
        .seed(&json!({"instances": [{"name": "web-1", "account": ACCOUNT}]}))
        .await?;
    let instance = seeded["instances"]["web-1"]["instance_id"]
        .as_str()
        .context("no instance id")?
        .to_owned();
    // A fresh server looks the new instance up at start.
    restart(&mut b).await?;
    submit(&b.broker, user.clone()).await?;
    wait_count(&b.db, StateName::Active, 1, Duration::from_secs(60)).await?;
    let token = super::api::issue_tokens(&b)
        .await?
        .into_iter()
        .next()
        .context("no token")?;

    let home = tempfile::tempdir()?;
    let config_dir = home.path().join("jitgate");
    std::fs::create_dir_all(&config_dir)?;
    let server = b.server.listen_url();
    std::fs::write(
        config_dir.join("config.toml"),
        format!("server = \"{server}\"\n"),
    )?;
    std::fs::write(
        config_dir.join("credentials.json"),
        json!({"server": server, "token": token, "token_id": "bench",
               "expires_at": Utc::now() + TimeDelta::days(1)})
        .to_string(),
    )?;
    // One IdC sign-in in the AWS CLI's cache, for both.
    let access = b.peer.idc_sign_in(&user).await?;
    let cache = home.path().join(".aws/sso/cache");
    std::fs::create_dir_all(&cache)?;
    let key = {
        use sha1::Digest;
        sha1::Sha1::digest(START_URL.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let expires = (Utc::now() + TimeDelta::hours(1)).format("%Y-%m-%dT%H:%M:%SZ");
    std::fs::write(
        cache.join(format!("{key}.json")),
        json!({"startUrl": START_URL, "region": "us-east-1", "accessToken": access,
               "expiresAt": expires.to_string()})
        .to_string(),
    )?;
    std::fs::write(
        home.path().join(".aws/config"),
        format!(
            "[profile bench]\nsso_start_url = {START_URL}\nsso_region = us-east-1\n\
             sso_account_id = {ACCOUNT}\nsso_role_name = JitSsm\nregion = us-east-1\n"
        ),
    )?;
    let bin = home.path().join("bin");
    std::fs::create_dir_all(&bin)?;
    let plugin = bin.join("session-manager-plugin");
    std::fs::write(
        &plugin,
        "#!/bin/sh\n[ \"$1\" = --version ] && echo 1.2.707.0\nexit 0\n",
    )?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755))?;
    }
    let aws = venv_python()?.with_file_name("aws");
    ensure!(
        aws.exists(),
        "no AWS CLI at {}: run make deps (tests/peers/requirements.txt pins awscli)",
        aws.display()
    );

    let jitgate_cmd = || {
        let mut c = std::process::Command::new(cli_binary()?);
        c.args(["ssh", "web-1"])
            .env("JITGATE_CONFIG_DIR", &config_dir);
        env(&mut c, home.path(), &bin, b.peer.url());
        anyhow::Ok(c)
    };
    let aws_cmd = || {
        let mut c = std::process::Command::new(&aws);
        c.args(["ssm", "start-session", "--profile", "bench", "--target"])
            .arg(&instance)
            .args(["--reason", "bench"]);
        env(&mut c, home.path(), &bin, b.peer.url());
        c
    };
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    // Alternate, so that a slow moment of the machine hits both alike.
    for i in 0..=RUNS {
        let a = time(jitgate_cmd()?)?;
        let t = time(aws_cmd())?;
        if i > 0 {
            ours.push(a);
            theirs.push(t);
        }
    }
    let (ours, theirs) = (median(&mut ours), median(&mut theirs));
    println!("## ssh: from the command to the Session Manager plugin's exit\n");
    println!("Median of {RUNS} runs each, alternating; a stand-in plugin that exits at once.\n");
    println!("| command | median | target |\n| --- | --- | --- |");
    println!("| `jitgate ssh web-1` | {:.0} ms | |", ours * 1000.0);
    println!(
        "| `aws ssm start-session --target {instance}` (awscli, SSO profile) | {:.0} ms | |",
        theirs * 1000.0
    );
    println!(
        "| ratio jitgate / AWS CLI | {:.2} | at most 0.20 |\n",
        ours / theirs
    );
    Ok(())
}

fn env(c: &mut std::process::Command, home: &Path, bin: &Path, peer: &str) {
    c.env("HOME", home)
        .env(
            "PATH",
            format!("{}:/usr/local/bin:/usr/bin:/bin", bin.display()),
        )
        .env("AWS_ENDPOINT_URL", peer)
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_CONFIG_FILE")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .stdin(std::process::Stdio::null());
}

/// Seconds from spawn to exit; the command must succeed.
fn time(mut c: std::process::Command) -> Result<f64> {
    let started = Instant::now();
    let out = c.output()?;
    let took = started.elapsed().as_secs_f64();
    ensure!(
        out.status.success(),
        "{c:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(took)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
