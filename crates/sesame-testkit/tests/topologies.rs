//! Starts real Sentinel and Cluster topologies and drives failovers.
//!
//! Every wait is bounded; a failing assertion prints the log tails of all
//! processes of the topology (`logs()`), and failing calls carry them in
//! their error.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use sesame_testkit::{key_slot, Cluster, ClusterOptions, SentinelGroup, SentinelOptions};

/// Upper bound for a failover in these tests.
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(30);

/// Waits up to 5 s for every process in `pids` to be gone.
fn all_gone(pids: &[u32]) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let alive: Vec<u32> = pids
            .iter()
            .copied()
            .filter(|pid| Path::new(&format!("/proc/{pid}")).exists())
            .collect();
        if alive.is_empty() {
            return true;
        }
        if Instant::now() >= deadline {
            eprintln!("still alive: {alive:?}");
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Unwraps `result`, failing with the error (which carries the log tails).
fn ok<T>(result: Result<T, sesame_testkit::TestkitError>) -> T {
    result.unwrap_or_else(|err| panic!("{err}"))
}

// Proves a default sentinel group starts settled, replicates, has the expected URL,
// and that dropping it kills all five processes.
#[test]
fn sentinel_group_starts_and_replicates() {
    let started = Instant::now();
    let group = ok(SentinelGroup::start());
    eprintln!("sentinel group started in {:?}", started.elapsed());
    let logs = || group.logs();

    assert_eq!(group.master_name(), "sesame");
    let ports = group.sentinel_ports();
    assert_eq!(ports.len(), 3);
    let hosts: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    assert_eq!(group.url(), format!("redis+sentinel://{}/sesame", hosts.join(",")));

    let nodes = group.data_nodes();
    assert_eq!(nodes.len(), 2);
    assert_eq!(ok(group.current_master_port()), nodes[0].port(), "{}", logs());
    assert_eq!(ok(group.current_master()), 0);
    assert!(ok(nodes[1].cli(&["ROLE"])).starts_with("slave"), "{}", logs());
    let info = ok(group.sentinel_cli(1, &["SENTINEL", "master", "sesame"]));
    assert!(info.contains("num-other-sentinels\n2"), "{info}\n{}", logs());
    let replicas = ok(group.sentinel_cli(2, &["SENTINEL", "replicas", "sesame"]));
    assert!(replicas.contains(&format!("127.0.0.1:{}", nodes[1].port())), "{replicas}");

    assert_eq!(ok(nodes[0].cli(&["SET", "greeting", "hello"])), "OK");
    assert_eq!(ok(nodes[0].cli(&["WAIT", "1", "5000"])), "1", "{}", logs());
    assert_eq!(ok(nodes[1].cli(&["GET", "greeting"])), "hello", "{}", logs());

    // Without a failure there is no failover: the wait times out with the
    // last state and every process's log.
    let master_port = nodes[0].port();
    let err = group.wait_for_failover(master_port, Duration::from_secs(1)).unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&format!("still report port {master_port}")), "{text}");
    assert!(text.contains("=== sentinel 2") && text.contains("=== data node 1"), "{text}");

    let mut pids: Vec<u32> = group.data_nodes().iter().filter_map(|n| n.pid()).collect();
    pids.extend(group.sentinel_pids().into_iter().flatten());
    assert_eq!(pids.len(), 5);
    drop(group);
    assert!(all_gone(&pids), "processes of the group survived the drop");
}

