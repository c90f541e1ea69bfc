//! A Redis Sentinel deployment: one master, its replicas and three sentinels,
//! all on `127.0.0.1`, with short timeouts so that failovers take seconds.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::client::{cli_command, probe_pid, run_cli};
use crate::error::format_tail;
use crate::process::RedisProcess;
use crate::server::{percent_encode, preferred_credentials, replication_auth_args, url_userinfo};
use crate::tls::{SharedTls, TlsFiles};
use crate::wait::{first_line, info_field, remaining, wait_until};
use crate::{Flavor, RedisOptions, RedisServer, RunAs, TestkitError};

/// Number of sentinels in a group.
const SENTINELS: usize = 3;
/// How many sentinels must agree that the master is down.
const QUORUM: usize = 2;
/// `sentinel down-after-milliseconds`: how long the master may be silent
/// before a sentinel considers it down.
const DOWN_AFTER_MS: u32 = 1_000;
/// `sentinel failover-timeout`; a failed attempt is retried after twice this.
const FAILOVER_TIMEOUT_MS: u32 = 5_000;
/// How long [`SentinelGroup::start_with`] waits for the group to settle, and
/// [`SentinelGroup::restart_node`] for a replica to resynchronise.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Log lines per process in a group's diagnostics.
const LOG_LINES: usize = 20;

/// How to configure a [`SentinelGroup`].
#[derive(Debug, Clone)]
pub struct SentinelOptions {
    /// The name the sentinels monitor the master under (default `"sesame"`).
    pub master_name: String,
    /// `requirepass` for the default user of the data nodes. Without
    /// [`acl_user`](Self::acl_user) it is also their `masterauth` and the
    /// sentinels' `sentinel auth-pass`. The sentinels themselves never require
    /// a password.
    pub password: Option<String>,
    /// An extra ACL user `(name, password)` with full rights (`~* &* +@all`)
    /// on every data node, next to the default user. When set, replicas
    /// replicate as this user (`masteruser` / `masterauth`), the sentinels
    /// authenticate as it (`sentinel auth-user` / `auth-pass`), and
    /// [`SentinelGroup::url`] and the data nodes' [`RedisServer::cli`] carry
    /// its credentials.
    pub acl_user: Option<(String, String)>,
    /// `appendonly yes` with `appendfsync always` on the data nodes.
    pub appendonly: bool,
    /// Number of replicas (default 1). With 0 there is nothing to fail over to.
    pub replicas: usize,
    /// Serve TLS only, on the data nodes and the sentinels (`port 0`,
    /// `tls-port`), with replication and sentinel-to-node links over TLS as
    /// well. One freshly generated CA signs the single server certificate
    /// (valid for `127.0.0.1` and `localhost`) every process uses, so
    /// [`SentinelGroup::ca_cert_pem`] is all a client needs to trust. Client
    /// certificates are not required.
    pub tls: bool,
    /// A password the sentinels themselves require (`requirepass` in sentinel.conf, and
    /// `sentinel sentinel-pass` so they can talk to each other). Clients then need
    /// `RedisStoreBuilder::sentinel_credentials`.
    pub sentinel_password: Option<String>,
    /// Run the replicas and the sentinels as this user, and data node 0 (the
    /// first master) as the test process's own (which must be root), so that
    /// a [`Partition`](crate::Partition) can cut the master and the test's
    /// clients off from the rest. `redis-cli` calls ([`RedisServer::cli`],
    /// [`SentinelGroup::sentinel_cli`]) run as the user of the process they
    /// query, so the test sees both sides during a cut. Not with
    /// [`tls`](Self::tls).
    pub run_as: Option<RunAs>,
    /// The server program of the data nodes and the sentinels (Redis by default).
    pub flavor: Flavor,
}

impl Default for SentinelOptions {
    fn default() -> Self {
        Self {
            master_name: "sesame".to_owned(),
            password: None,
            acl_user: None,
            appendonly: false,
            replicas: 1,
            tls: false,
            sentinel_password: None,
            run_as: None,
            flavor: Flavor::Redis,
        }
    }
}

