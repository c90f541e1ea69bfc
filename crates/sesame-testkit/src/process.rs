//! One long-running Redis child process (a data node or a sentinel) in its own
//! temporary directory: spawning it, waiting until it is ready, stopping it.
//!
//! [`RedisServer`](crate::RedisServer) wraps one of these with its options; the
//! sentinels of a [`SentinelGroup`](crate::SentinelGroup) use it directly.
//! What the process is told to do (the command line) and how readiness is
//! probed are supplied by the owner, so this module knows nothing about
//! passwords, TLS or sentinel configuration.

use std::ffi::OsString;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::error::{format_tail, format_tail_lines};
use crate::{free_port, RunAs, TestkitError};

/// How long a freshly spawned process may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How many fresh ports [`RedisProcess::start_on_free_port`] tries when a port
/// is taken.
const START_ATTEMPTS: usize = 5;
/// How long [`RedisProcess::restart`] keeps retrying a busy port.
const RESTART_BUSY_WINDOW: Duration = Duration::from_secs(5);
/// Pause between readiness probes.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// The bind error Redis logs when the port is taken.
const BUSY_MARKER: &str = "Address already in use";

/// Builds the `redis-server` command line for a process about to be spawned on
/// the given port (the process is passed for its directory and log path).
pub(crate) type ArgsFn<'a> = &'a dyn Fn(&RedisProcess, u16) -> Vec<OsString>;

/// One readiness probe against the given port: the `process_id` of whatever
/// answers there, or why there was no usable answer.
pub(crate) type ProbeFn<'a> = &'a dyn Fn(u16) -> Result<u32, String>;

/// A `redis-server` child process (in any mode) bound to `127.0.0.1`, running
/// in its own temporary directory with its log in `redis.log` and anything it
/// prints in `console.log`.
///
/// With a [`RunAs`] user the process runs as that user, which owns the
/// directory.
///
/// Dropping it kills the process (this child only, SIGKILL), waits for it and
/// removes the directory.
#[derive(Debug)]
pub(crate) struct RedisProcess {
    port: u16,
    /// The server program (`redis-server` unless [`RedisProcess::use_program`] chose another).
    program: OsString,
    run_as: Option<RunAs>,
    log_path: PathBuf,
    console_path: PathBuf,
    child: Option<Child>,
    // Declared last so it is removed after the child is gone.
    dir: TempDir,
}

impl RedisProcess {
    /// Creates the temporary directory (named `PREFIX…`), owned by `run_as`
    /// when given; nothing runs yet.
    pub(crate) fn new(prefix: &str, run_as: Option<RunAs>) -> Result<Self, TestkitError> {
        let dir = tempfile::Builder::new().prefix(prefix).tempdir().map_err(|source| {
            TestkitError::Io {
                context: "cannot create a temporary directory".to_owned(),
                source,
                log_tail: format_tail(""),
            }
        })?;
        let process = Self {
            port: 0,
            program: OsString::from("redis-server"),
            run_as,
            log_path: dir.path().join("redis.log"),
            console_path: dir.path().join("console.log"),
            child: None,
            dir,
        };
        process.hand_over(process.dir())?;
        Ok(process)
    }

    /// Runs `program` instead of `redis-server` (a Valkey server, see [`crate::Flavor`]).
    pub(crate) fn use_program(&mut self, program: OsString) {
        self.program = program;
    }

