//! A Redis Cluster of six nodes (three masters with one replica each) on
//! `127.0.0.1`, with a short node timeout so that failovers take seconds.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::client::add_connection_args;
use crate::proc::run_with_timeout;
use crate::server::{preferred_credentials, replication_auth_args, url_userinfo};
use crate::tls::{SharedTls, TlsFiles};
use crate::wait::{first_line, info_field, remaining, wait_until};
use crate::{Flavor, RedisOptions, RedisServer, RunAs, TestkitError};

/// Number of nodes: three masters and three replicas.
const NODES: usize = 6;
/// Number of hash slots in a Redis Cluster.
const SLOTS: u32 = 16_384;
/// `cluster-node-timeout`: how long a node may be unreachable before it is
/// considered failing.
const NODE_TIMEOUT_MS: u32 = 2_000;
/// How long [`Cluster::start_with`] may take in all.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long [`Cluster::restart_node`] waits for the cluster to settle again.
const RESTART_TIMEOUT: Duration = Duration::from_secs(30);
/// Log lines per node in the cluster's diagnostics.
const LOG_LINES: usize = 15;

/// How to configure a [`Cluster`].
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// `requirepass` for the default user on every node; without
    /// [`acl_user`](Self::acl_user) also their `masterauth`.
    pub password: Option<String>,
    /// `appendonly yes` with `appendfsync always` on every node.
    pub appendonly: bool,
    /// An extra ACL user `(name, password)` with full rights (`~* &* +@all`)
    /// on every node, next to the default user. When set, replicas replicate
    /// as this user (`masteruser` / `masterauth`), `redis-cli --cluster
    /// create` and [`RedisServer::cli`] authenticate as it, and
    /// [`Cluster::url`] carries its credentials.
    pub acl_user: Option<(String, String)>,
    /// Serve TLS only (`port 0`, `tls-port`), with the cluster bus and
    /// replication over TLS as well (`tls-cluster`, `tls-replication`). One
    /// freshly generated CA signs the single server certificate (valid for
    /// `127.0.0.1` and `localhost`) every node uses, so
    /// [`Cluster::ca_cert_pem`] is all a client needs to trust. Client
    /// certificates are not required. The bus port is the TLS port + 10000.
    pub tls: bool,
    /// The user each node runs as, by index (node `i` as `run_as[i]`); nodes past the end of
    /// the list, and `None` entries, run as this process's user. Lets a
    /// [`Partition`](crate::Partition) cut some nodes off from the others: with node 0 (a
    /// master once created, as `redis-cli` makes the first three nodes masters) as this
    /// process's user and the other five as [`RunAs::NOBODY`](crate::RunAs::NOBODY), node 0
    /// and this process form side A. Needs root; cannot be combined with `tls`.
    pub run_as: Vec<Option<RunAs>>,
    /// The server program of every node (Redis by default).
    pub flavor: Flavor,
}

/// A Redis Cluster of six nodes, each a child process with its own free port
/// and temporary directory on `127.0.0.1`: three masters sharing the 16384
/// slots and one replica per master, as `redis-cli --cluster create
/// --cluster-replicas 1` lays them out.
///
/// Which index is a master is decided by `redis-cli` and changes with
/// failovers; ask [`masters`](Self::masters) or
/// [`master_for_slot`](Self::master_for_slot). The node timeout is 2 s, so a
/// failover after [`kill_node`](Self::kill_node) usually completes within a
/// few seconds.
///
/// Dropping the cluster kills every node and removes the directories.
#[derive(Debug)]
pub struct Cluster {
    opts: ClusterOptions,
    nodes: Vec<RedisServer>,
    // The certificate files of every node, when TLS is on; declared last so
    // they are removed only after all nodes are gone.
    tls: Option<SharedTls>,
}

impl Cluster {
    /// Starts a cluster with default options; see [`start_with`](Self::start_with).
    pub fn start() -> Result<Cluster, TestkitError> {
        Self::start_with(ClusterOptions::default())
    }