/// One master, [`SentinelOptions::replicas`] replicas and three sentinels
/// monitoring them (quorum 2), each a child process with its own free port and
/// temporary directory on `127.0.0.1`.
///
/// Data node 0 starts as the master, the others as its replicas; after a
/// failover any of them may be the master, so ask
/// [`current_master_port`](Self::current_master_port). The sentinels consider
/// the master down after 1 s of silence, so a failover after
/// [`kill_master`](Self::kill_master) usually completes within a few seconds.
///
/// Dropping the group kills every process (sentinels first) and removes the
/// directories.
#[derive(Debug)]
pub struct SentinelGroup {
    opts: SentinelOptions,
    // Declared before `nodes` so the sentinels die first on drop and never
    // react to the data nodes going away.
    sentinels: Vec<RedisProcess>,
    nodes: Vec<RedisServer>,
    // The certificate files of every process, when TLS is on; declared last so
    // they are removed only after all processes are gone.
    tls: Option<SharedTls>,
}

impl SentinelGroup {
    /// Starts a group with default options; see [`start_with`](Self::start_with).
    pub fn start() -> Result<SentinelGroup, TestkitError> {
        Self::start_with(SentinelOptions::default())
    }

    /// Starts the master, then the replicas, then the sentinels, and waits (at
    /// most 30 s) until every replica's link to the master is up and every
    /// sentinel monitors the master and knows all replicas and the other two
    /// sentinels — i.e. until a failover would work.
    pub fn start_with(opts: SentinelOptions) -> Result<SentinelGroup, TestkitError> {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        if opts.tls && opts.run_as.is_some() {
            return Err(TestkitError::Unexpected {
                message: "a sentinel group cannot combine tls with run_as".to_owned(),
                log_tail: format_tail(""),
            });
        }
        let tls = if opts.tls { Some(SharedTls::generate()?) } else { None };
        let files = tls.as_ref().map(|tls| &tls.files);
        let master = RedisServer::start_sharing_tls(data_node_options(&opts, None), files)?;
        let master_port = master.port();
        let mut group = SentinelGroup { opts, sentinels: Vec::new(), nodes: vec![master], tls };
        for _ in 0..group.opts.replicas {
            let opts = RedisOptions {
                run_as: group.opts.run_as,
                ..data_node_options(&group.opts, Some(master_port))
            };
            let replica = RedisServer::start_sharing_tls(opts, group.tls_files())?;
            group.nodes.push(replica);
        }
        // Sentinels learn about replicas from the master's INFO, so they are
        // started once the replicas are attached.
        for i in 1..group.nodes.len() {
            group.wait_for_link(i, master_port, remaining(deadline))?;
        }
        for _ in 0..SENTINELS {
            let sentinel = start_sentinel(&group.opts, master_port, group.tls_files())?;
            group.sentinels.push(sentinel);
        }
        wait_until(
            "every sentinel to know the master, the replicas and the other sentinels",
            remaining(deadline),
            || group.sentinels_ready(master_port),
            || group.logs(),
        )?;
        Ok(group)
    }

    /// The name the sentinels monitor the master under.
    pub fn master_name(&self) -> &str {
        &self.opts.master_name
    }

