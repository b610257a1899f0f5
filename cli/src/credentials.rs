//! The role credentials the Session Manager plugin resolves itself. The plugin signs its
//! data channel and resumes sessions with credentials it resolves from a profile; static
//! keys would stop working when they expire after an hour (session-manager-plugin#136).
//! So `jitgate ssh` writes a profile into a config file of jitgate's own (never the
//! person's `~/.aws/config`), whose `credential_process` is `jitgate credentials ...`,
//! which answers fresh role credentials from the cached IdC sign-in every time.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::aws::{self, RoleAsk};
use crate::config::{Dir, write_private};
use crate::sso_cache::RefreshLock;
use crate::sso_login::{self, SsoSite};

/// The AWS config file jitgate owns.
pub fn config_file(dir: &Dir) -> PathBuf {
    dir.path().join("aws-config")
}

/// The profile of one account and role in that file.
pub fn profile_name(ask: &RoleAsk<'_>) -> String {
    format!("jitgate-{}-{}", ask.account_id, ask.role_name)
}

/// A word of `credential_process`, single-quoted when it needs quoting: the plugin's Go
/// SDK runs the line with `sh -c` and botocore splits it like a POSIX shell, and inside
/// single quotes neither expands anything (`$`, backticks), whatever the server sent.
fn word(text: &str) -> String {
    if !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@+,".contains(c))
    {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// Refuses what could break the profile's lines or is not what AWS names look like.
fn check_profile_inputs(site: &SsoSite, ask: &RoleAsk<'_>, region: &str) -> Result<()> {
    let plain = |v: &str| !v.is_empty() && !v.chars().any(|c| c.is_control() || c.is_whitespace());
    let region_ok = !region.is_empty()
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let account_ok =
        ask.account_id.len() == 12 && ask.account_id.chars().all(|c| c.is_ascii_digit());
    let role_ok = ask.role_name.len() <= 64
        && ask
            .role_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
    let session_ok = site.session_name.as_deref().is_none_or(plain);
    if !(region_ok
        && account_ok
        && role_ok
        && session_ok
        && plain(&site.start_url)
        && plain(&site.region))
    {
        anyhow::bail!(
            "the server described the connection with values that are not AWS names \
             (region `{region}`, account `{}`, role `{}`): ask the jitgate administrator to \
             check [aws] and the profiles",
            ask.account_id.escape_debug(),
            ask.role_name.escape_debug()
        );
    }
    Ok(())
}

/// Writes the profile for `ask` (keeping the file's other profiles) and answers its name.
pub fn write_profile(dir: &Dir, site: &SsoSite, ask: &RoleAsk<'_>, region: &str) -> Result<String> {
    check_profile_inputs(site, ask, region)?;
    let exe = std::env::current_exe().context("finding the jitgate binary for the profile")?;
    let name = profile_name(ask);
    let mut process = vec![
        word(&exe.to_string_lossy()),
        "credentials".into(),
        "--account".into(),
        word(ask.account_id),
        "--role-name".into(),
        word(ask.role_name),
        "--start-url".into(),
        word(&site.start_url),
        "--sso-region".into(),
        word(&site.region),
    ];
    if let Some(session) = &site.session_name {
        process.extend(["--sso-session".into(), word(session)]);
    }
    let mut section = String::new();
    writeln!(section, "[profile {name}]")?;
    writeln!(section, "region = {region}")?;
    writeln!(section, "credential_process = {}", process.join(" "))?;
    let path = config_file(dir);
    // Two `jitgate ssh` at once must not lose each other's profile.
    std::fs::create_dir_all(dir.path())?;
    let _lock = RefreshLock::take(&dir.path().join("aws-config.lock"))?;
    let existing = std::fs::read_to_string(&path).unwrap_or_default();
    let mut text = String::from(
        "# Written by jitgate ssh: one profile per account and role, for the\n# Session Manager plugin. Edits are overwritten.\n",
    );
    for block in existing.split("\n[").skip(1) {
        if !block.starts_with(&format!("profile {name}]")) {
            text.push('[');
            text.push_str(block.trim_end());
            text.push_str("\n\n");
        }
    }
    text.push_str(&section);
    write_private(dir.path(), &path, text.as_bytes())?;
    Ok(name)
}

/// `jitgate credentials`: prints role credentials as `credential_process` wants them.
pub async fn print(site: &SsoSite, ask: &RoleAsk<'_>) -> Result<()> {
    let token = sso_login::access_token(site, None, crate::now()).await?;
    let creds = aws::role_credentials(ask, &token).await?;
    println!("{}", serde_json::to_string(&creds)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_only_when_a_shell_would_split_them() {
        assert_eq!(word("/usr/bin/jitgate"), "/usr/bin/jitgate");
        assert_eq!(
            word("https://d-1.awsapps.com/start"),
            "https://d-1.awsapps.com/start"
        );
        assert_eq!(word("/home/a b/jitgate"), "'/home/a b/jitgate'");
        assert_eq!(
            word("https://x/$(touch pwned)"),
            "'https://x/$(touch pwned)'"
        );
        assert_eq!(word("it's"), "'it'\\''s'");
    }

    #[test]
    fn a_profile_replaces_its_old_self_and_keeps_the_others() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::locate(Some(tmp.path().to_owned())).unwrap();
        let site = SsoSite {
            start_url: "https://d-1.awsapps.com/start".into(),
            region: "eu-west-1".into(),
            session_name: None,
        };
        let ask = |account| RoleAsk {
            sso_region: "eu-west-1",
            account_id: account,
            role_name: "JitSsm",
        };
        write_profile(&dir, &site, &ask("111111111111"), "eu-west-1").unwrap();
        write_profile(&dir, &site, &ask("222222222222"), "us-east-1").unwrap();
        write_profile(&dir, &site, &ask("111111111111"), "eu-central-1").unwrap();
        let text = std::fs::read_to_string(config_file(&dir)).unwrap();
        assert_eq!(
            text.matches("[profile jitgate-111111111111-JitSsm]")
                .count(),
            1
        );
        assert_eq!(
            text.matches("[profile jitgate-222222222222-JitSsm]")
                .count(),
            1
        );
        assert!(text.contains("region = eu-central-1"), "{text}");
        assert!(!text.contains("region = eu-west-1\n"), "{text}");
        assert!(text.contains("credentials --account 111111111111 --role-name JitSsm"));
    }
}