    /// Starts six cluster-enabled nodes, joins them with `redis-cli --cluster
    /// create`, and waits (at most 60 s in all) until every node reports
    /// `cluster_state:ok` with all slots assigned, all nodes agree on who
    /// serves which slot, and every replica's link to its master is up.
    pub fn start_with(opts: ClusterOptions) -> Result<Cluster, TestkitError> {
        let deadline = Instant::now() + START_TIMEOUT;
        if opts.tls && opts.run_as.iter().any(Option::is_some) {
            return Err(TestkitError::Unexpected {
                message: "a cluster cannot combine tls with run_as".to_owned(),
                log_tail: String::new(),
            });
        }
        let tls = if opts.tls { Some(SharedTls::generate()?) } else { None };
        let mut cluster = Cluster { opts, nodes: Vec::with_capacity(NODES), tls };
        for index in 0..NODES {
            let mut node_opts = node_options(&cluster.opts);
            node_opts.run_as = cluster.opts.run_as.get(index).copied().flatten();
            let node = RedisServer::start_sharing_tls(node_opts, cluster.tls_files())?;
            cluster.nodes.push(node);
        }
        cluster.create(remaining(deadline))?;
        wait_until(
            "the new cluster to settle",
            remaining(deadline),
            || cluster.settled(None),
            || cluster.logs(),
        )?;
        Ok(cluster)
    }