// Proves killing the master of a password-protected, append-only group promotes the replica,
// the new master accepts writes and has the replicated data, and the old master
// rejoins as a replica of the new one.
#[test]
fn sentinel_failover_promotes_the_replica() {
    let opts = SentinelOptions {
        master_name: "main".to_owned(),
        password: Some("s3cret pw".to_owned()),
        appendonly: true,
        ..SentinelOptions::default()
    };
    let mut group = ok(SentinelGroup::start_with(opts));
    let first = group.sentinel_ports()[0];
    assert!(
        group.url().starts_with(&format!("redis+sentinel://:s3cret%20pw@127.0.0.1:{first},")),
        "{}",
        group.url()
    );
    assert!(group.url().ends_with("/main"), "{}", group.url());

    let old_port = ok(group.current_master_port());
    let master = &group.data_nodes()[0];
    assert_eq!(ok(master.cli(&["SET", "before", "failover"])), "OK");
    assert_eq!(ok(master.cli(&["WAIT", "1", "5000"])), "1", "{}", group.logs());

    assert_eq!(ok(group.kill_master()), 0);
    assert!(group.data_nodes()[0].pid().is_none());
    let started = Instant::now();
    let new_port = ok(group.wait_for_failover(old_port, FAILOVER_TIMEOUT));
    eprintln!("sentinel failover took {:?}", started.elapsed());
    assert_ne!(new_port, old_port);
    assert_eq!(new_port, group.data_nodes()[1].port(), "{}", group.logs());
    assert_eq!(ok(group.current_master_port()), new_port);

    let new_master = &group.data_nodes()[1];
    assert_eq!(ok(new_master.cli(&["GET", "before"])), "failover", "{}", group.logs());
    assert_eq!(ok(new_master.cli(&["SET", "after", "failover"])), "OK", "{}", group.logs());

    let started = Instant::now();
    ok(group.restart_node(0));
    eprintln!("old master rejoined as a replica in {:?}", started.elapsed());
    let old = &group.data_nodes()[0];
    assert_eq!(old.port(), old_port);
    assert!(ok(old.cli(&["ROLE"])).starts_with("slave"), "{}", group.logs());
    assert_eq!(ok(old.cli(&["GET", "after"])), "failover", "{}", group.logs());
}

// Proves a default cluster starts with three masters and three replicas, all
// slots served, the expected URL, and that dropping it kills all six nodes.
#[test]
fn cluster_starts_with_all_slots_served() {
    let started = Instant::now();
    let cluster = ok(Cluster::start());
    eprintln!("cluster started in {:?}", started.elapsed());
    let logs = || cluster.logs();

    let hosts: Vec<String> =
        cluster.nodes().iter().map(|n| format!("127.0.0.1:{}", n.port())).collect();
    assert_eq!(hosts.len(), 6);
    assert_eq!(cluster.url(), format!("redis+cluster://{}", hosts.join(",")));

    let masters = ok(cluster.masters());
    assert_eq!(masters.len(), 3, "{}", logs());
    for slot in [0, 5000, 10000, 16383] {
        assert!(masters.contains(&ok(cluster.master_for_slot(slot))), "{}", logs());
    }
    // CLUSTER KEYSLOT is CRC16 mod 16384; hash tags select what is hashed.
    assert_eq!(ok(cluster.keyslot("foo")), 12182);
    assert_eq!(ok(cluster.keyslot("{user1000}.following")), ok(cluster.keyslot("user1000")));
    // The local computation agrees with the server, tags and all.
    for key in ["foo", "{user1000}.following", "foo{}{bar}", "foo{{bar}}zap", "a{b}{c}", "s:{x}"] {
        assert_eq!(key_slot(key.as_bytes()), ok(cluster.keyslot(key)), "{key}");
    }
    let served: u32 = ok(cluster.slots_of(masters[0]))
        .iter()
        .chain(&ok(cluster.slots_of(masters[1])))
        .chain(&ok(cluster.slots_of(masters[2])))
        .map(|&(from, to)| u32::from(to - from) + 1)
        .sum();
    assert_eq!(served, 16_384, "{}", logs());
    let replica = (0..6).find(|i| !masters.contains(i)).unwrap();
    assert!(ok(cluster.slots_of(replica)).is_empty());

    let key_master = &cluster.nodes()[ok(cluster.master_for_slot(12182))];
    assert_eq!(ok(key_master.cli(&["SET", "foo", "bar"])), "OK");
    assert_eq!(ok(key_master.cli(&["GET", "foo"])), "bar");
    let other = masters.iter().find(|&&i| cluster.nodes()[i].port() != key_master.port()).unwrap();
    let moved = ok(cluster.nodes()[*other].cli(&["GET", "foo"]));
    assert!(moved.starts_with("MOVED 12182"), "{moved}");

    // Without a failure there is no failover: the wait times out with the
    // last state and every node's log.
    let err = cluster.wait_for_failover(masters[0], Duration::from_secs(1)).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("timed out") && text.contains("served by node"), "{text}");
    assert!(text.contains("=== cluster node 5"), "{text}");

    let pids: Vec<u32> = cluster.nodes().iter().filter_map(|n| n.pid()).collect();
    assert_eq!(pids.len(), 6);
    drop(cluster);
    assert!(all_gone(&pids), "nodes of the cluster survived the drop");
}

