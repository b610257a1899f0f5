//! Driving Debian's `wrk` from the benchmark: a Lua script per load shape, the run, and
//! the figures read back from its report.
//!
//! wrk is closed-loop: each connection sends its next request when the last one is
//! answered, so an unpaced run measures the server at saturation. A paced run spaces
//! the sends of each wrk thread on a clock (`delay()` in the script) so the offered
//! load is a fixed rate, which is what "p99 at 1,000 req/s" asks about. wrk starts the
//! latency clock when a request is written, so a send held back by a busy connection is
//! not counted as waiting: keep enough connections that one is always free.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// What to send.
pub struct Load<'a> {
    pub method: &'a str,
    /// JSON body, for a POST.
    pub body: Option<&'a str>,
    /// Bearer tokens used in turn, one per request.
    pub tokens: &'a [String],
}

/// How to send it.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub connections: u32,
    pub threads: u32,
    /// Requests per second over all threads; `None` for as fast as answers come.
    pub rate: Option<u32>,
    pub seconds: u32,
}

/// What wrk reported for one run.
#[derive(Debug)]
pub struct Figures {
    pub requests_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Responses by HTTP status, as counted by the script.
    pub statuses: Vec<(u16, u64)>,
}

impl Figures {
    /// Responses whose status is not 2xx.
    pub fn failures(&self) -> u64 {
        self.statuses
            .iter()
            .filter(|(s, _)| !(200..300).contains(s))
            .map(|(_, n)| n)
            .sum()
    }
}

/// Writes the Lua script for `load` sent in `shape` into `dir`.
pub fn script(dir: &Path, name: &str, load: &Load, shape: Shape) -> Result<PathBuf> {
    let tokens = load
        .tokens
        .iter()
        .map(|t| format!("\"{t}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let mut lua = format!(
        "local tokens = {{{tokens}}}\n\
         local next_token = 0\n\
         wrk.method = \"{}\"\n",
        load.method
    );
    if let Some(body) = load.body {
        lua.push_str("wrk.headers[\"Content-Type\"] = \"application/json\"\n");
        lua.push_str(&format!("wrk.body = [[{body}]]\n"));
    }
    lua.push_str(
        "request = function()\n\
         \x20 next_token = next_token % #tokens + 1\n\
         \x20 wrk.headers[\"Authorization\"] = \"Bearer \" .. tokens[next_token]\n\
         \x20 return wrk.format()\n\
         end\n\
         local threads = {}\n\
         setup = function(thread) table.insert(threads, thread) end\n\
         statuses = {}\n\
         response = function(status) statuses[status] = (statuses[status] or 0) + 1 end\n\
         done = function()\n\
         \x20 local total = {}\n\
         \x20 for _, t in ipairs(threads) do\n\
         \x20   for status, n in pairs(t:get(\"statuses\")) do total[status] = (total[status] or 0) + n end\n\
         \x20 end\n\
         \x20 for status, n in pairs(total) do io.write(string.format(\"status %d %d\\n\", status, n)) end\n\
         end\n",
    );
    if let Some(rate) = shape.rate {
        // Each wrk thread is its own Lua state: it paces its share of the rate on the
        // monotonic clock (LuaJIT's FFI; wrk's delay() takes whole milliseconds, the
        // schedule itself keeps fractions so the average rate is exact).
        let interval_ms = f64::from(shape.threads) * 1000.0 / f64::from(rate);
        lua.push_str(&format!(
            "local ffi = require(\"ffi\")\n\
             ffi.cdef[[ typedef struct {{ long tv_sec; long tv_nsec; }} jg_timespec; \
             int clock_gettime(int clock, jg_timespec *tp); ]]\n\
             local ts = ffi.new(\"jg_timespec\")\n\
             local function now_ms()\n\
             \x20 ffi.C.clock_gettime(1, ts)\n\
             \x20 return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6\n\
             end\n\
             local next_at = nil\n\
             delay = function()\n\
             \x20 local now = now_ms()\n\
             \x20 if next_at == nil then next_at = now end\n\
             \x20 next_at = next_at + {interval_ms}\n\
             \x20 local wait = next_at - now\n\
             \x20 if wait < 0 then return 0 end\n\
             \x20 return math.floor(wait)\n\
             end\n"
        ));
    }
    let path = dir.join(format!("{name}.lua"));
    std::fs::write(&path, lua)?;
    Ok(path)
}

/// Runs wrk with `script` against `url` and reads its figures.
pub async fn run(script: &Path, url: &str, shape: Shape) -> Result<Figures> {
    let output = tokio::process::Command::new("wrk")
        .arg(format!("-t{}", shape.threads))
        .arg(format!("-c{}", shape.connections))
        .arg(format!("-d{}s", shape.seconds))
        .arg("--latency")
        .arg("-s")
        .arg(script)
        .arg(url)
        .output()
        .await
        .context("running wrk (make bench installs Debian's wrk)")?;
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    if !output.status.success() {
        bail!(
            "wrk failed: {}\n{text}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    parse(&text).with_context(|| format!("reading wrk's report:\n{text}"))
}

fn parse(text: &str) -> Result<Figures> {
    let line_after = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim_start().strip_prefix(prefix))
            .map(str::trim)
            .with_context(|| format!("no `{prefix}` line"))
    };
    let requests_per_second = line_after("Requests/sec:")?.parse()?;
    let p50_ms = millis(line_after("50%")?)?;
    let p99_ms = millis(line_after("99%")?)?;
    let mut statuses = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("status ") {
            let (status, n) = rest.split_once(' ').context("status line")?;
            statuses.push((status.parse()?, n.trim().parse()?));
        }
    }
    statuses.sort_unstable();
    Ok(Figures {
        requests_per_second,
        p50_ms,
        p99_ms,
        statuses,
    })
}

/// wrk prints latencies as `850.00us`, `3.10ms` or `1.05s`.
fn millis(value: &str) -> Result<f64> {
    let (number, scale) = if let Some(n) = value.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = value.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = value.strip_suffix('s') {
        (n, 1000.0)
    } else {
        bail!("latency `{value}` has no unit")
    };
    Ok(number.parse::<f64>()? * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrk_report_with_status_counts() {
        let report = "Running 10s test @ http://127.0.0.1:1/api/v1/requests\n\
            \x20 Latency Distribution\n\
            \x20    50%  850.00us\n\
            \x20    75%    1.20ms\n\
            \x20    90%    2.00ms\n\
            \x20    99%    1.05s\n\
            \x20 10000 requests in 10.00s, 1.00MB read\n\
            Requests/sec:   1000.12\n\
            Transfer/sec:    100.00KB\n\
            status 201 9990\n\
            status 500 10\n";
        let f = parse(report).unwrap();
        assert!((f.p50_ms - 0.85).abs() < 1e-9);
        assert!((f.p99_ms - 1050.0).abs() < 1e-9);
        assert!((f.requests_per_second - 1000.12).abs() < 1e-9);
        assert_eq!(f.statuses, vec![(201, 9990), (500, 10)]);
        assert_eq!(f.failures(), 10);
    }

    #[test]
    fn refuses_a_latency_without_unit() {
        assert!(millis("12").is_err());
    }
}