    /// A connection URL listing all six nodes:
    /// `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,…` (`rediss+cluster://…`
    /// with TLS), with `USER:PASS@` before the first host when an ACL user is
    /// configured, else `:PASS@` when a password is set (percent-encoded).
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "rediss+cluster" } else { "redis+cluster" };
        let auth = url_userinfo(credentials(&self.opts));
        let hosts: Vec<String> =
            self.nodes.iter().map(|node| format!("127.0.0.1:{}", node.port())).collect();
        format!("{scheme}://{auth}{}", hosts.join(","))
    }

    /// PEM of the CA that signed every node's certificate, when TLS is
    /// enabled.
    pub fn ca_cert_pem(&self) -> Option<String> {
        self.tls.as_ref().map(|tls| tls.files.ca_pem.clone())
    }

    /// The six nodes.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// Node `index`, mutably (e.g. to [`RedisServer::stop`] it).
    ///
    /// # Panics
    ///
    /// Panics if `index` is not below 6.
    pub fn node_mut(&mut self, index: usize) -> &mut RedisServer {
        &mut self.nodes[index]
    }

    /// The hash slot of `key`, from `CLUSTER KEYSLOT` on a running node.
    pub fn keyslot(&self, key: &str) -> Result<u16, TestkitError> {
        let node = self.any_live_node()?;
        let reply = node.cli(&["CLUSTER", "KEYSLOT", key])?;
        reply.parse().map_err(|_| TestkitError::Unexpected {
            message: format!("CLUSTER KEYSLOT answered {reply:?}"),
            log_tail: node.diagnostics(),
        })
    }

    /// The index of the node serving `slot` as master, according to the
    /// `CLUSTER NODES` view of the first running node. Until a failover has
    /// completed this may still be a node that was killed.
    pub fn master_for_slot(&self, slot: u16) -> Result<usize, TestkitError> {
        self.master_for_slot_seen_by(self.any_live_node()?, slot)
    }

    /// The index of the node serving `slot` as master, according to the
    /// `CLUSTER NODES` view of `observer` (e.g. a node on the far side of a
    /// [`Partition`](crate::Partition), asked as its own user).
    pub fn master_for_slot_seen_by(
        &self,
        observer: &RedisServer,
        slot: u16,
    ) -> Result<usize, TestkitError> {
        let node = observer;
        let view = parse_cluster_nodes(&node.cli(&["CLUSTER", "NODES"])?);
        let owner = view
            .iter()
            .filter(|entry| entry.is_master())
            .find(|entry| entry.slots.iter().any(|&(from, to)| (from..=to).contains(&slot)));
        let Some(owner) = owner else {
            return Err(TestkitError::Unexpected {
                message: format!("no master serves slot {slot}"),
                log_tail: self.logs(),
            });
        };
        self.nodes.iter().position(|n| n.port() == owner.port).ok_or_else(|| {
            TestkitError::Unexpected {
                message: format!("slot {slot} is served by unknown port {}", owner.port),
                log_tail: self.logs(),
            }
        })
    }

    /// The slot ranges (inclusive) node `index` serves as master, according to the
    /// `CLUSTER NODES` view of the first running node; empty for a replica.
    pub fn slots_of(&self, index: usize) -> Result<Vec<(u16, u16)>, TestkitError> {
        let port = self.nodes.get(index).map(RedisServer::port).ok_or_else(|| {
            TestkitError::Unexpected {
                message: format!("no node {index}"),
                log_tail: String::new(),
            }
        })?;
        let view = parse_cluster_nodes(&self.any_live_node()?.cli(&["CLUSTER", "NODES"])?);
        Ok(view
            .into_iter()
            .filter(|entry| entry.port == port && entry.is_master())
            .flat_map(|entry| entry.slots)
            .collect())
    }

    /// Indices of the running nodes whose `ROLE` says `master`.
    pub fn masters(&self) -> Result<Vec<usize>, TestkitError> {
        let mut masters = Vec::new();
        for (index, node) in self.nodes.iter().enumerate() {
            if node.pid().is_some() && node.cli(&["ROLE"])?.lines().next() == Some("master") {
                masters.push(index);
            }
        }
        Ok(masters)
    }

    /// Kills node `index` (SIGKILL, by the pid of its process). The cluster is
    /// left to notice; see [`wait_for_failover`](Self::wait_for_failover).
    ///
    /// # Panics
    ///
    /// Panics if `index` is not below 6.
    pub fn kill_node(&mut self, index: usize) {
        self.nodes[index].stop();
    }

    /// Waits (at most `timeout`) until the node `killed` serves no slot any
    /// more and the cluster has settled again: every running node reports
    /// `cluster_state:ok`, all of them agree that every slot is served by a
    /// running master, and every running replica's link is up.
    ///
    /// Returns at once (after one check) when `killed` was a replica.
    ///
    /// # Panics
    ///
    /// Panics if `killed` is not below 6.
    pub fn wait_for_failover(&self, killed: usize, timeout: Duration) -> Result<(), TestkitError> {
        wait_until(
            &format!("the slots of node {killed} to fail over"),
            timeout,
            || self.settled(Some(killed)),
            || self.logs(),
        )
    }

    /// Restarts node `index` on its port and directory (it keeps its
    /// `nodes.conf`, so it rejoins as the same node; a former master whose
    /// slots were taken over comes back as a replica) and waits (at most
    /// 30 s) until the cluster has settled again, as in
    /// [`wait_for_failover`](Self::wait_for_failover).
    ///
    /// # Panics
    ///
    /// Panics if `index` is not below 6.
    pub fn restart_node(&mut self, index: usize) -> Result<(), TestkitError> {
        self.nodes[index].start_again()?;
        wait_until(
            &format!("node {index} to rejoin the cluster"),
            RESTART_TIMEOUT,
            || self.settled(None),
            || self.logs(),
        )
    }

    /// The last lines of every node's log, labelled, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let _ = writeln!(
                out,
                "=== cluster node {i} (127.0.0.1:{}, pid {:?}) ===\n{}",
                node.port(),
                node.pid(),
                node.short_diagnostics(LOG_LINES)
            );
        }
        out
    }

    /// The shared certificate files, when TLS is enabled.
    fn tls_files(&self) -> Option<&TlsFiles> {
        self.tls.as_ref().map(|tls| &tls.files)
    }

    /// The first running node.
    fn any_live_node(&self) -> Result<&RedisServer, TestkitError> {
        self.nodes.iter().find(|node| node.pid().is_some()).ok_or_else(|| {
            TestkitError::Unexpected {
                message: "no cluster node is running".to_owned(),
                log_tail: self.logs(),
            }
        })
    }

    /// Runs `redis-cli --cluster create` over all nodes (authenticating and
    /// using TLS as the nodes require).
    fn create(&self, timeout: Duration) -> Result<(), TestkitError> {
        let cmd = create_command(
            &self.nodes.iter().map(RedisServer::port).collect::<Vec<_>>(),
            credentials(&self.opts),
            self.tls_files(),
        );
        let done = run_with_timeout(cmd, timeout).map_err(|source| TestkitError::Io {
            context: "cannot run redis-cli (is it on PATH?)".to_owned(),
            source,
            log_tail: self.logs(),
        })?;
        let covered = done.stdout.contains(&format!("All {SLOTS} slots covered"));
        match done.status {
            Some(status) if status.success() && covered => Ok(()),
            status => Err(TestkitError::Cli {
                args: "--cluster create …".to_owned(),
                reason: match status {
                    Some(status) => format!("exited with {status}; stdout:\n{}", done.stdout),
                    None => format!("no answer within {timeout:?}; stdout:\n{}", done.stdout),
                },
                stderr: done.stderr,
                log_tail: self.logs(),
            }),
        }
    }

    /// One check of a settled cluster, as seen by every running node: the
    /// node says `cluster_state:ok` with all slots assigned; its view lists
    /// all six nodes, flags no running node as failing, and has every slot
    /// served by a running master (never by node `gone`); all views agree on
    /// who serves what; and a replica's link to its master is up.
    fn settled(&self, gone: Option<usize>) -> Result<(), String> {
        let live: BTreeSet<u16> =
            self.nodes.iter().filter(|node| node.pid().is_some()).map(RedisServer::port).collect();
        let gone_port = gone.map(|index| self.nodes[index].port());
        let mut agreed: Option<(u16, SlotOwners)> = None;
        for node in self.nodes.iter().filter(|node| node.pid().is_some()) {
            let port = node.port();
            let ask = |args: &[&str]| node.cli(args).map_err(|err| first_line(&err.to_string()));

            let info = ask(&["CLUSTER", "INFO"])?;
            let state = info_field(&info, "cluster_state");
            let assigned = info_field(&info, "cluster_slots_assigned");
            if state != Some("ok") || assigned != Some("16384") {
                return Err(format!(
                    "node {port}: cluster_state {state:?}, cluster_slots_assigned {assigned:?}"
                ));
            }

            let view = parse_cluster_nodes(&ask(&["CLUSTER", "NODES"])?);
            for other in &self.nodes {
                let entry = view.iter().find(|entry| entry.port == other.port());
                match entry {
                    None => return Err(format!("node {port} does not know node {}", other.port())),
                    Some(entry) if live.contains(&entry.port) && entry.is_failing() => {
                        return Err(format!(
                            "node {port} flags node {} {}",
                            entry.port, entry.flags
                        ))
                    }
                    Some(_) => {}
                }
            }
            let owners = slot_owners(&view);
            let served: u32 =
                owners.iter().map(|&(from, to, _)| u32::from(to.saturating_sub(from)) + 1).sum();
            if served != SLOTS {
                return Err(format!("node {port} sees {served} slots served"));
            }
            if let Some(&(from, _, owner)) = owners
                .iter()
                .find(|&&(_, _, owner)| !live.contains(&owner) || Some(owner) == gone_port)
            {
                return Err(format!("node {port} sees slot {from} served by node {owner}"));
            }
            match &agreed {
                Some((other, agreed_owners)) if *agreed_owners != owners => {
                    return Err(format!("nodes {other} and {port} disagree on the slot owners"));
                }
                Some(_) => {}
                None => agreed = Some((port, owners)),
            }

            let replication = ask(&["INFO", "replication"])?;
            if info_field(&replication, "role") == Some("slave") {
                let link = info_field(&replication, "master_link_status");
                if link != Some("up") {
                    return Err(format!("replica {port}: master_link_status {link:?}"));
                }
            }
        }
        Ok(())
    }
}

