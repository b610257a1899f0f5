//! Access truly ends: when a grant ends, the person's live Session Manager sessions opened
//! through it are ended too (credentials IdC issued outlive the assignment). Developers
//! open their sessions the way the AWS CLI does, against the AWS peer: IdC sign-in,
//! `GetRoleCredentials`, `StartSession` signed with those credentials.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use jitgate_server::domain::{RequestId, StateName};
use serde_json::json;

use crate::harness::{Fault, PeerKnobs, PeerSession, ProfileSpec, SessionAsk, wait_for};
use crate::world::{ACCOUNT, Backend, World, on_both_backends, prod_profile};

const SHORT: Duration = Duration::from_secs(30);

fn staging() -> ProfileSpec {
    ProfileSpec {
        name: "staging".into(),
        permission_set: "JitSsm-{os_user}".into(),
        run_as_mode: "session-document".into(),
        allowed_os_users: vec!["deploy".into(), "readonly".into()],
        auto_approve: true,
        ..prod_profile()
    }
}

/// The world with the prod-web and staging profiles, an instance web-1 and the run-as
/// documents; the instance id.
async fn world(backend: Backend) -> Result<(World, String)> {
    let w = World::start(backend, PeerKnobs::default(), |b| {
        b.profile(prod_profile()).profile(staging())
    })
    .await?;
    let seeded = w
        .peer
        .seed(&json!({
            "instances": [{"name": "web-1", "account": ACCOUNT}],
            "documents": {"JitGate-RunAs-deploy": "deploy", "JitGate-RunAs-readonly": "readonly"},
        }))
        .await?;
    let instance = seeded["instances"]["web-1"]["instance_id"]
        .as_str()
        .context("no instance id")?
        .to_owned();
    Ok((w, instance))
}

/// `who`'s approved, active grant of `profile` as `os_user`.
async fn active_grant(w: &World, who: &str, profile: &str, os_user: &str) -> Result<RequestId> {
    let id = w
        .submit(who, profile, os_user, Duration::from_secs(3600))
        .await?;
    if profile == "prod-web" {
        w.approve_as("bob", id).await?;
    }
    w.wait_state(id, StateName::Active, SHORT).await?;
    Ok(id)
}

async fn session(w: &World, ask: SessionAsk<'_>) -> Result<String> {
    w.peer.open_session(&ask).await
}

fn ask<'a>(who: &'a str, set: &'a str, target: &'a str) -> SessionAsk<'a> {
    SessionAsk {
        user_name: who,
        account_id: ACCOUNT,
        permission_set: set,
        target,
        reason: None,
        document: None,
    }
}

async fn sessions_by_id(w: &World) -> Result<std::collections::HashMap<String, PeerSession>> {
    Ok(w.peer
        .sessions()
        .await?
        .into_iter()
        .map(|s| (s.session_id.clone(), s))
        .collect())
}

/// Waits until none of `ids` is active at the peer.
async fn wait_ended(w: &World, ids: &[&String]) -> Result<()> {
    wait_for(
        "the grant's sessions to be ended",
        SHORT,
        Duration::from_millis(100),
        || async {
            let all = sessions_by_id(w).await?;
            Ok(ids
                .iter()
                .all(|id| all.get(*id).is_some_and(|s| !s.active))
                .then_some(()))
        },
    )
    .await
    .with_context(|| format!("server log:\n{}", w.server.log()))
}