    /// A connection URL listing the three sentinels:
    /// `redis+sentinel://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3/NAME`
    /// (`rediss+sentinel://…` with TLS), with the data nodes' credentials
    /// before the first host: `USER:PASS@` for the ACL user when one is
    /// configured, else `:PASS@` when a password is set (the sentinels need
    /// none). User and password are percent-encoded.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "rediss+sentinel" } else { "redis+sentinel" };
        let auth = url_userinfo(credentials(&self.opts));
        let hosts: Vec<String> =
            self.sentinel_ports().iter().map(|port| format!("127.0.0.1:{port}")).collect();
        format!("{scheme}://{auth}{}/{}", hosts.join(","), percent_encode(&self.opts.master_name))
    }

    /// PEM of the CA that signed the certificate of every data node and
    /// sentinel, when TLS is enabled.
    pub fn ca_cert_pem(&self) -> Option<String> {
        self.tls.as_ref().map(|tls| tls.files.ca_pem.clone())
    }

    /// The ports of the three sentinels.
    pub fn sentinel_ports(&self) -> Vec<u16> {
        self.sentinels.iter().map(RedisProcess::port).collect()
    }

    /// Process ids of the three sentinels (`None` for one that has exited).
    pub fn sentinel_pids(&self) -> Vec<Option<u32>> {
        self.sentinels.iter().map(RedisProcess::pid).collect()
    }

    /// Runs `redis-cli` against sentinel `index` (with the sentinels' own
    /// password when they require one; `--tls` when TLS is enabled), like
    /// [`RedisServer::cli`], as the sentinel's user.
    ///
    /// # Panics
    ///
    /// Panics if `index` is not below 3.
    pub fn sentinel_cli(&self, index: usize, args: &[&str]) -> Result<String, TestkitError> {
        sentinel_cli(&self.sentinels[index], self.sentinel_auth(), self.tls_files(), args)
    }

    /// The data nodes: index 0 is the initial master, the others its replicas.
    pub fn data_nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// The data nodes, mutably (e.g. to [`RedisServer::stop`] one).
    ///
    /// Note that [`RedisServer::start_again`] restarts a node with the
    /// arguments it was last started with (so a former master comes back as a
    /// master, until the sentinels reconfigure it some seconds later); prefer
    /// [`restart_node`](Self::restart_node), which follows failovers.
    pub fn data_nodes_mut(&mut self) -> &mut [RedisServer] {
        &mut self.nodes
    }

    /// The port of the master according to the sentinels (the first one that
    /// answers `SENTINEL get-master-addr-by-name`).
    pub fn current_master_port(&self) -> Result<u16, TestkitError> {
        let mut last = String::from("no sentinel is running");
        for sentinel in self.sentinels.iter().filter(|s| s.pid().is_some()) {
            match self.master_port_from(sentinel) {
                Ok(port) => return Ok(port),
                Err(reason) => last = reason,
            }
        }
        Err(TestkitError::Unexpected {
            message: format!("no sentinel reports a master: {last}"),
            log_tail: self.logs(),
        })
    }

    /// The index (into [`data_nodes`](Self::data_nodes)) of the master
    /// according to the sentinels.
    pub fn current_master(&self) -> Result<usize, TestkitError> {
        let port = self.current_master_port()?;
        self.node_index(port)
    }

    /// Kills the current master (SIGKILL, by the pid of its process) and
    /// returns its index in [`data_nodes`](Self::data_nodes). The sentinels
    /// are left to notice; see [`wait_for_failover`](Self::wait_for_failover).
    pub fn kill_master(&mut self) -> Result<usize, TestkitError> {
        let index = self.current_master()?;
        self.nodes[index].stop();
        Ok(index)
    }

    /// Waits (at most `timeout`) until every running sentinel reports the same
    /// master, on a port other than `old_port`, and that node's `ROLE` says
    /// `master`. Returns the new master's port.
    pub fn wait_for_failover(&self, old_port: u16, timeout: Duration) -> Result<u16, TestkitError> {
        wait_until(
            &format!("the sentinels to promote a new master instead of port {old_port}"),
            timeout,
            || {
                let port = self.agreed_master_port()?;
                if port == old_port {
                    return Err(format!("the sentinels still report port {old_port}"));
                }
                let index = self.node_index(port).map_err(|err| err.to_string())?;
                let role = self.nodes[index].cli(&["ROLE"]).map_err(|err| err.to_string())?;
                match role.lines().next() {
                    Some("master") => Ok(port),
                    first => Err(format!("port {port} reports role {first:?}")),
                }
            },
            || self.logs(),
        )
    }

    /// Restarts data node `index` on its port and directory.
    ///
    /// If the sentinels report another node as the master, the node is
    /// started as a replica of that master (as the sentinels would reconfigure
    /// it anyway), and when that master is running this waits (at most 30 s)
    /// until the replication link is up. If the node itself is the reported
    /// master, it is started as a master.
    ///
    /// # Panics
    ///
    /// Panics if `index` is out of range.
    pub fn restart_node(&mut self, index: usize) -> Result<(), TestkitError> {
        let master_port = self.current_master_port()?;
        let own_port = self.nodes[index].port();
        let replica_of = (master_port != own_port).then_some(master_port);
        let args = data_node_options(&self.opts, replica_of).extra_args;
        let node = &mut self.nodes[index];
        node.opts.extra_args = args;
        node.start_again()?;
        let master_running =
            self.node_index(master_port).is_ok_and(|i| self.nodes[i].pid().is_some());
        if replica_of.is_some() && master_running {
            self.wait_for_link(index, master_port, SETTLE_TIMEOUT)?;
        }
        Ok(())
    }

    /// The last lines of every process's log, labelled, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let _ = writeln!(
                out,
                "=== data node {i} (127.0.0.1:{}, pid {:?}) ===\n{}",
                node.port(),
                node.pid(),
                node.short_diagnostics(LOG_LINES)
            );
        }
        for (i, sentinel) in self.sentinels.iter().enumerate() {
            let _ = writeln!(
                out,
                "=== sentinel {i} (127.0.0.1:{}, pid {:?}) ===\n{}",
                sentinel.port(),
                sentinel.pid(),
                sentinel.short_diagnostics(LOG_LINES)
            );
        }
        out
    }

    /// The shared certificate files, when TLS is enabled.
    fn tls_files(&self) -> Option<&TlsFiles> {
        self.tls.as_ref().map(|tls| &tls.files)
    }

    /// The index of the data node listening on `port`.
    fn node_index(&self, port: u16) -> Result<usize, TestkitError> {
        self.nodes.iter().position(|node| node.port() == port).ok_or_else(|| {
            TestkitError::Unexpected {
                message: format!("the sentinels report a master on port {port}, not a data node"),
                log_tail: self.logs(),
            }
        })
    }

    /// The sentinels' own credentials for `redis-cli`, if they require a password.
    fn sentinel_auth(&self) -> Option<(Option<&str>, &str)> {
        self.opts.sentinel_password.as_deref().map(|p| (None, p))
    }

    /// Asks one sentinel for the master's port.
    fn master_port_from(&self, sentinel: &RedisProcess) -> Result<u16, String> {
        let reply = sentinel_cli(
            sentinel,
            self.sentinel_auth(),
            self.tls_files(),
            &["SENTINEL", "get-master-addr-by-name", &self.opts.master_name],
        )
        .map_err(|err| first_line(&err.to_string()))?;
        let mut lines = reply.lines();
        match (lines.next(), lines.next().map(str::parse::<u16>)) {
            (Some("127.0.0.1"), Some(Ok(port))) => Ok(port),
            _ => Err(format!(
                "sentinel on port {} answered get-master-addr-by-name with {reply:?}",
                sentinel.port()
            )),
        }
    }

    /// The master port all running sentinels agree on.
    fn agreed_master_port(&self) -> Result<u16, String> {
        let mut agreed = None;
        for sentinel in self.sentinels.iter().filter(|s| s.pid().is_some()) {
            let port = self.master_port_from(sentinel)?;
            match agreed {
                Some(other) if other != port => {
                    return Err(format!("sentinels disagree: ports {other} and {port}"));
                }
                _ => agreed = Some(port),
            }
        }
        agreed.ok_or_else(|| "no sentinel is running".to_owned())
    }

    /// One check of the start condition: every sentinel reports `master_port`
    /// as the master, sees 2 other sentinels and all replicas, and has heard
    /// from each replica that its link to the master is up.
    fn sentinels_ready(&self, master_port: u16) -> Result<(), String> {
        let name = self.opts.master_name.as_str();
        for sentinel in &self.sentinels {
            let port = sentinel.port();
            let reported = self.master_port_from(sentinel)?;
            if reported != master_port {
                return Err(format!("sentinel {port} reports master port {reported}"));
            }
            let master = sentinel_cli(
                sentinel,
                self.sentinel_auth(),
                self.tls_files(),
                &["SENTINEL", "master", name],
            )
            .map_err(|err| first_line(&err.to_string()))?;
            let master = field_map(&master);
            let others = master.get("num-other-sentinels").map(String::as_str);
            if others != Some("2") {
                return Err(format!("sentinel {port} knows {others:?} other sentinels"));
            }
            let replicas = sentinel_cli(
                sentinel,
                self.sentinel_auth(),
                self.tls_files(),
                &["SENTINEL", "replicas", name],
            )
            .map_err(|err| first_line(&err.to_string()))?;
            let replicas = records(&replicas);
            if replicas.len() < self.opts.replicas {
                return Err(format!("sentinel {port} knows {} replicas", replicas.len()));
            }
            for replica in &replicas {
                let get = |key: &str| replica.get(key).map(String::as_str);
                if get("flags") != Some("slave") || get("master-link-status") != Some("ok") {
                    return Err(format!(
                        "sentinel {port} sees replica {:?} with flags {:?}, link {:?}",
                        get("name"),
                        get("flags"),
                        get("master-link-status")
                    ));
                }
            }
        }
        Ok(())
    }

    /// Waits until data node `index` reports a replication link that is up to
    /// the master on `master_port`.
    fn wait_for_link(
        &self,
        index: usize,
        master_port: u16,
        timeout: Duration,
    ) -> Result<(), TestkitError> {
        let node = &self.nodes[index];
        wait_until(
            &format!("data node {index} to replicate from port {master_port}"),
            timeout,
            || {
                let info =
                    node.cli(&["INFO", "replication"]).map_err(|e| first_line(&e.to_string()))?;
                let port = info_field(&info, "master_port");
                let link = info_field(&info, "master_link_status");
                if port == Some(master_port.to_string().as_str()) && link == Some("up") {
                    Ok(())
                } else {
                    Err(format!("master_port {port:?}, master_link_status {link:?}"))
                }
            },
            || self.logs(),
        )
    }
}

