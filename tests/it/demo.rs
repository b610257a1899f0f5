//! `make demo` works: the demo binary stands up the peers and the server with the kit,
//! runs its scripted walk-through (web sign-in, a grant provisioned, expired and revoked
//! in the AWS peer, the audit chain verified) and exits.

use std::process::Stdio;

use anyhow::{Context, Result};

#[tokio::test]
async fn the_demo_walks_through_a_grant_and_exits() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_jitgate-demo"))
        .env("JITGATE_DEMO_DIR", dir.path())
        .env("JITGATE_DEMO_EXIT", "1")
        .stdin(Stdio::null())
        .output()
        .await
        .context("running jitgate-demo")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the demo failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    for step in [
        "jitgate is running at http://127.0.0.1:",
        "alice  groups developers",
        "approves with the Approve button in Slack",
        "the audit event says via: slack, member UBOB",
        "the server deleted the assignment",
        "hash chain verified",
        "Try it in a browser",
        "stopping the server and the peers",
    ] {
        assert!(stdout.contains(step), "no `{step}` in:\n{stdout}");
    }
    assert!(
        dir.path().join("jitgate.db").exists(),
        "the database is where JITGATE_DEMO_DIR says"
    );
    Ok(())
}
