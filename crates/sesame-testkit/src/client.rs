//! Talking to a running test server: `redis-cli`, raw RESP probes and
//! `INFO commandstats`.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use crate::proc::run_with_timeout;
use crate::tls::TlsFiles;
use crate::{RedisServer, TestkitError};

/// How long one `redis-cli` invocation may take.
const CLI_TIMEOUT: Duration = Duration::from_secs(30);
/// Connect/read/write timeout of the raw readiness probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

impl RedisServer {
    /// Runs `redis-cli` against this server (`-h 127.0.0.1 -p PORT`, plus
    /// credentials and `--tls --cacert` when needed) and returns its stdout
    /// with trailing line breaks removed. `redis-cli` runs as the server's
    /// user ([`RedisOptions::run_as`](crate::RedisOptions::run_as)).
    ///
    /// `redis-cli` exits successfully on Redis error replies, so those come
    /// back as `Ok("ERR …")`; only a failing or hanging `redis-cli` (e.g. no
    /// connection) is an error, which then carries stderr and the server log.
    pub fn cli(&self, args: &[&str]) -> Result<String, TestkitError> {
        let mut cmd = cli_command(self.port(), self.credentials(), self.tls.as_ref());
        if let Some(user) = self.opts.run_as {
            user.apply(&mut cmd);
        }
        run_cli(cmd, args, || self.diagnostics())
    }

    /// Parses `INFO commandstats` into command name (lowercase, subcommands as
    /// `config|resetstat`) → number of calls.
    pub fn info_commandstats(&self) -> Result<BTreeMap<String, u64>, TestkitError> {
        let text = self.cli(&["INFO", "commandstats"])?;
        parse_commandstats(&text)
            .map_err(|message| TestkitError::Unexpected { message, log_tail: self.diagnostics() })
    }

    /// Sum of all calls in `INFO commandstats`, excluding `info` and `config`
    /// (with its subcommands), which this crate itself sends to measure.
    ///
    /// Note that `auth` is counted: on a password-protected server each
    /// [`cli`](Self::cli) call (including this one) authenticates first.
    pub fn total_commands(&self) -> Result<u64, TestkitError> {
        Ok(self
            .info_commandstats()?
            .iter()
            .filter(|(name, _)| !is_measuring_command(name))
            .map(|(_, calls)| calls)
            .sum())
    }

    /// Resets the server statistics (`CONFIG RESETSTAT`).
    pub fn reset_stats(&self) -> Result<(), TestkitError> {
        let reply = self.cli(&["CONFIG", "RESETSTAT"])?;
        if reply == "OK" {
            Ok(())
        } else {
            Err(TestkitError::Unexpected {
                message: format!("CONFIG RESETSTAT answered {reply:?}"),
                log_tail: self.diagnostics(),
            })
        }
    }
}

/// One readiness probe: asks the server on `port` for `INFO server persistence`
/// (after `AUTH` when credentials are given) and returns its `process_id`, so
/// the caller can check that the port is served by *its* child; a server still
/// loading its dataset is not ready. Over TLS the probe goes through `redis-cli`.
///
/// `INFO` rather than `PING` keeps a fresh server's
/// [`total_commands`](RedisServer::total_commands) at zero.
pub(crate) fn probe_pid(
    port: u16,
    credentials: Option<(Option<&str>, &str)>,
    tls: Option<&TlsFiles>,
) -> Result<u32, String> {
    let info = if tls.is_some() {
        let cmd = cli_command(port, credentials, tls);
        match run_cli(cmd, &["INFO", "server", "persistence"], String::new) {
            Ok(info) => info,
            Err(TestkitError::Cli { reason, stderr, .. }) => {
                return Err(format!("{reason}: {}", stderr.trim()))
            }
            Err(err) => return Err(err.to_string()),
        }
    } else {
        raw_info_server(port, credentials).map_err(|err| err.to_string())?
    };
    // A server loading its dataset (an append-only file after a restart) accepts connections
    // and answers INFO, but refuses data commands with LOADING: not ready yet.
    if info.lines().any(|line| line.trim() == "loading:1") {
        return Err("still loading its dataset".into());
    }
    parse_process_id(&info).ok_or_else(|| format!("INFO server answered {info:?}"))
}

/// A `redis-cli` command for the server on `127.0.0.1:PORT`, with
/// credentials and `--tls --cacert` when needed; the command's own arguments
/// are appended by [`run_cli`].
pub(crate) fn cli_command(
    port: u16,
    credentials: Option<(Option<&str>, &str)>,
    tls: Option<&TlsFiles>,
) -> Command {
    let mut cmd = Command::new("redis-cli");
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string()]);
    add_connection_args(&mut cmd, credentials, tls);
    cmd
}

/// Adds what every `redis-cli` connection needs: credentials (`-a PASS` or
/// `--user USER --pass PASS`) and `--tls --cacert CA` when `tls` is given.
pub(crate) fn add_connection_args(
    cmd: &mut Command,
    credentials: Option<(Option<&str>, &str)>,
    tls: Option<&TlsFiles>,
) {
    match credentials {
        None => {}
        Some((None, pass)) => {
            cmd.args(["-a", pass]);
        }
        Some((Some(user), pass)) => {
            cmd.args(["--user", user, "--pass", pass]);
        }
    }
    cmd.arg("--no-auth-warning");
    if let Some(tls) = tls {
        cmd.arg("--tls").arg("--cacert").arg(&tls.ca_path);
    }
}

