//! Spawning, restarting and stopping one `redis-server` child process.

use std::ffi::OsString;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::Command;

use crate::client::probe_pid;
use crate::process::RedisProcess;
use crate::tls::TlsFiles;
use crate::TestkitError;

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
    /// Run the server as this user instead of the test process's own (which
    /// must then be root). Its directory is handed over to that user, and
    /// [`RedisServer::cli`] runs `redis-cli` as that user too, so the test can
    /// still reach the server while a [`Partition`](crate::Partition) cuts
    /// that user off from the test process's own.
    pub run_as: Option<RunAs>,
    /// Which server program runs: Redis (the default) or Valkey.
    pub flavor: Flavor,
}

/// Which server program a [`RedisServer`] (or every node of a [`Cluster`](crate::Cluster))
/// runs. Both speak the same protocol; Valkey 8.1 and later also have `SET … IFEQ`, which the
/// store uses for its common save instead of a script.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Flavor {
    /// `redis-server` from `PATH`.
    #[default]
    Redis,
    /// The program named by the `SESAME_VALKEY_SERVER` environment variable, else
    /// `valkey-server` from `PATH`. `scripts/test.sh` fetches one (Valkey 9.1) and sets the
    /// variable.
    Valkey,
}

/// What to do when no Valkey server can be spawned.
pub(crate) const VALKEY_HINT: &str = "; set SESAME_VALKEY_SERVER to a valkey-server binary, \
    or run scripts/test.sh, which fetches Valkey 9.1";

impl Flavor {
    /// The program to spawn.
    pub(crate) fn program(self) -> OsString {
        match self {
            Flavor::Redis => OsString::from("redis-server"),
            Flavor::Valkey => std::env::var_os("SESAME_VALKEY_SERVER")
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| OsString::from("valkey-server")),
        }
    }
}

/// A user and group to run a process as, e.g. to put it on the other side of a
/// [`Partition`](crate::Partition). Switching users needs root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunAs {
    /// The user id.
    pub uid: u32,
    /// The group id (supplementary groups are dropped).
    pub gid: u32,
}

impl RunAs {
    /// `nobody:nogroup` (65534:65534) as on Debian.
    pub const NOBODY: RunAs = RunAs { uid: 65_534, gid: 65_534 };

    /// Makes `cmd` run as this user and group, without supplementary groups.
    pub(crate) fn apply(self, cmd: &mut Command) {
        cmd.uid(self.uid).gid(self.gid);
    }
}

/// One `redis-server` child process, bound to `127.0.0.1` on a free port and
/// running in its own temporary directory.
///
/// Dropping it kills the process (this child only), waits for it and removes
/// the directory.
#[derive(Debug)]
pub struct RedisServer {
    pub(crate) opts: RedisOptions,
    pub(crate) tls: Option<TlsFiles>,
    // The child process and its directory; killed and removed on drop.
    process: RedisProcess,
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
        Self::start_sharing_tls(opts, None)
    }

    /// Like [`start_with`](Self::start_with), but with `opts.tls` the server
    /// uses the given certificate files (when `Some`) instead of generating
    /// its own, so that all nodes of a topology share one CA.
    pub(crate) fn start_sharing_tls(
        opts: RedisOptions,
        shared: Option<&TlsFiles>,
    ) -> Result<RedisServer, TestkitError> {
        let mut process = RedisProcess::new("sesame-redis-", opts.run_as)?;
        process.use_program(opts.flavor.program());
        let tls = match (opts.tls, shared) {
            (false, _) => None,
            (true, Some(files)) => Some(files.clone()),
            (true, None) => Some(TlsFiles::generate(process.dir())?),
        };
        let mut server = RedisServer { opts, tls, process };
        let RedisServer { opts, tls, process } = &mut server;
        let args = |process: &RedisProcess, port| server_args(opts, tls.as_ref(), process, port);
        let probe = |port| probe_pid(port, credentials(opts), tls.as_ref());
        process.start_on_free_port(&args, &probe)?;
        Ok(server)
    }

    /// The port the server listens on (the TLS port when TLS is enabled).
    pub fn port(&self) -> u16 {
        self.process.port()
    }

    /// A connection URL: `redis://127.0.0.1:PORT` or `rediss://…` for TLS, with
    /// credentials when set (`redis://:PASS@…`, or `redis://USER:PASS@…` when
    /// an ACL user is configured).
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "rediss" } else { "redis" };
        let auth = url_userinfo(self.credentials());
        format!("{scheme}://{auth}127.0.0.1:{}", self.port())
    }

    /// PEM of the CA that signed the server certificate, when TLS is enabled.
    pub fn ca_cert_pem(&self) -> Option<String> {
        self.tls.as_ref().map(|tls| tls.ca_pem.clone())
    }

    /// Contents of the server's log file (empty if it does not exist yet).
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// The server's working directory (data files, log, certificates).
    pub fn dir(&self) -> &Path {
        self.process.dir()
    }

    /// Process id of the child, or `None` when it is stopped.
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// Kills this child process (SIGKILL) and waits for it. Does nothing when
    /// the server is already stopped.
    pub fn stop(&mut self) {
        self.process.stop();
    }

    /// Restarts the server on the same port and directory with the same
    /// options (stopping it first if needed). With `appendonly`, data survives.
    ///
    /// A port that is briefly busy is retried for a few seconds.
    pub fn start_again(&mut self) -> Result<(), TestkitError> {
        let RedisServer { opts, tls, process } = self;
        let args = |process: &RedisProcess, port| server_args(opts, tls.as_ref(), process, port);
        let probe = |port| probe_pid(port, credentials(opts), tls.as_ref());
        process.restart(&args, &probe)
    }

    /// Like [`start_again`](Self::start_again), but running the other program of `flavor` on
    /// the same port and directory: an upgrade, or a failover to an older server, as clients
    /// see it. Without `appendonly` the new server starts empty.
    pub fn start_again_as(&mut self, flavor: Flavor) -> Result<(), TestkitError> {
        self.process.stop();
        self.opts.flavor = flavor;
        self.process.use_program(flavor.program());
        self.start_again()
    }

    /// Whether the child process is still alive.
    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    /// The user the server runs as, when not the test process's own.
    pub fn run_as(&self) -> Option<RunAs> {
        self.opts.run_as
    }

    /// The credentials clients should use: `(user, password)`, preferring the
    /// ACL user over the default user's password.
    pub(crate) fn credentials(&self) -> Option<(Option<&str>, &str)> {
        credentials(&self.opts)
    }

    /// The log tail (plus anything the process printed) for error messages.
    pub(crate) fn diagnostics(&self) -> String {
        self.process.diagnostics()
    }

    /// Like [`diagnostics`](Self::diagnostics) with only the last `lines` log
    /// lines, for messages that show several servers.
    pub(crate) fn short_diagnostics(&self, lines: usize) -> String {
        self.process.short_diagnostics(lines)
    }
}