    /// Gives `path` (the directory, or a file put in it before the start) to
    /// the [`RunAs`] user, so the process can write it; does nothing without
    /// one.
    pub(crate) fn hand_over(&self, path: &Path) -> Result<(), TestkitError> {
        let Some(user) = self.run_as else { return Ok(()) };
        std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid)).map_err(|source| {
            TestkitError::Io {
                context: format!(
                    "cannot hand {} over to uid {} (running a server as another user needs root)",
                    path.display(),
                    user.uid
                ),
                source,
                log_tail: format_tail(""),
            }
        })
    }

    /// The user the process runs as, when not the test process's own.
    pub(crate) fn run_as(&self) -> Option<RunAs> {
        self.run_as
    }

    /// The port of the last (attempted) start; 0 before the first one.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The working directory.
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Where the process writes its log (`--logfile`).
    pub(crate) fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Contents of the log file (empty if it does not exist yet).
    pub(crate) fn log(&self) -> String {
        read_lossy(&self.log_path)
    }

    /// Process id of the child, or `None` when it is stopped.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the child (SIGKILL) and waits for it; does nothing when stopped.
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Errors mean the child has already exited; nothing left to do.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the child is still alive (forgetting it once it has exited).
    pub(crate) fn is_running(&mut self) -> bool {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(Ok(Some(_))) => {
                self.child = None;
                false
            }
            Some(Err(_)) | None => false,
        }
    }

    /// The log tail (plus anything the process printed) for error messages.
    pub(crate) fn diagnostics(&self) -> String {
        self.with_console(format_tail(&self.log()))
    }

    /// Like [`diagnostics`](Self::diagnostics) with only the last `lines` log
    /// lines, for messages that show several processes.
    pub(crate) fn short_diagnostics(&self, lines: usize) -> String {
        self.with_console(format_tail_lines(&self.log(), lines))
    }

    /// Appends what the process printed on stdout/stderr, if anything.
    fn with_console(&self, mut out: String) -> String {
        let console = read_lossy(&self.console_path);
        if !console.trim().is_empty() {
            out.push_str("\n--- redis-server stdout/stderr ---\n");
            out.push_str(console.trim());
        }
        out
    }

    /// Starts the process on a fresh [`free_port`] and waits until it is
    /// ready. If the port turns out to be taken, another one is tried (up to
    /// 5 ports in all).
    pub(crate) fn start_on_free_port(
        &mut self,
        args: ArgsFn<'_>,
        probe: ProbeFn<'_>,
    ) -> Result<(), TestkitError> {
        let mut attempt = 1;
        loop {
            self.port = free_port();
            match self.spawn_and_wait(args, probe) {
                Err(TestkitError::PortInUse { .. }) if attempt < START_ATTEMPTS => attempt += 1,
                other => return other,
            }
        }
    }

    /// Restarts the process on the same port and directory (stopping it first
    /// if needed). A port that is briefly busy is retried for a few seconds.
    pub(crate) fn restart(
        &mut self,
        args: ArgsFn<'_>,
        probe: ProbeFn<'_>,
    ) -> Result<(), TestkitError> {
        self.stop();
        let deadline = Instant::now() + RESTART_BUSY_WINDOW;
        loop {
            match self.spawn_and_wait(args, probe) {
                Err(TestkitError::PortInUse { .. }) if Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(100));
                }
                other => return other,
            }
        }
    }

    /// Spawns the child on `self.port` and waits until it is ready; on failure
    /// the child is killed again.
    fn spawn_and_wait(&mut self, args: ArgsFn<'_>, probe: ProbeFn<'_>) -> Result<(), TestkitError> {
        let log_offset = fs::metadata(&self.log_path).map_or(0, |m| m.len());
        let args = args(self, self.port);
        let child = File::create(&self.console_path)
            .and_then(|console| Ok((console.try_clone()?, console)))
            .and_then(|(out, err)| {
                let mut cmd = Command::new(&self.program);
                cmd.args(args).stdin(Stdio::null()).stdout(out).stderr(err);
                if let Some(user) = self.run_as {
                    user.apply(&mut cmd);
                }
                cmd.spawn()
            })
            .map_err(|source| TestkitError::Io {
                context: format!(
                    "cannot spawn {} (is it on PATH?{})",
                    self.program.to_string_lossy(),
                    if self.program == "redis-server" { "" } else { crate::server::VALKEY_HINT }
                ),
                source,
                log_tail: self.diagnostics(),
            })?;
        self.child = Some(child);
        let result = self.wait_ready(log_offset, probe);
        if result.is_err() {
            self.stop();
        }
        result
    }

    /// Polls until the process on our port answers and reports the pid of our
    /// child, failing at once if the child exits.
    fn wait_ready(&mut self, log_offset: u64, probe: ProbeFn<'_>) -> Result<(), TestkitError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.exit_status()? {
                return Err(self.early_exit_error(status, log_offset));
            }
            // Comparing pids guards against another process that grabbed the
            // port in the meantime: then our child exits with a bind error.
            let last_probe = match probe(self.port) {
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

impl Drop for RedisProcess {
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
