//! Driving `wrk`: the Lua script that rotates session cookies, one bounded run, and parsing
//! what it prints.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use sesame_bench::{BenchError, BenchResult};

/// wrk threads.
pub(crate) const THREADS: u32 = 1;
/// Open connections.
pub(crate) const CONNECTIONS: u32 = 32;

/// Prefix of the line the script's `done()` prints.
const RESULT_PREFIX: &str = "bench.result ";

/// The wrk script. Its first argument is a file of session tokens, one per line; every request
/// carries the next one as `Cookie: sid=<token>` (the requests are prepared once per thread).
/// `done()` prints one machine-readable line: totals, errors and latency percentiles in µs.
const SCRIPT: &str = r#"-- Rotates the session cookie over a file of tokens; prints machine-readable totals.
local prepared = {}
local count = 0
local cursor = 0

function init(args)
  local headers = {}
  for name, value in pairs(wrk.headers) do headers[name] = value end
  for token in io.lines(args[1]) do
    if #token > 0 then
      count = count + 1
      headers["Cookie"] = "sid=" .. token
      prepared[count] = wrk.format(nil, nil, headers)
    end
  end
  if count == 0 then error("no tokens in " .. tostring(args[1])) end
end

function request()
  cursor = cursor % count + 1
  return prepared[cursor]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "bench.result requests=%d duration_us=%d status=%d connect=%d read=%d write=%d " ..
    "timeout=%d p50_us=%d p99_us=%d max_us=%d\n",
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"#;

/// What one wrk run measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WrkResult {
    /// Completed requests.
    pub(crate) requests: u64,
    /// Length of the run, µs.
    pub(crate) duration_us: u64,
    /// Responses with a status outside 2xx/3xx.
    pub(crate) non_2xx: u64,
    /// Connect, read, write errors and timeouts.
    pub(crate) socket_errors: u64,
    /// Median latency, µs.
    pub(crate) p50_us: u64,
    /// 99th percentile latency, µs.
    pub(crate) p99_us: u64,
}

impl WrkResult {
    /// Completed requests per second.
    pub(crate) fn req_per_s(&self) -> f64 {
        self.requests as f64 / (self.duration_us.max(1) as f64 / 1e6)
    }
}

/// Whether a `wrk` executable can be started.
pub(crate) fn available() -> bool {
    std::process::Command::new("wrk")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Writes the Lua script into `dir` and returns its path.
pub(crate) fn write_script(dir: &Path) -> BenchResult<PathBuf> {
    let path = dir.join("rotate_cookies.lua");
    std::fs::write(&path, SCRIPT)
        .map_err(|e| BenchError::new(format!("writing {}: {e}", path.display())))?;
    Ok(path)
}

/// The wrk arguments before the script, e.g. `-t1 -c32 -d10s --latency`.
pub(crate) fn options(seconds: u64) -> Vec<String> {
    vec![
        format!("-t{THREADS}"),
        format!("-c{CONNECTIONS}"),
        format!("-d{seconds}s"),
        "--latency".to_string(),
    ]
}

/// Runs wrk for `seconds` against `url` with `script`, rotating over the tokens in `tokens`.
/// The process is killed if it has not finished well after its duration.
pub(crate) async fn run(
    script: &Path,
    tokens: &Path,
    url: &str,
    seconds: u64,
) -> BenchResult<WrkResult> {
    let mut cmd = tokio::process::Command::new("wrk");
    cmd.args(options(seconds))
        .arg("-s")
        .arg(script)
        .arg(url)
        .arg("--")
        .arg(tokens)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let limit = Duration::from_secs(seconds + 30);
    let out = tokio::time::timeout(limit, cmd.output())
        .await
        .map_err(|_| BenchError::new(format!("wrk on {url} still running after {limit:?}")))?
        .map_err(|e| BenchError::new(format!("cannot run wrk: {e}")))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(BenchError::new(format!(
            "wrk on {url} failed ({}):\n{stdout}\n{stderr}",
            out.status
        )));
    }
    parse(&stdout).map_err(|e| BenchError::new(format!("wrk on {url}: {e}\n{stdout}\n{stderr}")))
}

/// Parses wrk's output: the script's result line, plus wrk's own `Non-2xx or 3xx responses`
/// and `Socket errors` lines (the larger count wins, so neither can hide errors).
pub(crate) fn parse(output: &str) -> Result<WrkResult, String> {
    let line = output
        .lines()
        .find_map(|l| l.trim().strip_prefix(RESULT_PREFIX))
        .ok_or("no result line: was the script's done() run?")?;
    let field = |key: &str| -> Result<u64, String> {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
            .ok_or(format!("no {key} in the result line"))?
            .parse::<u64>()
            .map_err(|e| format!("{key}: {e}"))
    };
    let printed_non_2xx = output
        .lines()
        .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
        .map(|n| n.trim().parse::<u64>().map_err(|e| format!("non-2xx count: {e}")))
        .transpose()?
        .unwrap_or(0);
    let printed_socket = output
        .lines()
        .find_map(|l| l.trim().strip_prefix("Socket errors:"))
        .map(|s| s.split(',').filter_map(|p| p.split_whitespace().nth(1)?.parse::<u64>().ok()))
        .map_or(0, Iterator::sum);
    let socket = field("connect")? + field("read")? + field("write")? + field("timeout")?;
    Ok(WrkResult {
        requests: field("requests")?,
        duration_us: field("duration_us")?,
        non_2xx: field("status")?.max(printed_non_2xx),
        socket_errors: socket.max(printed_socket),
        p50_us: field("p50_us")?,
        p99_us: field("p99_us")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Output of `wrk -t1 -c32 -d2s --latency -s rotate_cookies.lua` against the sesame
    /// server's `GET /me`, as captured.
    const SAMPLE: &str = "Running 2s test @ http://127.0.0.1:43279/me
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.78ms  535.08us   6.65ms   70.38%
    Req/Sec    17.82k     2.66k   23.91k    76.19%
  Latency Distribution
     50%    1.69ms
     75%    2.07ms
     90%    2.53ms
     99%    3.31ms
  37245 requests in 2.10s, 5.07MB read
Requests/sec:  17734.91
Transfer/sec:      2.41MB
bench.result requests=37245 duration_us=2100095 status=0 connect=0 read=0 write=0 \
timeout=0 p50_us=1692 p99_us=3305 max_us=6648
";

    // The captured output parses into its figures.
    #[test]
    fn parses_captured_output() {
        let r = parse(SAMPLE).unwrap();
        let expected = WrkResult {
            requests: 37245,
            duration_us: 2_100_095,
            non_2xx: 0,
            socket_errors: 0,
            p50_us: 1692,
            p99_us: 3305,
        };
        assert_eq!(r, expected);
        assert!((r.req_per_s() - 17734.91).abs() < 0.01, "{}", r.req_per_s());
    }

    // Errors reported only by wrk's own lines still count; a missing result line is an error.
    #[test]
    fn errors_and_missing_lines() {
        let out = "  Non-2xx or 3xx responses: 7\n  Socket errors: connect 0, read 2, write 0, \
                   timeout 1\nbench.result requests=10 duration_us=1000000 status=0 connect=0 \
                   read=0 write=0 timeout=0 p50_us=900 p99_us=2500 max_us=4000\n";
        let r = parse(out).unwrap();
        assert_eq!((r.non_2xx, r.socket_errors, r.p99_us), (7, 3, 2500));
        assert!((r.req_per_s() - 10.0).abs() < 1e-9);
        assert!(parse("Requests/sec: 100\n").is_err());
        assert!(parse("bench.result requests=x\n").is_err());
    }
}