/// The credentials clients (and sentinels, and replicas) use on the data
/// nodes: the ACL user when there is one, else the default user's password.
fn credentials(opts: &SentinelOptions) -> Option<(Option<&str>, &str)> {
    preferred_credentials(opts.acl_user.as_ref(), opts.password.as_deref())
}

/// Options for a data node: the group's password, ACL user, persistence and
/// TLS (replication over TLS too), diskless replication, and `replicaof` when
/// `replica_of` is given.
fn data_node_options(opts: &SentinelOptions, replica_of: Option<u16>) -> RedisOptions {
    let mut extra_args: Vec<String> =
        ["--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0"]
            .into_iter()
            .map(str::to_owned)
            .collect();
    if opts.tls {
        extra_args.extend(["--tls-replication".to_owned(), "yes".to_owned()]);
    }
    // Every node may become a replica after a failover, so all of them need
    // the credentials of the master they will follow.
    extra_args.extend(replication_auth_args(credentials(opts)));
    if let Some(port) = replica_of {
        extra_args.extend(["--replicaof".to_owned(), "127.0.0.1".to_owned(), port.to_string()]);
    }
    RedisOptions {
        password: opts.password.clone(),
        acl_user: opts.acl_user.clone(),
        appendonly: opts.appendonly,
        tls: opts.tls,
        extra_args,
        run_as: None,
        flavor: opts.flavor,
    }
}