/// The credentials clients (and replicas) use on the nodes: the ACL user when
/// there is one, else the default user's password.
fn credentials(opts: &ClusterOptions) -> Option<(Option<&str>, &str)> {
    preferred_credentials(opts.acl_user.as_ref(), opts.password.as_deref())
}

/// `redis-cli [credentials] [--tls --cacert CA] --cluster create …` over the
/// nodes on `ports`, one replica per master, without asking for confirmation.
fn create_command(
    ports: &[u16],
    credentials: Option<(Option<&str>, &str)>,
    tls: Option<&TlsFiles>,
) -> Command {
    let mut cmd = Command::new("redis-cli");
    // The same credentials and TLS settings serve every listed node.
    add_connection_args(&mut cmd, credentials, tls);
    cmd.args(["--cluster", "create"]);
    cmd.args(ports.iter().map(|port| format!("127.0.0.1:{port}")));
    cmd.args(["--cluster-replicas", "1", "--cluster-yes"]);
    cmd
}

/// The hash slot of `key`, computed here as a cluster node does (`CLUSTER KEYSLOT`): CRC16
/// (XMODEM) of the key modulo 16384, where a key holding `{tag}` with a non-empty tag hashes
/// only the tag (the first `{` and the first `}` after it).
pub fn key_slot(key: &[u8]) -> u16 {
    let hashed = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = key.get(open + 1..)?;
            let close = rest.iter().position(|&b| b == b'}')?;
            rest.get(..close).filter(|tag| !tag.is_empty())
        })
        .unwrap_or(key);
    let mut crc: u16 = 0;
    for &byte in hashed {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 == 0 { crc << 1 } else { (crc << 1) ^ 0x1021 };
        }
    }
    crc % 16_384
}

