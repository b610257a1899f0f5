//! `jitgate`: just-in-time shell access from the terminal. It talks to the jitgate
//! server's JSON API with a token from `jitgate login`; see `jitgate --help` (and its
//! exit codes) and the README.

mod api;
mod args;
mod aws;
mod commands;
mod config;
mod credentials;
mod exit;
mod login;
mod plugin;
mod render;
mod ssh;
mod sso_cache;
mod sso_login;

use std::process::ExitCode;

use anyhow::Result;
use chrono::{DateTime, Utc};
use clap::{CommandFactory, Parser};

use args::{Cli, Command};
use config::Dir;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("jitgate: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("jitgate: {e:#}");
            exit::code_of(&e)
        }
    }
}

/// The time now: the one place the CLI reads the clock.
#[allow(clippy::disallowed_methods)]
fn now() -> DateTime<Utc> {
    Utc::now()
}

async fn run(cli: Cli) -> Result<()> {
    if let Command::Completions { shell } = cli.command {
        clap_complete::generate(
            shell,
            &mut Cli::command(),
            "jitgate",
            &mut std::io::stdout(),
        );
        return Ok(());
    }
    let dir = Dir::locate(cli.config_dir)?;
    // Run by the Session Manager plugin, from the profile alone: no server involved.
    if let Command::Credentials {
        account,
        role_name,
        start_url,
        sso_region,
        sso_session,
    } = cli.command
    {
        let site = sso_login::SsoSite {
            start_url,
            region: sso_region,
            session_name: sso_session,
        };
        let ask = aws::RoleAsk {
            sso_region: &site.region,
            account_id: &account,
            role_name: &role_name,
        };
        return credentials::print(&site, &ask).await;
    }
    let config = dir.config()?;
    let server = config::server(cli.server.as_deref(), &config)?;
    let json = cli.json;
    match cli.command {
        Command::Login { no_browser } => commands::login(&dir, &server, !no_browser, json).await,
        Command::Logout => commands::logout(&dir, &server).await,
        command => {
            let saved = dir.token_for(&server)?;
            let api = api::Api::new(&server, Some(saved.token))?;
            if let Command::Ssh {
                target,
                os_user,
                profile,
                first,
                no_browser,
                use_device_code,
                reason,
                duration,
            } = command
            {
                let ask = ssh::SshAsk {
                    target,
                    os_user,
                    profile,
                    first,
                    sign_in: sso_login::SignIn {
                        open_browser: !no_browser,
                        device_code: use_device_code,
                    },
                    reason,
                    duration,
                };
                return ssh::ssh(&api, &dir, ask).await;
            }
            dispatch(&api, command, json).await
        }
    }
}

async fn dispatch(api: &api::Api, command: Command, json: bool) -> Result<()> {
    let none = serde_json::json!({});
    match command {
        Command::Profiles => commands::profiles(api, json).await,
        Command::Status => commands::status(api, json, now()).await,
        Command::Targets { query } => commands::targets(api, query.as_deref(), json).await,
        Command::Request {
            profile,
            os_user,
            duration,
            reason,
            ticket,
            account,
            wait,
        } => {
            let asked = commands::Asked {
                profile,
                os_user,
                duration,
                reason,
                ticket,
                account,
                wait,
            };
            commands::request(api, asked, json).await
        }
        Command::Approve { id } => commands::act(api, &id, "approve", &none, json).await,
        Command::Deny { id, reason } => {
            let body = commands::comment(Some(reason));
            commands::act(api, &id, "deny", &body, json).await
        }
        Command::Extend {
            id,
            duration,
            reason,
        } => {
            let body = commands::extension(duration, reason);
            commands::act(api, &id, "extend", &body, json).await
        }
        Command::Revoke { id, reason } => commands::revoke(api, &id, reason, json).await,
        Command::Login { .. }
        | Command::Logout
        | Command::Completions { .. }
        | Command::Ssh { .. }
        | Command::Credentials { .. } => Ok(()),
    }
}