/// Runs `cmd` (from [`cli_command`]) with `args` and returns its stdout with
/// trailing line breaks removed; see [`RedisServer::cli`]. Errors carry
/// `diagnostics()` as their log tail.
pub(crate) fn run_cli(
    mut cmd: Command,
    args: &[&str],
    diagnostics: impl Fn() -> String,
) -> Result<String, TestkitError> {
    cmd.args(args);
    let cli_error = |reason: String, stderr: String| TestkitError::Cli {
        args: args.join(" "),
        reason,
        stderr,
        log_tail: diagnostics(),
    };
    let done = run_with_timeout(cmd, CLI_TIMEOUT).map_err(|source| TestkitError::Io {
        context: "cannot run redis-cli (is it on PATH?)".to_owned(),
        source,
        log_tail: diagnostics(),
    })?;
    match done.status {
        Some(status) if status.success() => {
            Ok(done.stdout.trim_end_matches(['\r', '\n']).to_owned())
        }
        Some(status) => Err(cli_error(format!("exited with {status}"), done.stderr)),
        None => Err(cli_error(format!("no answer within {CLI_TIMEOUT:?}"), done.stderr)),
    }
}

/// Whether `name` is one of the commands used to take measurements.
fn is_measuring_command(name: &str) -> bool {
    name == "info" || name == "config" || name.starts_with("config|")
}

/// Sends `[AUTH …] INFO server persistence` over a plain TCP connection and returns the
/// text of the reply.
fn raw_info_server(port: u16, credentials: Option<(Option<&str>, &str)>) -> io::Result<String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let stream = TcpStream::connect_timeout(&addr, PROBE_TIMEOUT)?;
    stream.set_read_timeout(Some(PROBE_TIMEOUT))?;
    stream.set_write_timeout(Some(PROBE_TIMEOUT))?;
    let mut reader = BufReader::new(&stream);
    let mut send = |args: &[&str]| -> io::Result<String> {
        (&stream).write_all(&encode_command(args))?;
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        let unexpected = || io::Error::other(format!("{} answered {line:?}", args[0]));
        match line.strip_prefix('$') {
            // A bulk string: `$LEN`, then LEN bytes and a line break.
            Some(len) => {
                let len: usize = len.parse().map_err(|_| unexpected())?;
                let mut body = vec![0; len + 2];
                reader.read_exact(&mut body)?;
                body.truncate(len);
                Ok(String::from_utf8_lossy(&body).into_owned())
            }
            None if line.starts_with('+') => Ok(line.to_owned()),
            None => Err(unexpected()),
        }
    };
    match credentials {
        None => {}
        Some((None, pass)) => {
            send(&["AUTH", pass])?;
        }
        Some((Some(user), pass)) => {
            send(&["AUTH", user, pass])?;
        }
    }
    send(&["INFO", "server", "persistence"])
}

/// Extracts `process_id` from the text of `INFO server`.
fn parse_process_id(info: &str) -> Option<u32> {
    info.lines()
        .find_map(|line| line.trim().strip_prefix("process_id:"))
        .and_then(|pid| pid.parse().ok())
}

/// Encodes a command as a RESP array of bulk strings.
fn encode_command(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Parses the text of `INFO commandstats`.
fn parse_commandstats(text: &str) -> Result<BTreeMap<String, u64>, String> {
    if !text.contains("# Commandstats") {
        return Err(format!("INFO commandstats answered {text:?}"));
    }
    let mut stats = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        let Some(rest) = line.strip_prefix("cmdstat_") else {
            continue;
        };
        let bad_line = || format!("cannot parse commandstats line {line:?}");
        let (name, fields) = rest.split_once(':').ok_or_else(bad_line)?;
        let calls = fields
            .split(',')
            .find_map(|field| field.strip_prefix("calls="))
            .and_then(|calls| calls.parse::<u64>().ok())
            .ok_or_else(bad_line)?;
        stats.insert(name.to_ascii_lowercase(), calls);
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commandstats() {
        let text = "# Commandstats\r\n\
            cmdstat_get:calls=3,usec=5,usec_per_call=1.67,rejected_calls=0,failed_calls=0\r\n\
            cmdstat_config|resetstat:calls=1,usec=9,usec_per_call=9.00,rejected_calls=0,failed_calls=0\r\n\
            cmdstat_EVALSHA:calls=2,usec=4,usec_per_call=2.00,rejected_calls=0,failed_calls=0\r\n";
        let stats = parse_commandstats(text).unwrap();
        assert_eq!(stats.get("get"), Some(&3));
        assert_eq!(stats.get("evalsha"), Some(&2));
        assert_eq!(stats.get("config|resetstat"), Some(&1));
        assert!(is_measuring_command("config|resetstat"));
        assert!(!is_measuring_command("get"));
    }

    #[test]
    fn rejects_non_stats_text() {
        assert!(parse_commandstats("NOAUTH Authentication required.").is_err());
        assert!(parse_commandstats("# Commandstats\r\ncmdstat_get:usec=1").is_err());
    }

    #[test]
    fn finds_the_process_id() {
        let info = "# Server\r\nredis_version:7.0.15\r\nprocess_id:4242\r\ntcp_port:1\r\n";
        assert_eq!(parse_process_id(info), Some(4242));
        assert_eq!(parse_process_id("-NOAUTH Authentication required."), None);
    }

    #[test]
    fn encodes_resp_arrays() {
        assert_eq!(encode_command(&["AUTH", "pw"]), b"*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n".to_vec());
    }
}
