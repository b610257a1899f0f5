//! Each command: call the API, print the answer as text or (`--json`) as JSON.

use std::time::Duration;

use anyhow::Result;
use chrono::{DateTime, Utc};
use jitgate_proto::{
    CommentBody, ExtendBody, MeView, NewRequest, ProfileView, RequestState, RequestView,
    TargetsView,
};
use serde::Serialize;

use crate::api::Api;
use crate::config::{Credentials, Dir};
use crate::exit::{Failure, REFUSED, WILL_NOT_BE_ACTIVE};
use crate::render;

/// How often `--wait` looks at the request.
const WAIT_POLL: Duration = Duration::from_secs(2);

fn print_json(value: &impl Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// `jitgate login`.
pub async fn login(dir: &Dir, server: &str, open_browser: bool, json: bool) -> Result<()> {
    let created = crate::login::login(server, open_browser).await?;
    let credentials = Credentials {
        server: server.to_owned(),
        token: created.token,
        token_id: created.id,
        expires_at: created.expires_at,
    };
    dir.save_credentials(&credentials)?;
    let mut config = dir.config()?;
    config.server = Some(server.to_owned());
    dir.save_config(&config)?;
    let api = Api::new(server, Some(credentials.token.clone()))?;
    let me: MeView = api.get("/me").await?;
    if json {
        return print_json(&me);
    }
    println!(
        "Logged in to {server} as {} (token valid until {}).",
        me.user_name,
        render::when(credentials.expires_at)
    );
    Ok(())
}

/// `jitgate logout`: the token is revoked on the server too, when it can be reached.
pub async fn logout(dir: &Dir, server: &str) -> Result<()> {
    // Another server's token stays: it is not this logout's to forget unrevoked.
    let Some(saved) = dir.credentials(server)? else {
        println!("Not logged in to {server}.");
        return Ok(());
    };
    let api = Api::new(server, Some(saved.token.clone()))?;
    if let Err(e) = api.delete(&format!("/tokens/{}", saved.token_id)).await {
        eprintln!("jitgate: could not revoke the token on the server ({e}); forgetting it here");
    }
    dir.forget_credentials()?;
    println!("Logged out of {server}.");
    Ok(())
}

/// `jitgate profiles`.
pub async fn profiles(api: &Api, json: bool) -> Result<()> {
    let profiles: Vec<ProfileView> = api.get("/profiles").await?;
    if json {
        return print_json(&profiles);
    }
    if profiles.is_empty() {
        println!("No profiles you may request or approve.");
    }
    for p in &profiles {
        let roles = match (p.may_request, p.may_approve) {
            (true, true) => "request, approve",
            (true, false) => "request",
            (false, true) => "approve",
            (false, false) => "-",
        };
        println!("{}  ({roles})", p.name);
        if !p.description.is_empty() {
            println!("  {}", p.description);
        }
        println!(
            "  accounts {}; as {}; up to {}; {}",
            p.accounts.join(", "),
            p.allowed_os_users.join(", "),
            render::duration(p.max_duration_secs),
            if p.auto_approve {
                "approved at once".to_owned()
            } else {
                format!("{} approval(s)", p.approvals_required.max(1))
            }
        );
    }
    Ok(())
}

/// What `jitgate status --json` prints.
#[derive(Serialize)]
struct Status {
    grants: Vec<RequestView>,
    pending: Vec<RequestView>,
    to_approve: Vec<RequestView>,
}

/// `jitgate status`.
pub async fn status(api: &Api, json: bool, now: DateTime<Utc>) -> Result<()> {
    let mine: Vec<RequestView> = api.get("/requests?mine=true&limit=200").await?;
    let to_approve: Vec<RequestView> = api.get("/requests?to_approve=true&limit=100").await?;
    let (grants, pending): (Vec<RequestView>, Vec<RequestView>) = mine
        .into_iter()
        .filter(|r| {
            matches!(
                r.state,
                RequestState::Active | RequestState::Approved | RequestState::Pending
            )
        })
        .partition(|r| r.state != RequestState::Pending);
    let status = Status {
        grants,
        pending,
        to_approve,
    };
    if json {
        return print_json(&status);
    }
    render::section("Your access", &status.grants, now);
    render::section("Your pending requests", &status.pending, now);
    render::section("Waiting for your approval", &status.to_approve, now);
    Ok(())
}

/// `jitgate targets [QUERY]`.
pub async fn targets(api: &Api, query: Option<&str>, json: bool) -> Result<()> {
    let path = match query {
        Some(q) => format!(
            "/targets?q={}",
            form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>()
        ),
        None => "/targets".to_owned(),
    };
    let found: TargetsView = api.get(&path).await?;
    if json {
        return print_json(&found);
    }
    if found.targets.is_empty() {
        match query {
            Some(q) => println!(
                "No instance you can reach matches `{q}`; `jitgate targets` lists them all."
            ),
            None => println!("No instance is in the scope of a profile you may request."),
        }
        return Ok(());
    }
    println!(
        "{:<24} {:<20} {:<13} {:<14} {:<15} PROFILES (GRANTS)",
        "NAME", "INSTANCE", "ACCOUNT", "REGION", "PING"
    );
    for t in &found.targets {
        let through = if t.grants.is_empty() {
            t.profiles.join(", ")
        } else {
            format!(
                "{} (active: {})",
                t.profiles.join(", "),
                t.grants.join(", ")
            )
        };
        println!(
            "{:<24} {:<20} {:<13} {:<14} {:<15} {through}",
            t.name.as_deref().unwrap_or("-"),
            t.instance_id,
            t.account_id,
            t.region,
            t.ping_status.as_deref().unwrap_or("no agent"),
        );
    }
    Ok(())
}

/// The account of a request: `--account`, else the profile's only one.
async fn account_for(api: &Api, profile: &str, account: Option<String>) -> Result<String> {
    if let Some(account) = account {
        return Ok(account);
    }
    let profiles: Vec<ProfileView> = api.get("/profiles").await?;
    let Some(found) = profiles.iter().find(|p| p.name == profile) else {
        let names: Vec<&str> = profiles
            .iter()
            .filter(|p| p.may_request)
            .map(|p| p.name.as_str())
            .collect();
        return Err(Failure::new(
            REFUSED,
            format!(
                "no profile `{profile}` you may request; yours: {}",
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            ),
        )
        .into());
    };
    match found.accounts.as_slice() {
        [only] => Ok(only.clone()),
        several => Err(Failure::new(
            REFUSED,
            format!(
                "profile `{profile}` covers several accounts ({}): say which with --account",
                several.join(", ")
            ),
        )
        .into()),
    }
}

/// What `jitgate request` asks for.
pub struct Asked {
    pub profile: String,
    pub os_user: String,
    pub duration: String,
    pub reason: String,
    pub ticket: Option<String>,
    pub account: Option<String>,
    pub wait: bool,
}

/// `jitgate request`.
pub async fn request(api: &Api, asked: Asked, json: bool) -> Result<()> {
    let account_id = account_for(api, &asked.profile, asked.account).await?;
    let body = NewRequest {
        profile: asked.profile,
        account_id,
        os_user: asked.os_user,
        duration: asked.duration,
        reason: asked.reason,
        ticket: asked.ticket,
    };
    let created: RequestView = api.post("/requests", &body).await?;
    if !asked.wait {
        if json {
            return print_json(&created);
        }
        println!("{}", render::summary(&created));
        return Ok(());
    }
    if !json {
        eprintln!("{}", render::summary(&created));
    }
    let done = wait(api, &created.id, !json).await?;
    if json {
        print_json(&done)?;
    } else {
        println!("{}", render::summary(&done));
    }
    match done.state {
        RequestState::Active => Ok(()),
        _ => Err(Failure::new(WILL_NOT_BE_ACTIVE, render::why_not_active(&done)).into()),
    }
}

/// Follows request `id` until it is active or will never be, showing the approvals so far.
pub async fn wait(api: &Api, id: &str, show: bool) -> Result<RequestView> {
    let spinner = show.then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    });
    loop {
        let current: RequestView = api.get(&format!("/requests/{id}")).await?;
        let settled = !matches!(
            current.state,
            RequestState::Pending | RequestState::Approved
        );
        if settled {
            if let Some(bar) = &spinner {
                bar.finish_and_clear();
            }
            return Ok(current);
        }
        if let Some(bar) = &spinner {
            bar.set_message(render::progress(&current));
        }
        tokio::time::sleep(WAIT_POLL).await;
    }
}

/// `approve`, `deny`, `extend` and `revoke`: one action on one request.
pub async fn act(
    api: &Api,
    id: &str,
    action: &str,
    body: &impl Serialize,
    json: bool,
) -> Result<()> {
    let next: RequestView = api.post(&format!("/requests/{id}/{action}"), body).await?;
    if json {
        return print_json(&next);
    }
    println!("{}", render::summary(&next));
    Ok(())
}

/// The body of `deny` and `revoke`.
pub fn comment(reason: Option<String>) -> CommentBody {
    CommentBody { comment: reason }
}

/// The body of `extend`.
pub fn extension(duration: String, reason: String) -> ExtendBody {
    ExtendBody { duration, reason }
}

/// `revoke` ends an active grant; a request not active yet is withdrawn instead.
pub async fn revoke(api: &Api, id: &str, reason: Option<String>, json: bool) -> Result<()> {
    let current: RequestView = api.get(&format!("/requests/{id}")).await?;
    let action = match current.state {
        RequestState::Pending | RequestState::Approved => "cancel",
        _ => "revoke",
    };
    if action == "cancel" {
        return act(api, id, action, &serde_json::json!({}), json).await;
    }
    act(api, id, action, &comment(reason), json).await
}