/// The `sentinel.conf` for a sentinel monitoring the master on `master_port`.
fn sentinel_conf(opts: &SentinelOptions, master_port: u16) -> String {
    let name = quote(&opts.master_name);
    let mut conf = format!(
        "sentinel resolve-hostnames no\n\
         sentinel monitor {name} 127.0.0.1 {master_port} {QUORUM}\n\
         sentinel down-after-milliseconds {name} {DOWN_AFTER_MS}\n\
         sentinel failover-timeout {name} {FAILOVER_TIMEOUT_MS}\n\
         sentinel parallel-syncs {name} 1\n"
    );
    if let Some((user, pass)) = credentials(opts) {
        if let Some(user) = user {
            let _ = writeln!(conf, "sentinel auth-user {name} {}", quote(user));
        }
        let _ = writeln!(conf, "sentinel auth-pass {name} {}", quote(pass));
    }
    if let Some(pass) = &opts.sentinel_password {
        let _ = writeln!(conf, "requirepass {}", quote(pass));
        let _ = writeln!(conf, "sentinel sentinel-pass {}", quote(pass));
    }
    conf
}

/// Writes the configuration of a sentinel into a new directory and starts it
/// on a free port (a TLS-only port when `tls` is given).
fn start_sentinel(
    opts: &SentinelOptions,
    master_port: u16,
    tls: Option<&TlsFiles>,
) -> Result<RedisProcess, TestkitError> {
    let mut process = RedisProcess::new("sesame-sentinel-", opts.run_as)?;
    process.use_program(opts.flavor.program());
    // Sentinels rewrite their configuration file, so each needs its own.
    let conf_path = process.dir().join("sentinel.conf");
    fs::write(&conf_path, sentinel_conf(opts, master_port)).map_err(|source| TestkitError::Io {
        context: format!("cannot write {}", conf_path.display()),
        source,
        log_tail: format_tail(""),
    })?;
    process.hand_over(&conf_path)?;
    let args = |process: &RedisProcess, port: u16| sentinel_args(&conf_path, process, port, tls);
    let auth = opts.sentinel_password.as_deref().map(|p| (None, p));
    let probe = |port| probe_pid(port, auth, tls);
    process.start_on_free_port(&args, &probe)?;
    Ok(process)
}