/// Options for one cluster node.
fn node_options(opts: &ClusterOptions) -> RedisOptions {
    let mut extra_args: Vec<String> = [
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
        "--cluster-node-timeout",
        &NODE_TIMEOUT_MS.to_string(),
        "--repl-diskless-sync",
        "yes",
        "--repl-diskless-sync-delay",
        "0",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    if opts.tls {
        extra_args.extend(
            ["--tls-cluster", "yes", "--tls-replication", "yes"].into_iter().map(str::to_owned),
        );
    }
    // Any node may become a replica after a failover.
    extra_args.extend(replication_auth_args(credentials(opts)));
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

/// One line of `CLUSTER NODES`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NodeEntry {
    /// The client port.
    port: u16,
    /// Comma-separated flags, e.g. `myself,master` or `slave,fail`.
    flags: String,
    /// Slot ranges served (inclusive), for a master.
    slots: Vec<(u16, u16)>,
}

impl NodeEntry {
    /// Whether the flags include `master`.
    fn is_master(&self) -> bool {
        self.flags.split(',').any(|flag| flag == "master")
    }

    /// Whether the flags include `fail` or `fail?`.
    fn is_failing(&self) -> bool {
        self.flags.split(',').any(|flag| flag == "fail" || flag == "fail?")
    }
}

/// Parses the text of `CLUSTER NODES`:
/// `<id> <ip:port@cport[,hostname]> <flags> <master> <ping-sent> <pong-recv>
/// <config-epoch> <link-state> <slot>…`, where a slot is `N` or `N-M`; slots
/// being migrated (`[N->-id]`, `[N-<-id]`) and unparsable lines are skipped.
fn parse_cluster_nodes(text: &str) -> Vec<NodeEntry> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (address, flags) = (fields.get(1)?, fields.get(2)?);
            let host_port = address.split(['@', ',']).next()?;
            let port = host_port.rsplit_once(':')?.1.parse().ok()?;
            let slots = fields
                .iter()
                .skip(8)
                .filter(|slot| !slot.starts_with('['))
                .filter_map(|slot| match slot.split_once('-') {
                    Some((from, to)) => Some((from.parse().ok()?, to.parse().ok()?)),
                    None => slot.parse().ok().map(|n| (n, n)),
                })
                .collect();
            Some(NodeEntry { port, flags: (*flags).to_owned(), slots })
        })
        .collect()
}

/// Who serves which slots: sorted `(first slot, last slot, port)` triples.
type SlotOwners = Vec<(u16, u16, u16)>;

/// The slot ranges served by masters in a view.
fn slot_owners(view: &[NodeEntry]) -> SlotOwners {
    let mut owners: SlotOwners = view
        .iter()
        .filter(|entry| entry.is_master())
        .flat_map(|entry| entry.slots.iter().map(|&(from, to)| (from, to, entry.port)))
        .collect();
    owners.sort_unstable();
    owners
}