async fn revoke_ends_the_grants_live_sessions(backend: Backend) -> Result<()> {
    let (w, web1) = world(backend).await?;
    let prod = active_grant(&w, "alice", "prod-web", "app").await?;
    let staging = active_grant(&w, "alice", "staging", "deploy").await?;
    let dave = active_grant(&w, "dave", "prod-web", "app").await?;

    let reason = prod.to_string();
    let named = session(
        &w,
        SessionAsk {
            reason: Some(&reason),
            ..ask("alice", "JitSsm", &web1)
        },
    )
    .await?;
    let console = session(&w, ask("alice", "JitSsm", &web1)).await?;
    let documented = session(
        &w,
        SessionAsk {
            document: Some("JitGate-RunAs-deploy"),
            ..ask("alice", "JitSsm-deploy", &web1)
        },
    )
    .await?;
    let daves = session(&w, ask("dave", "JitSsm", &web1)).await?;

    // AWS enforces the OS user of each grant, in both run-as modes.
    let before = sessions_by_id(&w).await?;
    assert_eq!(before[&named].run_as, "app");
    assert_eq!(before[&documented].run_as, "deploy");

    w.revoke_as("alice", prod).await?;
    wait_ended(&w, &[&named, &console]).await?;
    let after = sessions_by_id(&w).await?;
    assert!(
        after[&documented].active,
        "alice's staging grant still covers its session"
    );
    assert!(after[&daves].active, "dave's session is his own");
    assert_eq!(
        w.request(staging).await?.request.state.name(),
        StateName::Active
    );
    assert_eq!(
        w.request(dave).await?.request.state.name(),
        StateName::Active
    );

    // Each end is in the trail, with the grant it belongs to.
    let ended: HashSet<String> = w
        .audit_events("ssm.session_terminated")
        .await?
        .iter()
        .filter(|e| e.request_id.as_deref() == Some(reason.as_str()))
        .filter_map(|e| e.details["session_id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(ended, HashSet::from([named.clone(), console.clone()]));
    let closed = wait_for(
        "the closing to be recorded",
        SHORT,
        Duration::from_millis(100),
        || async {
            let events = w.audit_events("ssm.sessions_closed").await?;
            Ok(events
                .into_iter()
                .find(|e| e.request_id.as_deref() == Some(reason.as_str())))
        },
    )
    .await?;
    assert_eq!(
        closed.details["terminated"].as_array().map(Vec::len),
        Some(2),
        "{closed:?}"
    );
    let (ok, report) = w.audit_verify().await?;
    ensure!(ok, "audit chain broken: {report}");
    Ok(())
}

on_both_backends!(revoke_ends_the_grants_live_sessions);

/// A grant that expires while SSM refuses to end its session: the failure is audited
/// and retried, survives a kill of the server, and the session ends once SSM answers.
#[tokio::test]
async fn ending_sessions_is_retried_across_a_crash_until_it_works() -> Result<()> {
    let (mut w, web1) = world(Backend::Sqlite).await?;
    let id = w
        .submit("alice", "prod-web", "app", Duration::from_secs(8))
        .await?;
    w.approve_as("bob", id).await?;
    w.wait_state(id, StateName::Active, SHORT).await?;
    let live = session(&w, ask("alice", "JitSsm", &web1)).await?;
    w.peer
        .set_faults(&[Fault {
            action: "TerminateSession",
            effect: "deny",
            principal_id: None,
        }])
        .await?;

    w.wait_state(id, StateName::Ended, SHORT).await?;
    let failed = wait_for(
        "the failure to be audited",
        SHORT,
        Duration::from_millis(100),
        || async {
            let events = w.audit_events("ssm.session_close_failed").await?;
            Ok(events
                .into_iter()
                .find(|e| e.request_id.as_deref() == Some(id.to_string().as_str())))
        },
    )
    .await?;
    let error = failed.details["error"].as_str().unwrap_or_default();
    assert!(error.contains("AccessDenied"), "{error}");
    assert!(
        sessions_by_id(&w).await?[&live].active,
        "SSM refused: the session is still live"
    );

    w.restart().await?;
    w.peer.set_faults(&[]).await?;
    wait_ended(&w, &[&live]).await?;
    let closed = w.audit_events("ssm.sessions_closed").await?;
    let closed = closed
        .iter()
        .find(|e| e.request_id.as_deref() == Some(id.to_string().as_str()))
        .context("no ssm.sessions_closed")?;
    assert!(
        closed.details["attempts"].as_i64().unwrap_or(0) > 1,
        "{closed:?}"
    );
    Ok(())
}