/// The command line of a sentinel on `port`. With `tls`, it serves TLS only,
/// talks TLS to the data nodes and the other sentinels (`tls-replication`),
/// and asks its clients for no certificate.
fn sentinel_args(
    conf_path: &Path,
    process: &RedisProcess,
    port: u16,
    tls: Option<&TlsFiles>,
) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![conf_path.into(), "--sentinel".into()];
    let port = port.to_string();
    let ports: &[&str] = match tls {
        None => &["--port", &port],
        Some(_) => &[
            "--port",
            "0",
            "--tls-port",
            &port,
            "--tls-replication",
            "yes",
            "--tls-auth-clients",
            "no",
        ],
    };
    args.extend(ports.iter().map(OsString::from));
    args.extend(["--bind", "127.0.0.1", "--daemonize", "no"].map(OsString::from));
    let mut paths = vec![("--dir", process.dir()), ("--logfile", process.log_path())];
    if let Some(tls) = tls {
        paths.push(("--tls-cert-file", &tls.cert_path));
        paths.push(("--tls-key-file", &tls.key_path));
        paths.push(("--tls-ca-cert-file", &tls.ca_path));
    }
    for (name, path) in paths {
        args.push(name.into());
        args.push(path.into());
    }
    args
}

/// Runs `redis-cli` against a sentinel (with `auth` when given; `--tls` when
/// `tls` is given), as the sentinel's user.
fn sentinel_cli(
    sentinel: &RedisProcess,
    auth: Option<(Option<&str>, &str)>,
    tls: Option<&TlsFiles>,
    args: &[&str],
) -> Result<String, TestkitError> {
    let mut cmd = cli_command(sentinel.port(), auth, tls);
    if let Some(user) = sentinel.run_as() {
        user.apply(&mut cmd);
    }
    run_cli(cmd, args, || sentinel.diagnostics())
}

/// Quotes `text` for a Redis configuration file (a double-quoted string with
/// backslash escapes), so passwords and names may contain any byte.
fn quote(text: &str) -> String {
    let mut out = String::from("\"");
    for byte in text.bytes() {
        match byte {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(char::from(byte));
            }
            b' '..=b'~' => out.push(char::from(byte)),
            _ => {
                let _ = write!(out, "\\x{byte:02x}");
            }
        }
    }
    out.push('"');
    out
}

/// Parses a flat `field, value, field, value…` reply (one item per line, as
/// `redis-cli` prints `SENTINEL master`).
fn field_map(reply: &str) -> BTreeMap<String, String> {
    let lines: Vec<&str> = reply.lines().collect();
    lines.chunks_exact(2).map(|pair| (pair[0].to_owned(), pair[1].to_owned())).collect()
}

