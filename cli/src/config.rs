//! Where the CLI keeps what it knows: `config.toml` (the server's URL; everything else
//! it learns from the server) and `credentials.json` (the API token from `jitgate login`,
//! readable by its owner only), in `~/.config/jitgate` (or `$XDG_CONFIG_HOME/jitgate`).
//! Both are written whole to a temporary file and renamed into place, so a crash or a
//! second `jitgate` never leaves half a file.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::exit::{Failure, NOT_LOGGED_IN};

/// `config.toml`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Config {
    /// The jitgate server's base URL.
    pub server: Option<String>,
}

/// `credentials.json`: the token of one server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Credentials {
    pub server: String,
    pub token: String,
    pub token_id: String,
    pub expires_at: DateTime<Utc>,
}

/// The CLI's directory.
pub struct Dir(PathBuf);

impl Dir {
    /// `explicit` if given, else `$XDG_CONFIG_HOME/jitgate`, else `~/.config/jitgate`.
    pub fn locate(explicit: Option<PathBuf>) -> Result<Dir> {
        if let Some(dir) = explicit {
            return Ok(Dir(dir));
        }
        if let Some(xdg) = std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
            return Ok(Dir(PathBuf::from(xdg).join("jitgate")));
        }
        let home = std::env::var_os("HOME")
            .filter(|v| !v.is_empty())
            .context("HOME is not set: say where to keep the config with JITGATE_CONFIG_DIR")?;
        Ok(Dir(PathBuf::from(home).join(".config").join("jitgate")))
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.0
    }

    fn config_path(&self) -> PathBuf {
        self.0.join("config.toml")
    }

    pub fn credentials_path(&self) -> PathBuf {
        self.0.join("credentials.json")
    }

    pub fn config(&self) -> Result<Config> {
        let path = self.config_path();
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text)
                .with_context(|| format!("{} is not valid: fix it or delete it", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    pub fn save_config(&self, config: &Config) -> Result<()> {
        let text = toml::to_string(config)?;
        write_private(&self.0, &self.config_path(), text.as_bytes())
    }

    /// The saved token for `server`, if `jitgate login` made one for it.
    pub fn credentials(&self, server: &str) -> Result<Option<Credentials>> {
        let path = self.credentials_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let saved: Credentials = serde_json::from_str(&text).with_context(|| {
            format!("{} is not valid: run `jitgate login` again", path.display())
        })?;
        Ok((saved.server == server).then_some(saved))
    }

    /// The token for `server`, or the error that says to log in.
    pub fn token_for(&self, server: &str) -> Result<Credentials> {
        match self.credentials(server)? {
            Some(saved) => Ok(saved),
            None => Err(Failure::new(
                NOT_LOGGED_IN,
                format!("not logged in to {server}; run: jitgate login --server {server}"),
            )
            .into()),
        }
    }

    pub fn save_credentials(&self, credentials: &Credentials) -> Result<()> {
        let text = serde_json::to_vec_pretty(credentials)?;
        write_private(&self.0, &self.credentials_path(), &text)
    }

    pub fn forget_credentials(&self) -> Result<()> {
        match std::fs::remove_file(self.credentials_path()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Writes `bytes` to `path` in `dir` through a temporary file readable by its owner only
/// (mode 0600 from the start, never widened), renamed into place.
pub fn write_private(dir: &Path, path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    restrict_dir(dir)?;
    // tempfile creates its files with mode 0600.
    let mut file = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("writing in {}", dir.display()))?;
    file.write_all(bytes)?;
    file.as_file().sync_all()?;
    file.persist(path)
        .with_context(|| format!("saving {}", path.display()))?;
    Ok(())
}

#[cfg(unix)]
fn restrict_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir)?.permissions().mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("making {} private", dir.display()))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn restrict_dir(_: &Path) -> Result<()> {
    Ok(())
}

/// The server to talk to: `--server` / `JITGATE_SERVER`, else the saved one.
pub fn server(explicit: Option<&str>, config: &Config) -> Result<String> {
    let Some(server) = explicit.or(config.server.as_deref()) else {
        return Err(Failure::new(
            NOT_LOGGED_IN,
            "no jitgate server configured; run: jitgate login --server https://jitgate.example.com",
        )
        .into());
    };
    let server = server.trim().trim_end_matches('/').to_owned();
    if server.starts_with("https://") {
        return Ok(server);
    }
    let Some(rest) = server.strip_prefix("http://") else {
        bail!("the server `{server}` is not a URL: give it as https://jitgate.example.com");
    };
    // Plain http would send the token in the clear: only to this machine.
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let loopback = host == "localhost"
        || host.starts_with("localhost:")
        || host == "127.0.0.1"
        || host.starts_with("127.0.0.1:")
        || host.starts_with("[::1]");
    if !loopback {
        bail!(
            "the server `{server}` is plain http: jitgate sends your token only over https \
             (or to this machine); give https://{rest}"
        );
    }
    Ok(server)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_goes_over_https_or_stays_on_this_machine() {
        let ok = |url: &str| server(Some(url), &Config::default());
        assert_eq!(
            ok("https://jitgate.example.com/").unwrap(),
            "https://jitgate.example.com"
        );
        assert!(ok("http://127.0.0.1:8080").is_ok());
        assert!(ok("http://localhost:8080").is_ok());
        assert!(ok("http://[::1]:8080").is_ok());
        let refused = ok("http://jitgate.example.com").unwrap_err().to_string();
        assert!(refused.contains("https://jitgate.example.com"), "{refused}");
        assert!(ok("http://127.0.0.1.evil.example").is_err());
        assert!(ok("jitgate.example.com").is_err());
    }
}