// Proves killing the master of a key's slot in a password-protected, append-only cluster
// promotes its replica, which still has the key and accepts writes, and that the
// old master rejoins as a replica.
#[test]
fn cluster_failover_keeps_replicated_key() {
    let opts = ClusterOptions {
        password: Some("pw".to_owned()),
        appendonly: true,
        ..ClusterOptions::default()
    };
    let mut cluster = ok(Cluster::start_with(opts));
    let first = cluster.nodes()[0].port();
    assert!(cluster.url().starts_with(&format!("redis+cluster://:pw@127.0.0.1:{first},")));

    let slot = ok(cluster.keyslot("session:42"));
    let old = ok(cluster.master_for_slot(slot));
    let master = &cluster.nodes()[old];
    assert_eq!(ok(master.cli(&["SET", "session:42", "alive"])), "OK");
    assert_eq!(ok(master.cli(&["WAIT", "1", "5000"])), "1", "{}", cluster.logs());

    cluster.kill_node(old);
    let started = Instant::now();
    ok(cluster.wait_for_failover(old, FAILOVER_TIMEOUT));
    eprintln!("cluster failover took {:?}", started.elapsed());

    let new = ok(cluster.master_for_slot(slot));
    assert_ne!(new, old);
    let masters = ok(cluster.masters());
    assert_eq!(masters.len(), 3, "{}", cluster.logs());
    assert!(masters.contains(&new) && !masters.contains(&old));
    let new_master = &cluster.nodes()[new];
    assert_eq!(ok(new_master.cli(&["GET", "session:42"])), "alive", "{}", cluster.logs());
    assert_eq!(ok(new_master.cli(&["SET", "session:42", "still"])), "OK");

    let started = Instant::now();
    ok(cluster.restart_node(old));
    eprintln!("old cluster master rejoined in {:?}", started.elapsed());
    let rejoined = &cluster.nodes()[old];
    assert!(ok(rejoined.cli(&["ROLE"])).starts_with("slave"), "{}", cluster.logs());
    assert_eq!(ok(cluster.master_for_slot(slot)), new);
    assert_eq!(ok(cluster.masters()).len(), 3);
}

/// Whether a plain-TCP `PING` on `port` gets `+PONG` (a TLS-only port drops
/// the connection instead).
fn plain_ping_answered(port: u16) -> bool {
    let attempt = || -> std::io::Result<String> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        (&stream).write_all(b"*1\r\n$4\r\nPING\r\n")?;
        let mut reply = Vec::new();
        (&stream).take(64).read_to_end(&mut reply)?;
        Ok(String::from_utf8_lossy(&reply).into_owned())
    };
    attempt().is_ok_and(|reply| reply.starts_with("+PONG"))
}

/// The ACL user of the secure topologies; the password needs percent-encoding.
fn acl_user() -> Option<(String, String)> {
    Some(("app".to_owned(), "p@ss w:rd".to_owned()))
}

