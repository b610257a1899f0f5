//! The API fuzzed from its own contract: schemathesis (installed by make test from
//! tests/fuzz/requirements.txt) reads `/api/v1/openapi.json` and sends generated requests,
//! valid and invalid, with an API token. No answer may be a server error, and every
//! answer must match the document (status codes, content types, bodies).

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::harness::cache_dir;
use crate::world::{Backend, World, prod_profile};

/// `$JITGATE_FUZZ_VENV`, else cache_dir()/fuzz-venv (where make test installs it).
fn schemathesis() -> Result<PathBuf> {
    let venv = match std::env::var_os("JITGATE_FUZZ_VENV") {
        Some(dir) => PathBuf::from(dir),
        None => cache_dir()?.join("fuzz-venv"),
    };
    let bin = venv.join("bin").join("schemathesis");
    anyhow::ensure!(
        bin.exists(),
        "no schemathesis at {}: run make test, which installs it (or point JITGATE_FUZZ_VENV at a venv that has it)",
        bin.display()
    );
    Ok(bin)
}

async fn fuzz_as(w: &World, login: &str) -> Result<()> {
    let token = w.token_for(login).await?;
    let server = w.server.listen_url();
    let reports = tempfile::tempdir()?;
    let out = tokio::process::Command::new(schemathesis()?)
        .arg("run")
        .arg(format!("{server}/api/v1/openapi.json"))
        .args(["--url", &format!("{server}/api/v1")])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--checks", "all"])
        // "Schema-valid data is accepted" cannot hold for this API: the document cannot say
        // which profiles exist, which durations a profile allows or that `offset` pages only
        // the approval queue, and those are refused with a documented 422 naming the field.
        .args(["--exclude-checks", "positive_data_acceptance"])
        // Fixed, so a failure found once is found again (and CI does not flake).
        .args(["--seed", "20261202", "--max-examples", "25"])
        // One worker: the same requests in the same order on every run.
        .args(["--workers", "1", "--request-timeout", "10"])
        .arg("--report-dir")
        .arg(reports.path())
        // Its own files (reports, the example database) stay out of the checkout.
        .current_dir(reports.path())
        .env("NO_COLOR", "1")
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .kill_on_drop(true)
        .output()
        .await
        .context("running schemathesis")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "schemathesis as {login} found failures:\n{text}"
    );
    Ok(())
}

#[tokio::test]
async fn the_api_holds_to_its_contract_under_fuzzing() -> Result<()> {
    let w = World::start_with_sign_in(Backend::Sqlite, |b| b.profile(prod_profile())).await?;
    // An admin who approves reaches every route; a requester meets the refusals.
    fuzz_as(&w, "carol").await?;
    fuzz_as(&w, "alice").await?;
    Ok(())
}
