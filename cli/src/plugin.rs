//! Running AWS's `session-manager-plugin` exactly as the AWS CLI does
//! (awscli `customizations/sessionmanager.py`): `--version` first; the StartSession
//! answer in `AWS_SSM_START_SESSION_RESPONSE` for versions above 1.2.497.0 (older ones
//! take the JSON itself); six arguments `[answer, region, "StartSession", profile,
//! parameters, endpoint]`; Ctrl-C, Ctrl-\ and Ctrl-Z left to the plugin while it runs.

use std::process::{ExitStatus, Stdio};

use anyhow::Result;

use crate::aws::{SessionParameters, StartedSession};
use crate::exit::{FAILED, Failure};

pub const PLUGIN: &str = "session-manager-plugin";
const RESPONSE_ENV: &str = "AWS_SSM_START_SESSION_RESPONSE";
/// The last version that takes the answer as an argument instead of by environment.
const LAST_WITHOUT_ENV_HANDOFF: [u64; 4] = [1, 2, 497, 0];
/// The first version that signs the data channel and resumes with credentials it
/// resolves itself (the profile's `credential_process`).
const FIRST_SIGNING: [u64; 4] = [1, 2, 688, 0];

pub const INSTALL: &str = "install AWS's Session Manager plugin: \
     https://docs.aws.amazon.com/systems-manager/latest/userguide/session-manager-working-with-install-plugin.html";

/// An installed plugin and its version.
#[derive(Debug)]
pub struct Plugin {
    pub version: [u64; 4],
}

/// `1.2.707.0` (or fewer parts, the rest zero), as the AWS CLI compares versions.
fn parse_version(text: &str) -> Option<[u64; 4]> {
    let parts: Vec<u64> = text
        .trim()
        .split('.')
        .map(|p| p.parse::<u64>().ok())
        .collect::<Option<_>>()?;
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut version = [0; 4];
    for (slot, part) in version.iter_mut().zip(parts) {
        *slot = part;
    }
    Some(version)
}

/// `session-manager-plugin --version`; a missing plugin is an error that says how to
/// install it.
pub async fn find() -> Result<Plugin> {
    let out = tokio::process::Command::new(PLUGIN)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .await;
    let out = match out {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(
                Failure::new(FAILED, format!("{PLUGIN} is not on your PATH: {INSTALL}")).into(),
            );
        }
        Err(e) => return Err(Failure::new(FAILED, format!("running {PLUGIN}: {e}")).into()),
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let version = parse_version(&text).ok_or_else(|| {
        Failure::new(
            FAILED,
            format!(
                "{PLUGIN} --version printed `{}`, not a version: reinstall it ({INSTALL})",
                text.trim()
            ),
        )
    })?;
    if version < FIRST_SIGNING {
        eprintln!(
            "jitgate: {PLUGIN} {} is old: versions before 1.2.688.0 do not sign the session's \
             data channel and lose long sessions at the credentials' expiry; {INSTALL}",
            text.trim()
        );
    }
    Ok(Plugin { version })
}

/// What the plugin is given.
pub struct Handoff<'a> {
    pub session: &'a StartedSession,
    pub region: &'a str,
    pub profile: &'a str,
    pub parameters: &'a SessionParameters,
    pub endpoint: &'a str,
    /// Environment the plugin gets on top of this process's (the profile's config file).
    pub env: Vec<(&'static str, String)>,
    /// Environment removed: static keys would win over the refreshable profile.
    pub env_remove: &'static [&'static str],
}

/// Runs the plugin to the end; its exit status is the session's.
pub async fn run(plugin: &Plugin, handoff: Handoff<'_>) -> Result<std::io::Result<ExitStatus>> {
    let answer = serde_json::to_string(handoff.session)?;
    let mut command = tokio::process::Command::new(PLUGIN);
    let first = if plugin.version > LAST_WITHOUT_ENV_HANDOFF {
        command.env(RESPONSE_ENV, &answer);
        RESPONSE_ENV.to_owned()
    } else {
        answer
    };
    command
        .arg(first)
        .arg(handoff.region)
        .arg("StartSession")
        .arg(handoff.profile)
        .arg(serde_json::to_string(handoff.parameters)?)
        .arg(handoff.endpoint);
    for name in handoff.env_remove {
        command.env_remove(name);
    }
    for (name, value) in &handoff.env {
        command.env(name, value);
    }
    // Keyboard signals reach the whole foreground group: the plugin forwards them to
    // the remote shell, and this process must outlive them to clean up after it.
    let _held = hold_keyboard_signals();
    Ok(command.status().await)
}

/// Catches SIGINT, SIGQUIT and SIGTSTP while held (doing nothing with them), so they do
/// not stop this process; the plugin sets up its own handling after exec.
fn hold_keyboard_signals() -> Vec<tokio::signal::unix::Signal> {
    use tokio::signal::unix::{SignalKind, signal};
    [
        SignalKind::interrupt(),
        SignalKind::quit(),
        SignalKind::from_raw(libc::SIGTSTP),
    ]
    .into_iter()
    .filter_map(|kind| signal(kind).ok())
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_as_the_aws_cli_compares_them() {
        assert_eq!(parse_version("1.2.707.0\n"), Some([1, 2, 707, 0]));
        assert_eq!(parse_version("1.2"), Some([1, 2, 0, 0]));
        assert_eq!(parse_version("1.2.3.4.5"), None);
        assert_eq!(parse_version("banana"), None);
        assert!(parse_version("1.2.497.0").unwrap() <= LAST_WITHOUT_ENV_HANDOFF);
        assert!(parse_version("1.2.498.0").unwrap() > LAST_WITHOUT_ENV_HANDOFF);
        assert!(parse_version("1.10.0.0").unwrap() > FIRST_SIGNING);
    }
}