/// Splits a flattened list of field/value records (as `redis-cli` prints
/// `SENTINEL replicas`) into one map per record; each record starts with its
/// `name` field.
fn records(reply: &str) -> Vec<BTreeMap<String, String>> {
    let lines: Vec<&str> = reply.lines().collect();
    let mut out: Vec<BTreeMap<String, String>> = Vec::new();
    for pair in lines.chunks_exact(2) {
        if pair[0] == "name" || out.is_empty() {
            out.push(BTreeMap::new());
        }
        if let Some(record) = out.last_mut() {
            record.insert(pair[0].to_owned(), pair[1].to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_configuration_strings() {
        assert_eq!(quote("sesame"), "\"sesame\"");
        assert_eq!(quote("a \"b\" \\c"), "\"a \\\"b\\\" \\\\c\"");
        assert_eq!(quote("é\n"), "\"\\xc3\\xa9\\x0a\"");
    }

    #[test]
    fn sentinel_conf_has_auth_pass_only_with_a_password() {
        let plain = sentinel_conf(&SentinelOptions::default(), 4242);
        assert!(plain.contains("sentinel monitor \"sesame\" 127.0.0.1 4242 2\n"), "{plain}");
        assert!(!plain.contains("auth-pass"));
        let opts =
            SentinelOptions { password: Some("pw".to_owned()), ..SentinelOptions::default() };
        assert!(sentinel_conf(&opts, 1).contains("sentinel auth-pass \"sesame\" \"pw\"\n"));
    }

    #[test]
    fn data_nodes_get_masterauth_and_replicaof() {
        let opts =
            SentinelOptions { password: Some("pw".to_owned()), ..SentinelOptions::default() };
        let args = data_node_options(&opts, Some(7000)).extra_args.join(" ");
        assert!(args.contains("--masterauth pw"), "{args}");
        assert!(args.ends_with("--replicaof 127.0.0.1 7000"), "{args}");
        assert!(!data_node_options(&opts, None).extra_args.contains(&"--replicaof".to_owned()));
    }

    #[test]
    fn an_acl_user_is_used_for_auth_and_replication() {
        let opts = SentinelOptions {
            password: Some("default pw".to_owned()),
            acl_user: Some(("app".to_owned(), "app pw".to_owned())),
            tls: true,
            ..SentinelOptions::default()
        };
        let conf = sentinel_conf(&opts, 1);
        assert!(conf.contains("sentinel auth-user \"sesame\" \"app\"\n"), "{conf}");
        assert!(conf.contains("sentinel auth-pass \"sesame\" \"app pw\"\n"), "{conf}");
        let node = data_node_options(&opts, Some(7000));
        let args = node.extra_args.join(" ");
        assert!(args.contains("--masteruser app --masterauth app pw"), "{args}");
        assert!(args.contains("--tls-replication yes"), "{args}");
        assert!(node.tls);
        assert_eq!(node.password.as_deref(), Some("default pw"));
        assert_eq!(node.acl_user, opts.acl_user);
    }

    #[test]
    fn tls_sentinels_serve_and_replicate_over_tls_only() {
        let tls = SharedTls::generate().unwrap();
        let process = RedisProcess::new("sesame-test-", None).unwrap();
        let conf = process.dir().join("sentinel.conf");
        let args: Vec<String> = sentinel_args(&conf, &process, 4242, Some(&tls.files))
            .iter()
            .map(|arg| arg.to_string_lossy().into_owned())
            .collect();
        let args = args.join(" ");
        assert!(
            args.contains("--sentinel --port 0 --tls-port 4242 --tls-replication yes"),
            "{args}"
        );
        assert!(args.contains("--tls-auth-clients no"), "{args}");
        assert!(args.contains("--tls-ca-cert-file"), "{args}");
        let plain = sentinel_args(&conf, &process, 4242, None);
        assert!(!plain.iter().any(|arg| arg.to_string_lossy().starts_with("--tls")));
    }

    #[test]
    fn parses_flat_replies() {
        let master = field_map("name\nsesame\nnum-slaves\n1\nnum-other-sentinels\n2");
        assert_eq!(master.get("num-other-sentinels").map(String::as_str), Some("2"));
        let replicas = records("name\n127.0.0.1:1\nflags\nslave\nname\n127.0.0.1:2\nflags\ns_down");
        assert_eq!(replicas.len(), 2);
        assert_eq!(replicas[1].get("flags").map(String::as_str), Some("s_down"));
    }
}
