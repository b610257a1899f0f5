//! `jitgate ssh TARGET`: from an instance's Name tag (or id) to a shell, as the grant's
//! OS user. The server says which instances the person reaches and through which of
//! their grants; without one, a grant is requested (and waited for) here. Then, as the
//! AWS CLI would: the IdC sign-in (`sso_login`), role credentials for the grant's
//! account and permission set, `ssm:StartSession` with the grant id as the reason, and
//! AWS's Session Manager plugin (`plugin`), handed a refreshable profile (`credentials`).

use std::io::{BufRead, IsTerminal, Write};

use anyhow::Result;
use jitgate_proto::{
    ConnectionView, NewRequest, RequestState, RequestView, TargetView, TargetsView,
};

use crate::api::Api;
use crate::aws::{self, RoleAsk, SessionParameters};
use crate::commands;
use crate::config::Dir;
use crate::credentials;
use crate::exit::{FAILED, Failure, REFUSED, WILL_NOT_BE_ACTIVE};
use crate::plugin::{self, Handoff};
use crate::render;
use crate::sso_login::{self, SignIn, SsoSite};

/// What `jitgate ssh` was asked.
pub struct SshAsk {
    pub target: String,
    pub os_user: Option<String>,
    pub profile: Option<String>,
    pub first: bool,
    pub sign_in: SignIn,
    /// With no grant: ask for one with this reason (else prompt, or say what to run).
    pub reason: Option<String>,
    pub duration: String,
}

/// Environment the plugin must not see: static keys or another profile would win over
/// the refreshable profile jitgate hands it.
const FOREIGN_CREDENTIALS: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SHARED_CREDENTIALS_FILE",
];

pub async fn ssh(api: &Api, dir: &Dir, ask: SshAsk) -> Result<()> {
    // Before anything is requested or started: without the plugin nothing can follow.
    let plugin = plugin::find().await?;
    let target = resolve(api, &ask).await?;
    let label = target
        .name
        .clone()
        .unwrap_or_else(|| target.instance_id.clone());
    let grant = match grant_for(api, &target, &ask).await? {
        Some(id) => id,
        None => request_grant(api, &target, &label, &ask).await?,
    };
    let conn: ConnectionView = api.get(&format!("/requests/{grant}/connection")).await?;
    let site = SsoSite {
        start_url: conn.sso.start_url.clone(),
        region: conn.sso.region.clone(),
        session_name: conn.sso.session_name.clone(),
    };
    let token = sso_login::access_token(&site, Some(ask.sign_in), crate::now()).await?;
    let role = RoleAsk {
        sso_region: &site.region,
        account_id: &conn.account_id,
        role_name: &conn.role_name,
    };
    let creds = aws::role_credentials(&role, &token).await?;
    let profile = credentials::write_profile(dir, &site, &role, &target.region)?;
    let parameters = SessionParameters {
        target: target.instance_id.clone(),
        document_name: conn.document_name.clone(),
        reason: conn.request_id.clone(),
    };
    let session = aws::start_session(&target.region, &creds, &parameters).await?;
    eprintln!(
        "Connecting to {label} ({}) as {} through grant {} (until {}).",
        target.instance_id,
        conn.os_user,
        conn.request_id,
        render::when(conn.expires_at)
    );
    let endpoint = aws::ssm_endpoint(&target.region);
    let handoff = Handoff {
        session: &session,
        region: &target.region,
        profile: &profile,
        parameters: &parameters,
        endpoint: &endpoint,
        env: vec![
            (
                "AWS_CONFIG_FILE",
                credentials::config_file(dir).to_string_lossy().into_owned(),
            ),
            // The Go SDK of older plugins reads config files only when asked to.
            ("AWS_SDK_LOAD_CONFIG", "1".into()),
        ],
        env_remove: FOREIGN_CREDENTIALS,
    };
    match plugin::run(&plugin, handoff).await? {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(Failure::new(
            status
                .code()
                .and_then(|c| u8::try_from(c).ok())
                .filter(|c| *c != 0)
                .unwrap_or(FAILED),
            format!("the Session Manager plugin ended with {status}"),
        )
        .into()),
        Err(e) => {
            // Started but nobody will attach: end it now rather than at its idle timeout.
            aws::terminate_session(&target.region, &creds, &session.session_id).await;
            let why = if e.kind() == std::io::ErrorKind::NotFound {
                format!(
                    "{} is gone from your PATH: {}",
                    plugin::PLUGIN,
                    plugin::INSTALL
                )
            } else {
                format!("running {}: {e}", plugin::PLUGIN)
            };
            Err(Failure::new(FAILED, why).into())
        }
    }
}