#[cfg(test)]
mod tests {
    use super::*;

    const VIEW: &str = "\
07c3 127.0.0.1:30004@40004 slave e7d1 0 1426238317239 4 connected
67ed 127.0.0.1:30002@40002,host-b master - 0 1426238316232 2 connected 5461-10922
e7d1 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460 [5461->-67ed]
6ec2 127.0.0.1:30003@40003 master,fail - 1426238316232 1426238316232 3 connected 10923-16382 16383
";

    #[test]
    fn key_slot_hashes_the_tag_as_redis_does() {
        // Values from the Redis Cluster specification and CLUSTER KEYSLOT.
        assert_eq!(key_slot(b"123456789"), 0x31C3);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        // An empty tag hashes the whole key; only the first tag counts.
        assert_ne!(key_slot(b"foo{}{bar}"), key_slot(b"bar"));
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
        assert_eq!(key_slot(b"foo{bar}{zap}"), key_slot(b"bar"));
    }

    #[test]
    fn parses_cluster_nodes() {
        let view = parse_cluster_nodes(VIEW);
        assert_eq!(view.len(), 4);
        assert_eq!(view[0].port, 30004);
        assert!(!view[0].is_master());
        assert_eq!(view[1].port, 30002);
        assert_eq!(view[1].slots, vec![(5461, 10922)]);
        assert_eq!(view[2].slots, vec![(0, 5460)]);
        assert!(view[3].is_master() && view[3].is_failing());
        assert_eq!(view[3].slots, vec![(10923, 16382), (16383, 16383)]);
    }

    #[test]
    fn slot_owners_are_sorted_and_cover_everything() {
        let owners = slot_owners(&parse_cluster_nodes(VIEW));
        assert_eq!(owners.first(), Some(&(0, 5460, 30001)));
        assert_eq!(owners.last(), Some(&(16383, 16383, 30003)));
        let served: u32 =
            owners.iter().map(|&(from, to, _)| u32::from(to.saturating_sub(from)) + 1).sum();
        assert_eq!(served, SLOTS);
    }

    #[test]
    fn node_options_enable_cluster_mode() {
        let opts = ClusterOptions {
            password: Some("pw".to_owned()),
            appendonly: true,
            ..ClusterOptions::default()
        };
        let node = node_options(&opts);
        let args = node.extra_args.join(" ");
        assert!(args.contains("--cluster-enabled yes"), "{args}");
        assert!(args.contains("--cluster-node-timeout 2000"), "{args}");
        assert!(args.contains("--masterauth pw"), "{args}");
        assert!(node.appendonly);
        assert_eq!(node.password.as_deref(), Some("pw"));
        assert!(!node.tls && !args.contains("--tls"), "{args}");
    }

    #[test]
    fn tls_and_acl_reach_the_nodes_and_redis_cli() {
        let opts = ClusterOptions {
            password: Some("pw".to_owned()),
            acl_user: Some(("app".to_owned(), "app pw".to_owned())),
            tls: true,
            ..ClusterOptions::default()
        };
        let node = node_options(&opts);
        let args = node.extra_args.join(" ");
        assert!(args.contains("--tls-cluster yes --tls-replication yes"), "{args}");
        assert!(args.contains("--masteruser app --masterauth app pw"), "{args}");
        assert!(node.tls);
        assert_eq!(node.acl_user, opts.acl_user);

        let tls = SharedTls::generate().unwrap();
        let cmd = create_command(&[1, 2], credentials(&opts), Some(&tls.files));
        let args: Vec<String> =
            cmd.get_args().map(|arg| arg.to_string_lossy().into_owned()).collect();
        let args = args.join(" ");
        assert!(args.contains("--user app --pass app pw"), "{args}");
        assert!(args.contains("--tls --cacert"), "{args}");
        assert!(
            args.ends_with(
                "--cluster create 127.0.0.1:1 127.0.0.1:2 --cluster-replicas 1 --cluster-yes"
            ),
            "{args}"
        );
    }
}