/// The credentials of `opts`: `(user, password)`, preferring the ACL user over
/// the default user's password.
fn credentials(opts: &RedisOptions) -> Option<(Option<&str>, &str)> {
    preferred_credentials(opts.acl_user.as_ref(), opts.password.as_deref())
}

/// `(user, password)` for clients: the ACL user when there is one, else the
/// default user's password, else nothing.
pub(crate) fn preferred_credentials<'a>(
    acl_user: Option<&'a (String, String)>,
    password: Option<&'a str>,
) -> Option<(Option<&'a str>, &'a str)> {
    match (acl_user, password) {
        (Some((user, pass)), _) => Some((Some(user.as_str()), pass)),
        (None, Some(pass)) => Some((None, pass)),
        (None, None) => None,
    }
}

/// The userinfo part of a URL, including the trailing `@`: `USER:PASS@`,
/// `:PASS@` or nothing, percent-encoded.
pub(crate) fn url_userinfo(credentials: Option<(Option<&str>, &str)>) -> String {
    match credentials {
        None => String::new(),
        Some((None, pass)) => format!(":{}@", percent_encode(pass)),
        Some((Some(user), pass)) => format!("{}:{}@", percent_encode(user), percent_encode(pass)),
    }
}

/// `--masteruser USER --masterauth PASS` (or just `--masterauth PASS` for the
/// default user) so that a replica authenticates to its master.
pub(crate) fn replication_auth_args(credentials: Option<(Option<&str>, &str)>) -> Vec<String> {
    let mut args = Vec::new();
    if let Some((user, pass)) = credentials {
        if let Some(user) = user {
            args.extend(["--masteruser".to_owned(), user.to_owned()]);
        }
        args.extend(["--masterauth".to_owned(), pass.to_owned()]);
    }
    args
}

/// Command-line arguments for a `redis-server` configured by `opts`, about to
/// be spawned on `port` in `process`'s directory.
fn server_args(
    opts: &RedisOptions,
    tls: Option<&TlsFiles>,
    process: &RedisProcess,
    port: u16,
) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    let mut push = |items: &[&str]| args.extend(items.iter().map(OsString::from));
    let port = port.to_string();
    match tls {
        None => push(&["--port", &port]),
        Some(_) => push(&["--port", "0", "--tls-port", &port, "--tls-auth-clients", "no"]),
    }
    push(&["--bind", "127.0.0.1", "--save", "", "--daemonize", "no"]);
    if opts.appendonly {
        push(&["--appendonly", "yes", "--appendfsync", "always"]);
    } else {
        push(&["--appendonly", "no"]);
    }
    if let Some(pass) = &opts.password {
        push(&["--requirepass", pass]);
    }
    if let Some((user, pass)) = &opts.acl_user {
        push(&["--user", user, "on", &format!(">{pass}"), "~*", "&*", "+@all"]);
    }
    let mut paths = vec![("--dir", process.dir()), ("--logfile", process.log_path())];
    if let Some(tls) = tls {
        paths.push(("--tls-cert-file", &tls.cert_path));
        paths.push(("--tls-key-file", &tls.key_path));
        paths.push(("--tls-ca-cert-file", &tls.ca_path));
    }
    for (name, path) in paths {
        args.push(name.into());
        args.push(path.as_os_str().to_owned());
    }
    args.extend(opts.extra_args.iter().map(OsString::from));
    args
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub(crate) fn percent_encode(text: &str) -> String {
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

    #[test]
    fn prefers_the_acl_user_in_urls() {
        let user = ("app".to_owned(), "p@ss".to_owned());
        let both = preferred_credentials(Some(&user), Some("default pw"));
        assert_eq!(both, Some((Some("app"), "p@ss")));
        assert_eq!(url_userinfo(both), "app:p%40ss@");
        let only_pw = preferred_credentials(None, Some("default pw"));
        assert_eq!(url_userinfo(only_pw), ":default%20pw@");
        assert_eq!(url_userinfo(preferred_credentials(None, None)), "");
    }
}
