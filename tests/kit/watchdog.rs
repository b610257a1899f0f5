//! Makes sure nothing the harness starts outlives the test process, even when that process
//! is killed with SIGKILL or a panic skips every `Drop` (a `static` is never dropped).
//!
//! Each started process gets a small `sh` watchdog in a session of its own (so a Ctrl-C
//! to the test's process group does not take the watchdog down before it has cleaned up).
//! It waits for the test process to exit, then signals the child and removes its files.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result};

/// `$1` test process, `$2` child, `$3` signal, `$4` directory to remove ("" for none).
/// The child's start time (field 22 of /proc/PID/stat) is recorded first and compared
/// before signalling, so a recycled pid is never killed. `tail --pid` waits without forking
/// every second; the `kill -0` loop is the fallback for a tail that lacks `--pid`.
const SCRIPT: &str = r#"
parent=$1 child=$2 sig=$3 dir=$4
started=$(cut -d' ' -f22 "/proc/$child/stat" 2>/dev/null)
tail --pid="$parent" -f /dev/null 2>/dev/null ||
  while kill -0 "$parent" 2>/dev/null; do sleep 1; done
if [ -n "$started" ] && [ "$(cut -d' ' -f22 "/proc/$child/stat" 2>/dev/null)" = "$started" ]; then
  kill -"$sig" "$child" 2>/dev/null
  i=0
  while [ -e "/proc/$child" ] && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i+1)); done
fi
[ -z "$dir" ] || rm -rf "$dir"
"#;

/// Once this test process has exited, sends `signal` (e.g. `KILL`, `TERM`, `QUIT`) to
/// `child_pid` and then removes `remove_dir`, if given.
pub fn stop_when_test_exits(child_pid: u32, signal: &str, remove_dir: Option<&Path>) -> Result<()> {
    let dir = remove_dir
        .map(|d| d.as_os_str().to_owned())
        .unwrap_or_default();
    Command::new("setsid")
        .args(["sh", "-c", SCRIPT, "jitgate-watchdog"])
        .arg(std::process::id().to_string())
        .arg(child_pid.to_string())
        .arg(signal)
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting the watchdog (setsid sh)")?;
    Ok(())
}
