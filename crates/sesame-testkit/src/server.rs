//! Spawning, restarting and stopping one `redis-server` child process.

use std::ffi::OsString;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::error::format_tail;
use crate::tls::TlsFiles;
use crate::{free_port, TestkitError};

/// How long a freshly spawned server may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How many fresh ports [`RedisServer::start_with`] tries when a port is taken.
const START_ATTEMPTS: usize = 5;
/// How long [`RedisServer::start_again`] keeps retrying a busy port.
const RESTART_BUSY_WINDOW: Duration = Duration::from_secs(5);
/// Pause between readiness probes.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// The bind error Redis logs when the port is taken.
const BUSY_MARKER: &str = "Address already in use";

/// How to configure a [`RedisServer`].
///
/// The default is a plain-TCP server without password, persistence or TLS.
#[derive(Debug, Clone, Default)]
pub struct RedisOptions {
    /// `requirepass` for the default user.
    pub password: Option<String>,
    /// An extra ACL user `(name, password)` with full rights
    /// (`user NAME on >PASS ~* &* +@all`). When set, [`RedisServer::url`] and
    /// [`RedisServer::cli`] authenticate as this user.
    pub acl_user: Option<(String, String)>,
    /// `appendonly yes` with `appendfsync always`, so data written before a
    /// [`RedisServer::stop`] survives a [`RedisServer::start_again`].
    pub appendonly: bool,
    /// Serve TLS only, with a freshly generated CA and a server certificate for
    /// `127.0.0.1` / `localhost`. Client certificates are not required.
    pub tls: bool,
    /// Extra arguments passed verbatim after the generated ones, e.g.
    /// `["--maxmemory", "10mb"]`; later values override earlier ones.
    pub extra_args: Vec<String>,
}

/// One `redis-server` child process, bound to `127.0.0.1` on a free port and
/// running in its own temporary directory.
///
/// Dropping it kills the process (this child only), waits for it and removes
/// the directory.
#[derive(Debug)]
pub struct RedisServer {
    pub(crate) opts: RedisOptions,
    pub(crate) port: u16,
    pub(crate) tls: Option<TlsFiles>,
    log_path: PathBuf,
    console_path: PathBuf,
    child: Option<Child>,
    // Declared last so it is removed after the child is gone.
    dir: TempDir,
}

impl RedisServer {
    /// Starts a server with default options.
    ///
    /// # Panics
    ///
    /// Panics with the reason and the server log when the server cannot start.
    // Test harness: a failed spawn should fail the test loudly.
    #[allow(clippy::panic)]
    pub fn start() -> RedisServer {
        match Self::start_with(RedisOptions::default()) {
            Ok(server) => server,
            Err(err) => panic!("cannot start redis-server: {err}"),
        }
    }

    /// Starts a server with `opts` and waits until it answers on its port.
    ///
    /// If the chosen port turns out to be taken, another free port is tried
    /// (up to 5 ports in all).
    pub fn start_with(opts: RedisOptions) -> Result<RedisServer, TestkitError> {
        let dir = tempfile::Builder::new().prefix("sesame-redis-").tempdir().map_err(|source| {
            TestkitError::Io {
                context: "cannot create a temporary directory".to_owned(),
                source,
                log_tail: format_tail(""),
            }
        })?;
        let tls = if opts.tls { Some(TlsFiles::generate(dir.path())?) } else { None };
        let mut server = RedisServer {
            opts,
            port: 0,
            tls,
            log_path: dir.path().join("redis.log"),
            console_path: dir.path().join("console.log"),
            child: None,
            dir,
        };
        let mut attempt = 1;
        loop {
            server.port = free_port();
            match server.spawn_and_wait() {
                Err(TestkitError::PortInUse { .. }) if attempt < START_ATTEMPTS => attempt += 1,
                Ok(()) => return Ok(server),
                Err(err) => return Err(err),
            }
        }
    }