// Proves a TLS-only sentinel group with an ACL user starts settled (sentinels reach the data
// nodes and each other over TLS, authenticating as the ACL user), has a rediss+sentinel URL with
// the ACL user's credentials and one CA for every process, and fails over.
#[test]
fn tls_acl_sentinel_group_fails_over() {
    let started = Instant::now();
    let opts = SentinelOptions {
        password: Some("default pw".to_owned()),
        acl_user: acl_user(),
        tls: true,
        ..SentinelOptions::default()
    };
    let mut group = ok(SentinelGroup::start_with(opts));
    eprintln!("TLS sentinel group started in {:?}", started.elapsed());

    let ports = group.sentinel_ports();
    let hosts: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    assert_eq!(
        group.url(),
        format!("rediss+sentinel://app:p%40ss%20w%3Ard@{}/sesame", hosts.join(","))
    );
    let pem = group.ca_cert_pem().expect("a CA with TLS");
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
    for node in group.data_nodes() {
        // The same CA signed every node's certificate.
        assert_eq!(node.ca_cert_pem().as_deref(), Some(pem.as_str()));
        assert_eq!(ok(node.cli(&["ACL", "WHOAMI"])), "app");
        assert_eq!(ok(node.cli(&["CONFIG", "GET", "port"])), "port\n0");
        assert!(node.url().starts_with("rediss://app:p%40ss%20w%3Ard@"), "{}", node.url());
    }
    for (index, port) in ports.iter().enumerate() {
        assert_eq!(ok(group.sentinel_cli(index, &["PING"])), "PONG");
        assert!(!plain_ping_answered(*port), "sentinel {index} answered plain TCP");
    }
    for node in group.data_nodes() {
        assert!(!plain_ping_answered(node.port()), "data node answered plain TCP");
    }

    let old_port = ok(group.current_master_port());
    let master = &group.data_nodes()[0];
    assert_eq!(ok(master.cli(&["SET", "before", "failover"])), "OK");
    assert_eq!(ok(master.cli(&["WAIT", "1", "5000"])), "1", "{}", group.logs());

    assert_eq!(ok(group.kill_master()), 0);
    let failover = Instant::now();
    let new_port = ok(group.wait_for_failover(old_port, FAILOVER_TIMEOUT));
    eprintln!("TLS sentinel failover took {:?}", failover.elapsed());
    assert_eq!(new_port, group.data_nodes()[1].port(), "{}", group.logs());
    let new_master = &group.data_nodes()[1];
    assert_eq!(ok(new_master.cli(&["GET", "before"])), "failover", "{}", group.logs());
    assert_eq!(ok(new_master.cli(&["SET", "after", "failover"])), "OK", "{}", group.logs());

    // The old master comes back (same shared certificate files) as a replica that
    // replicates over TLS as the ACL user.
    ok(group.restart_node(0));
    let old = &group.data_nodes()[0];
    assert!(ok(old.cli(&["ROLE"])).starts_with("slave"), "{}", group.logs());
    assert_eq!(ok(old.cli(&["GET", "after"])), "failover", "{}", group.logs());
    eprintln!("TLS sentinel test took {:?}", started.elapsed());
}

// Proves a TLS-only cluster with an ACL user (bus and replication over TLS) is created and
// settles with every slot served, has a rediss+cluster URL with the ACL user's credentials and
// one CA for every node, replicates, and fails over.
#[test]
fn tls_acl_cluster_starts_and_fails_over() {
    let started = Instant::now();
    let opts = ClusterOptions {
        password: Some("default pw".to_owned()),
        acl_user: acl_user(),
        tls: true,
        ..ClusterOptions::default()
    };
    let mut cluster = ok(Cluster::start_with(opts));
    eprintln!("TLS cluster started in {:?}", started.elapsed());

    let hosts: Vec<String> =
        cluster.nodes().iter().map(|n| format!("127.0.0.1:{}", n.port())).collect();
    assert_eq!(cluster.url(), format!("rediss+cluster://app:p%40ss%20w%3Ard@{}", hosts.join(",")));
    let pem = cluster.ca_cert_pem().expect("a CA with TLS");
    for node in cluster.nodes() {
        assert_eq!(node.ca_cert_pem().as_deref(), Some(pem.as_str()));
        let info = ok(node.cli(&["CLUSTER", "INFO"]));
        assert!(info.contains("cluster_state:ok"), "{info}\n{}", cluster.logs());
        assert_eq!(ok(node.cli(&["ACL", "WHOAMI"])), "app");
        assert_eq!(ok(node.cli(&["CONFIG", "GET", "tls-cluster"])), "tls-cluster\nyes");
        assert_eq!(ok(node.cli(&["CONFIG", "GET", "port"])), "port\n0");
    }
    assert_eq!(ok(cluster.masters()).len(), 3, "{}", cluster.logs());

    let slot = ok(cluster.keyslot("session:42"));
    let old = ok(cluster.master_for_slot(slot));
    let master = &cluster.nodes()[old];
    assert_eq!(ok(master.cli(&["SET", "session:42", "alive"])), "OK");
    assert_eq!(ok(master.cli(&["WAIT", "1", "5000"])), "1", "{}", cluster.logs());

    cluster.kill_node(old);
    let failover = Instant::now();
    ok(cluster.wait_for_failover(old, FAILOVER_TIMEOUT));
    eprintln!("TLS cluster failover took {:?}", failover.elapsed());
    let new = ok(cluster.master_for_slot(slot));
    assert_ne!(new, old);
    let new_master = &cluster.nodes()[new];
    assert_eq!(ok(new_master.cli(&["GET", "session:42"])), "alive", "{}", cluster.logs());
    eprintln!("TLS cluster test took {:?}", started.elapsed());
}
