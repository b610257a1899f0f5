//! The admin commands as a user runs them: `check-config`, `migrate`, `audit verify`
//! (which must catch a row edited by hand and name it) and `audit export`.

use anyhow::Result;
use sqlx::AnyPool;

use crate::harness::{ConfigBuilder, run_cli};
use crate::store::{append_events, empty_db};
use crate::world::on_both_backends;
use crate::world::{Backend, prod_profile};

fn config_for(db_url: &str) -> Result<String> {
    Ok(ConfigBuilder::new(db_url, "http://127.0.0.1:9")?
        .profile(prod_profile())
        .render())
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test]
async fn check_config_accepts_the_example_and_names_bad_keys() -> Result<()> {
    let example =
        std::fs::read_to_string(crate::harness::repo_root().join("deploy/jitgate.example.toml"))?;
    let out = run_cli(&["check-config"], &example).await?;
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("configuration OK"));

    let with_password = example.replace("sqlite://jitgate.db", "postgres://jit:hunter2@db/jitgate");
    let out = run_cli(&["check-config"], &with_password).await?;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        !text(&out).contains("hunter2"),
        "secrets are redacted: {}",
        text(&out)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("postgres://jit:***@db/jitgate"));

    let cases = [
        (
            "max_duration = \"4h\"",
            "max_duration = \"four hours\"",
            "profiles[0].max_duration",
        ),
        (
            "approver_groups = [\"sre\"]",
            "approver_groups = []",
            "profiles[0].approver_groups",
        ),
        (
            "allowed_os_users = [\"app\", \"readonly\"]",
            "allowed_os_users = [\"root\"]",
            "profiles[0].allowed_os_users[0]",
        ),
        ("workers = 16", "workerz = 16", "scheduler.workerz"),
        (
            "sweep = \"0 * * * * *\"",
            "sweep = \"*/5 * * * *\"",
            "scheduler.sweep",
        ),
    ];
    for (from, to, key) in cases {
        let bad = example.replacen(from, to, 1);
        let out = run_cli(&["check-config"], &bad).await?;
        assert_eq!(out.status.code(), Some(1), "{key}: {}", text(&out));
        assert!(
            text(&out).contains(key),
            "the error names {key}: {}",
            text(&out)
        );
    }
    Ok(())
}

async fn audit_verify_names_an_edited_event(backend: Backend) -> Result<()> {
    let (db, url, _dir) = empty_db(backend).await?;
    append_events(&db, "alice", 5).await?;
    let config = config_for(&url)?;
    let out = run_cli(&["audit", "verify"], &config).await?;
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("5 events"), "{}", text(&out));

    // Someone with database access turns off the guard and rewrites history.
    sqlx::any::install_default_drivers();
    let pool = AnyPool::connect(&url).await?;
    let disable = match backend {
        Backend::Sqlite => "DROP TRIGGER audit_events_no_update",
        Backend::Postgres => "ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_change",
    };
    sqlx::query(disable).execute(&pool).await?;
    sqlx::query("UPDATE audit_events SET actor = 'mallory' WHERE seq = 3")
        .execute(&pool)
        .await?;
    let out = run_cli(&["audit", "verify"], &config).await?;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("BROKEN at event 3"), "{}", text(&out));
    Ok(())
}

on_both_backends!(audit_verify_names_an_edited_event);

#[tokio::test]
async fn audit_verify_catches_events_removed_from_the_end() -> Result<()> {
    let (db, url, _dir) = empty_db(Backend::Sqlite).await?;
    append_events(&db, "alice", 4).await?;
    sqlx::any::install_default_drivers();
    let pool = AnyPool::connect(&url).await?;
    sqlx::query("DROP TRIGGER audit_events_no_delete")
        .execute(&pool)
        .await?;
    sqlx::query("DELETE FROM audit_events WHERE seq = 4")
        .execute(&pool)
        .await?;
    let out = run_cli(&["audit", "verify"], &config_for(&url)?).await?;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("removed"), "{}", text(&out));
    Ok(())
}

/// Export reads the trail a page (1,000 events) at a time: 2,345 events cross two page
/// boundaries, on both backends.
async fn audit_export_writes_json_lines_and_csv(backend: Backend) -> Result<()> {
    const EVENTS: usize = 2_345;
    let (db, url, _dir) = empty_db(backend).await?;
    append_events(&db, "alice", EVENTS).await?;
    let config = config_for(&url)?;

    let out = run_cli(&["audit", "export"], &config).await?;
    assert!(out.status.success(), "{}", text(&out));
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(lines.len(), EVENTS);
    for (i, pair) in lines.windows(2).enumerate() {
        assert_eq!(pair[0]["seq"], i + 1, "in order, none missing or repeated");
        assert_eq!(pair[0]["hash"], pair[1]["prev_hash"], "chained at {i}");
    }
    assert_eq!(lines[EVENTS - 1]["seq"], EVENTS);

    let out = run_cli(&["audit", "export", "--format", "csv"], &config).await?;
    let csv = String::from_utf8(out.stdout)?;
    assert!(
        csv.starts_with("seq,at,actor,action,request_id,details,prev_hash,hash"),
        "{csv}"
    );
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    assert_eq!(reader.records().count(), EVENTS);

    let out = run_cli(&["audit", "export", "--since", "2999-01-01"], &config).await?;
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    let out = run_cli(&["audit", "export", "--since", "yesterday-ish"], &config).await?;
    assert!(!out.status.success());
    assert!(text(&out).contains("--since"), "{}", text(&out));
    Ok(())
}

on_both_backends!(audit_export_writes_json_lines_and_csv);

#[tokio::test]
async fn audit_commands_refuse_a_missing_database() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let url = crate::harness::sqlite_url_in(dir.path());
    let out = run_cli(&["audit", "verify"], &config_for(&url)?).await?;
    assert!(!out.status.success());
    assert!(text(&out).contains("no database at"), "{}", text(&out));
    Ok(())
}