fn query(q: &str) -> String {
    format!(
        "/targets?q={}",
        form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>()
    )
}

/// The one instance `ask.target` names: by id or exact Name tag, else every partial
/// match; several → a pick list (or the first with `--first`).
async fn resolve(api: &Api, ask: &SshAsk) -> Result<TargetView> {
    let found: TargetsView = api.get(&query(&ask.target)).await?;
    let in_profile = |t: &TargetView| {
        ask.profile
            .as_ref()
            .is_none_or(|p| t.profiles.iter().any(|have| have == p))
    };
    let exact: Vec<TargetView> = found
        .targets
        .iter()
        .filter(|t| t.instance_id == ask.target || t.name.as_deref() == Some(&ask.target))
        .filter(|t| in_profile(t))
        .cloned()
        .collect();
    let mut candidates = if exact.is_empty() {
        found.targets.into_iter().filter(in_profile).collect()
    } else {
        exact
    };
    match candidates.len() {
        0 => Err(nothing_matches(api, ask).await),
        1 => Ok(candidates.remove(0)),
        _ if ask.first => Ok(candidates.remove(0)),
        _ => pick(candidates, &ask.target),
    }
}

fn describe(t: &TargetView) -> String {
    format!(
        "{} ({}, account {}, {}, {})",
        t.name.as_deref().unwrap_or("-"),
        t.instance_id,
        t.account_id,
        t.region,
        t.ping_status.as_deref().unwrap_or("no agent")
    )
}

/// A numbered pick list on a terminal; elsewhere, the list and how to choose.
fn pick(mut candidates: Vec<TargetView>, asked: &str) -> Result<TargetView> {
    let listed: Vec<String> = candidates
        .iter()
        .enumerate()
        .map(|(i, t)| format!("  {}. {}", i + 1, describe(t)))
        .collect();
    if !std::io::stdin().is_terminal() {
        return Err(Failure::new(
            REFUSED,
            format!(
                "{} instances match `{asked}`:\n{}\ngive an instance id, or --first",
                candidates.len(),
                listed.join("\n")
            ),
        )
        .into());
    }
    eprintln!(
        "{} instances match `{asked}`:\n{}",
        candidates.len(),
        listed.join("\n")
    );
    eprint!("Which one (1-{})? ", candidates.len());
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    match line.trim().parse::<usize>() {
        Ok(n) if (1..=candidates.len()).contains(&n) => Ok(candidates.remove(n - 1)),
        _ => Err(Failure::new(
            REFUSED,
            format!("`{}` is not one of 1-{}", line.trim(), candidates.len()),
        )
        .into()),
    }
}

/// Says what does exist when nothing matches.
async fn nothing_matches(api: &Api, ask: &SshAsk) -> anyhow::Error {
    let all: Result<TargetsView> = api.get("/targets").await;
    let names: Vec<String> = match all {
        Ok(all) => all
            .targets
            .iter()
            .map(|t| t.name.clone().unwrap_or_else(|| t.instance_id.clone()))
            .collect(),
        Err(e) => return e,
    };
    let scope = ask
        .profile
        .as_ref()
        .map(|p| format!(" under profile {p}"))
        .unwrap_or_default();
    let message = if names.is_empty() {
        "you can reach no instance: no profile you may request covers one (jitgate profiles)"
            .to_owned()
    } else {
        let shown = names
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        let more = if names.len() > 10 { ", ..." } else { "" };
        format!(
            "no instance you can reach{scope} matches `{}`; you can reach: {shown}{more} \
             (jitgate targets)",
            ask.target
        )
    };
    Failure::new(REFUSED, message).into()
}