    /// The port the server listens on (the TLS port when TLS is enabled).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A connection URL: `redis://127.0.0.1:PORT` or `rediss://…` for TLS, with
    /// credentials when set (`redis://:PASS@…`, or `redis://USER:PASS@…` when
    /// an ACL user is configured).
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "rediss" } else { "redis" };
        let auth = match self.credentials() {
            None => String::new(),
            Some((None, pass)) => format!(":{}@", percent_encode(pass)),
            Some((Some(user), pass)) => {
                format!("{}:{}@", percent_encode(user), percent_encode(pass))
            }
        };
        format!("{scheme}://{auth}127.0.0.1:{}", self.port)
    }

    /// PEM of the CA that signed the server certificate, when TLS is enabled.
    pub fn ca_cert_pem(&self) -> Option<String> {
        self.tls.as_ref().map(|tls| tls.ca_pem.clone())
    }

    /// Contents of the server's log file (empty if it does not exist yet).
    pub fn log(&self) -> String {
        read_lossy(&self.log_path)
    }

    /// The server's working directory (data files, log, certificates).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Process id of the child, or `None` when it is stopped.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills this child process (SIGKILL) and waits for it. Does nothing when
    /// the server is already stopped.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Errors mean the child has already exited; nothing left to do.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Restarts the server on the same port and directory with the same
    /// options (stopping it first if needed). With `appendonly`, data survives.
    ///
    /// A port that is briefly busy is retried for a few seconds.
    pub fn start_again(&mut self) -> Result<(), TestkitError> {
        self.stop();
        let deadline = Instant::now() + RESTART_BUSY_WINDOW;
        loop {
            match self.spawn_and_wait() {
                Err(TestkitError::PortInUse { .. }) if Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(100));
                }
                other => return other,
            }
        }
    }

    /// Whether the child process is still alive.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(Ok(Some(_))) => {
                self.child = None;
                false
            }
            Some(Err(_)) | None => false,
        }
    }

    /// The credentials clients should use: `(user, password)`, preferring the
    /// ACL user over the default user's password.
    pub(crate) fn credentials(&self) -> Option<(Option<&str>, &str)> {
        match (&self.opts.acl_user, &self.opts.password) {
            (Some((user, pass)), _) => Some((Some(user.as_str()), pass.as_str())),
            (None, Some(pass)) => Some((None, pass.as_str())),
            (None, None) => None,
        }
    }

    /// The log tail (plus anything the process printed) for error messages.
    pub(crate) fn diagnostics(&self) -> String {
        let mut out = format_tail(&self.log());
        let console = read_lossy(&self.console_path);
        if !console.trim().is_empty() {
            out.push_str("\n--- redis-server stdout/stderr ---\n");
            out.push_str(console.trim());
        }
        out
    }

    /// Command-line arguments for `redis-server`.
    fn server_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        let mut push = |items: &[&str]| args.extend(items.iter().map(OsString::from));
        let port = self.port.to_string();
        match &self.tls {
            None => push(&["--port", &port]),
            Some(_) => push(&["--port", "0", "--tls-port", &port, "--tls-auth-clients", "no"]),
        }
        push(&["--bind", "127.0.0.1", "--save", "", "--daemonize", "no"]);
        if self.opts.appendonly {
            push(&["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            push(&["--appendonly", "no"]);
        }
        if let Some(pass) = &self.opts.password {
            push(&["--requirepass", pass]);
        }
        if let Some((user, pass)) = &self.opts.acl_user {
            push(&["--user", user, "on", &format!(">{pass}"), "~*", "&*", "+@all"]);
        }
        let mut paths = vec![("--dir", self.dir.path()), ("--logfile", self.log_path.as_path())];
        if let Some(tls) = &self.tls {
            paths.push(("--tls-cert-file", &tls.cert_path));
            paths.push(("--tls-key-file", &tls.key_path));
            paths.push(("--tls-ca-cert-file", &tls.ca_path));
        }
        for (name, path) in paths {
            args.push(name.into());
            args.push(path.as_os_str().to_owned());
        }
        args.extend(self.opts.extra_args.iter().map(OsString::from));
        args
    }

    /// Spawns the child on `self.port` and waits until it is ready; on failure
    /// the child is killed again.
    fn spawn_and_wait(&mut self) -> Result<(), TestkitError> {
        let log_offset = fs::metadata(&self.log_path).map_or(0, |m| m.len());
        let child = File::create(&self.console_path)
            .and_then(|console| Ok((console.try_clone()?, console)))
            .and_then(|(out, err)| {
                Command::new("redis-server")
                    .args(self.server_args())
                    .stdin(Stdio::null())
                    .stdout(out)
                    .stderr(err)
                    .spawn()
            })
            .map_err(|source| TestkitError::Io {
                context: "cannot spawn redis-server (is it on PATH?)".to_owned(),
                source,
                log_tail: self.diagnostics(),
            })?;
        self.child = Some(child);
        let result = self.wait_ready(log_offset);
        if result.is_err() {
            self.stop();
        }
        result
    }

    /// Polls until the server on our port answers and reports the pid of our
    /// child, failing at once if the child exits.
    fn wait_ready(&mut self, log_offset: u64) -> Result<(), TestkitError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.exit_status()? {
                return Err(self.early_exit_error(status, log_offset));
            }
            // Comparing pids guards against another process that grabbed the
            // port in the meantime: then our child exits with a bind error.
            let last_probe = match self.probe_pid() {
                Ok(pid) if Some(pid) == self.pid() => return Ok(()),
                Ok(pid) => format!("the port is served by another process ({pid})"),
                Err(err) => err,
            };
            if Instant::now() >= deadline {
                return Err(TestkitError::Start {
                    port: self.port,
                    reason: format!("not ready after {READY_TIMEOUT:?} (last probe: {last_probe})"),
                    log_tail: self.diagnostics(),
                });
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// `Some(status)` when the child has exited.
    fn exit_status(&mut self) -> Result<Option<ExitStatus>, TestkitError> {
        let Some(child) = self.child.as_mut() else {
            return Ok(None);
        };
        child.try_wait().map_err(|source| TestkitError::Io {
            context: "cannot poll the redis-server process".to_owned(),
            source,
            log_tail: self.diagnostics(),
        })
    }

    /// The error for a child that exited while starting.
    fn early_exit_error(&self, status: ExitStatus, log_offset: u64) -> TestkitError {
        if self.log_since(log_offset).contains(BUSY_MARKER) {
            TestkitError::PortInUse { port: self.port, log_tail: self.diagnostics() }
        } else {
            TestkitError::Start {
                port: self.port,
                reason: format!("redis-server exited early ({status})"),
                log_tail: self.diagnostics(),
            }
        }
    }

    /// The part of the log written after byte `offset`.
    fn log_since(&self, offset: u64) -> String {
        let bytes = fs::read(&self.log_path).unwrap_or_default();
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(bytes.len());
        String::from_utf8_lossy(&bytes[start..]).into_owned()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // `stop` ignores every error, so this never panics; the temporary
        // directory is removed (best effort) when `dir` is dropped afterwards.
        self.stop();
    }
}

/// Reads a file as text, replacing invalid UTF-8; empty when unreadable.
fn read_lossy(path: &Path) -> String {
    fs::read(path).map(|bytes| String::from_utf8_lossy(&bytes).into_owned()).unwrap_or_default()
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding_keeps_unreserved_characters() {
        assert_eq!(percent_encode("s3cret-pw_1.~"), "s3cret-pw_1.~");
        assert_eq!(percent_encode("a b@c:d/é"), "a%20b%40c%3Ad%2F%C3%A9");
    }
}
