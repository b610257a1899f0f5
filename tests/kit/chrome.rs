//! Headless Chromium for the browser tests: Debian's `chromedriver` as a process on a free
//! port, and browser sessions on it (fantoccini WebDriver clients), each with a profile
//! directory of its own, so each person has their own cookies.
//!
//! Chromium runs as root here, so without its sandbox, and with everything that would reach
//! for the internet turned off (this machine's closed network refuses those connections).
//! A test drives pages with [`Browser`]'s helpers, which wait for what they look for
//! (polling, bounded) instead of sleeping.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::process::{Child, Command};

use super::{free_port, last_lines, wait_for, wait_until, watchdog};

/// Debian's `chromium` and `chromium-driver` (scripts/install-deps.sh installs them).
pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an element may take to show up on a page.
pub const ELEMENT_TIMEOUT: Duration = Duration::from_secs(20);
/// How often waits look again.
const POLL: Duration = Duration::from_millis(100);
/// The browser window, also the size of screenshots.
pub const WINDOW: (u32, u32) = (1280, 900);

/// The flags Chromium needs here: as root (no sandbox), headless, and nothing that phones
/// home (`--disable-background-networking` and friends: otherwise the closed network
/// refuses its connections, many at a time).
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
];

/// A running chromedriver; killed on drop (and by the watchdog if the test process dies).
pub struct ChromeDriver {
    child: Child,
    url: String,
    dir: TempDir,
}

impl ChromeDriver {
    /// Starts chromedriver on a free loopback port and waits until it takes sessions.
    pub async fn start() -> Result<ChromeDriver> {
        for program in [CHROMIUM, CHROMEDRIVER] {
            if !Path::new(program).exists() {
                bail!(
                    "no {program}: the browser tests need Debian's chromium and chromium-driver \
                     (scripts/install-deps.sh installs them; make test runs it)"
                );
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("jitgate-chromedriver-")
            .tempdir()?;
        let port = free_port()?;
        let log = File::create(dir.path().join("output.log"))?;
        let mut child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {CHROMEDRIVER}"))?;
        if let Some(pid) = child.id() {
            watchdog::stop_when_test_exits(pid, "TERM", Some(dir.path()))?;
        }
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?;
        let ready = wait_until(
            "chromedriver to take sessions",
            STARTUP_TIMEOUT,
            POLL,
            async || {
                if let Some(status) = child.try_wait()? {
                    bail!("chromedriver exited: {status}");
                }
                let status: Value = http
                    .get(format!("{url}/status"))
                    .send()
                    .await?
                    .json()
                    .await?;
                Ok(status["value"]["ready"] == json!(true))
            },
        )
        .await;
        let driver = ChromeDriver { child, url, dir };
        if let Err(e) = ready {
            bail!("{e:#}; chromedriver said:\n{}", driver.log());
        }
        Ok(driver)
    }

    /// The last lines chromedriver (and the browsers it started) printed.
    pub fn log(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("output.log")).unwrap_or_default();
        last_lines(&text, 40)
    }

    /// A new browser: a Chromium of its own, with an empty profile (no cookies).
    pub async fn session(&self) -> Result<Browser> {
        let profile = tempfile::Builder::new()
            .prefix("jitgate-chromium-")
            .tempdir()?;
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| f.to_string()).collect();
        args.push(format!("--window-size={},{}", WINDOW.0, WINDOW.1));
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
        });
        let Value::Object(capabilities) = capabilities else {
            bail!("capabilities are a JSON object");
        };
        let driver_pid = self.child.id().context("chromedriver has exited")?;
        let before = children_of(driver_pid);
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .with_context(|| format!("starting Chromium; chromedriver said:\n{}", self.log()))?;
        // chromedriver leaves its browsers running when it is killed: the watchdog ends
        // this one (by its pid: the new child of our chromedriver) when the test exits.
        for pid in children_of(driver_pid) {
            if !before.contains(&pid) {
                watchdog::stop_when_test_exits(pid, "TERM", None)?;
            }
        }
        Ok(Browser {
            client,
            _profile: profile,
        })
    }
}

/// The pids whose parent is `parent`.
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            // Field 4 of /proc/PID/stat, counted after the command name's closing paren.
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    let rest = &stat[stat.rfind(')')? + 1..];
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(parent)
        })
        .collect()
}

/// One person's browser. Call [`Browser::close`] at the end; a browser dropped without it
/// is ended when the test process exits.
pub struct Browser {
    client: Client,
    _profile: TempDir,
}