/// The caller's active grant on `target` that fits `--as` and `--profile`.
async fn grant_for(api: &Api, target: &TargetView, ask: &SshAsk) -> Result<Option<String>> {
    for id in &target.grants {
        if ask.os_user.is_none() && ask.profile.is_none() {
            return Ok(Some(id.clone()));
        }
        let grant: RequestView = api.get(&format!("/requests/{id}")).await?;
        let fits = ask.os_user.as_ref().is_none_or(|u| *u == grant.os_user)
            && ask.profile.as_ref().is_none_or(|p| *p == grant.profile);
        if fits && grant.state == RequestState::Active {
            return Ok(Some(id.clone()));
        }
    }
    Ok(None)
}

/// No grant reaches the target: ask for one (and wait for it) when the reason is known
/// or can be asked for; else say exactly what to run.
async fn request_grant(
    api: &Api,
    target: &TargetView,
    label: &str,
    ask: &SshAsk,
) -> Result<String> {
    let profile = match (&ask.profile, target.profiles.as_slice()) {
        (Some(p), _) => p.clone(),
        (None, [only]) => only.clone(),
        (None, several) => {
            return Err(Failure::new(
                REFUSED,
                format!(
                    "no active grant of yours reaches {label}; several profiles cover it ({}): \
                     say which with --profile",
                    several.join(", ")
                ),
            )
            .into());
        }
    };
    let os_user = match &ask.os_user {
        Some(u) => u.clone(),
        None => only_os_user(api, &profile).await?.ok_or_else(|| {
            Failure::new(
                REFUSED,
                format!(
                    "no active grant of yours reaches {label}; say as which OS user with --as \
                     (jitgate profiles lists them)"
                ),
            )
        })?,
    };
    let command = format!(
        "jitgate request {profile} --as {os_user} --for {} --account {} --reason '...' --wait",
        ask.duration, target.account_id
    );
    let reason = match &ask.reason {
        Some(r) => r.clone(),
        None if std::io::stdin().is_terminal() => {
            eprint!(
                "No active grant of yours reaches {label}. Ask for {} under {profile} as \
                 {os_user}? Say why (empty to stop): ",
                ask.duration
            );
            std::io::stderr().flush()?;
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            let line = line.trim().to_owned();
            if line.is_empty() {
                return Err(Failure::new(REFUSED, "nothing requested").into());
            }
            line
        }
        None => {
            return Err(Failure::new(
                REFUSED,
                format!(
                    "no active grant of yours reaches {label} ({}, account {}); run: {command} \
                     (or give jitgate ssh --reason to ask for it)",
                    target.instance_id, target.account_id
                ),
            )
            .into());
        }
    };
    let created: RequestView = api
        .post(
            "/requests",
            &NewRequest {
                profile,
                account_id: target.account_id.clone(),
                os_user,
                duration: ask.duration.clone(),
                reason,
                ticket: None,
            },
        )
        .await?;
    eprintln!("{}", render::summary(&created));
    let done = commands::wait(api, &created.id, std::io::stderr().is_terminal()).await?;
    if done.state != RequestState::Active {
        return Err(Failure::new(WILL_NOT_BE_ACTIVE, render::why_not_active(&done)).into());
    }
    Ok(done.id)
}

/// The profile's only OS user, when it allows just one.
async fn only_os_user(api: &Api, profile: &str) -> Result<Option<String>> {
    let profiles: Vec<jitgate_proto::ProfileView> = api.get("/profiles").await?;
    Ok(profiles
        .into_iter()
        .find(|p| p.name == profile)
        .and_then(|p| match p.allowed_os_users.as_slice() {
            [only] => Some(only.clone()),
            _ => None,
        }))
}