impl Browser {
    /// The WebDriver client, for what the helpers below do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Opens `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) -> Result<()> {
        self.client
            .goto(url)
            .await
            .with_context(|| format!("opening {url}"))
    }

    /// The address of the page shown now.
    pub async fn url(&self) -> Result<reqwest::Url> {
        Ok(self.client.current_url().await?)
    }

    /// Reloads the page.
    pub async fn reload(&self) -> Result<()> {
        Ok(self.client.refresh().await?)
    }

    /// The first element matching the CSS `selector`, once there is one.
    pub async fn find(&self, selector: &str) -> Result<Element> {
        let found = self
            .client
            .wait()
            .at_most(ELEMENT_TIMEOUT)
            .every(POLL)
            .for_element(Locator::Css(selector))
            .await;
        match found {
            Ok(element) => Ok(element),
            Err(e) => {
                let at = self.url().await.map(|u| u.to_string()).unwrap_or_default();
                let page = self.text("body").await.unwrap_or_default();
                bail!(
                    "no `{selector}` on {at} within {ELEMENT_TIMEOUT:?} ({e}); the page says:\n{page}"
                )
            }
        }
    }

    /// Clicks the element matching `selector`.
    pub async fn click(&self, selector: &str) -> Result<()> {
        self.find(selector)
            .await?
            .click()
            .await
            .with_context(|| format!("clicking `{selector}`"))
    }

    /// Types `text` into the (emptied) field matching `selector`.
    pub async fn fill(&self, selector: &str, text: &str) -> Result<()> {
        let field = self.find(selector).await?;
        field.clear().await?;
        field
            .send_keys(text)
            .await
            .with_context(|| format!("typing into `{selector}`"))
    }

    /// Chooses the option with `value` in the `<select>` matching `selector`.
    pub async fn select(&self, selector: &str, value: &str) -> Result<()> {
        self.find(selector)
            .await?
            .select_by_value(value)
            .await
            .with_context(|| format!("choosing {value} in `{selector}`"))
    }

    /// The rendered text of the element matching `selector`.
    pub async fn text(&self, selector: &str) -> Result<String> {
        Ok(self
            .client
            .find(Locator::Css(selector))
            .await?
            .text()
            .await?)
    }

    /// Waits until the element matching `selector` shows text for which `check` holds;
    /// returns that text.
    pub async fn wait_text(
        &self,
        selector: &str,
        what: &str,
        check: impl Fn(&str) -> bool,
    ) -> Result<String> {
        wait_for(what, ELEMENT_TIMEOUT, POLL, async || {
            let text = self.text(selector).await?;
            Ok(check(&text).then_some(text))
        })
        .await
    }

    /// Reloads the page until the element matching `selector` shows text for which
    /// `check` holds (for pages that change on the server: no script refreshes them).
    pub async fn reload_until(
        &self,
        selector: &str,
        what: &str,
        timeout: Duration,
        check: impl Fn(&str) -> bool,
    ) -> Result<String> {
        let mut last = String::new();
        let found = wait_for(what, timeout, Duration::from_millis(250), async || {
            self.reload().await?;
            last = self.text(selector).await?;
            Ok(check(&last).then(|| last.clone()))
        })
        .await;
        found.with_context(|| format!("`{selector}` said last: {last}"))
    }

    /// Saves a PNG screenshot of the window as `name`.png in [`screenshots_dir`]; returns
    /// its path.
    pub async fn screenshot(&self, name: &str) -> Result<PathBuf> {
        let png = self
            .client
            .screenshot()
            .await
            .context("taking a screenshot")?;
        let dir = screenshots_dir();
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// Ends the session and its Chromium.
    pub async fn close(self) -> Result<()> {
        Ok(self.client.close().await?)
    }
}

/// Where screenshots go for review: `$CARGO_TARGET_DIR/screenshots` when that is an absolute
/// path, else `screenshots` in the target directory this test binary was built in.
pub fn screenshots_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from)
        && dir.is_absolute()
    {
        return dir.join("screenshots");
    }
    // The test binary is target/debug/deps/it-HASH.
    let target = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.to_path_buf()));
    target
        .unwrap_or_else(|| super::repo_root().join("target"))
        .join("screenshots")
}

/// The width and height of a PNG, if `bytes` is one.
pub fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if bytes.len() < 24 || !bytes.starts_with(SIGNATURE) || &bytes[12..16] != b"IHDR" {
        return None;
    }
    let width = u32::from_be_bytes(bytes[16..20].try_into().ok()?);
    let height = u32::from_be_bytes(bytes[20..24].try_into().ok()?);
    Some((width, height))
}
